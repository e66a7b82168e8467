"""Length-control formats shared by training data and prompts (S1_SPEC section 4).

Token- and step-conditional control only work if the model was trained on the same format it is
prompted with, so the instruction texts and step delimiters live here, once, for both sides:

- token-conditional (TCC): the question ends with "Think for up to N tokens.", where N is the trace
  length rounded up to a power of two;
- step-conditional (SCC): the thinking is split into steps, each opened by a countdown delimiter
  `<|im_start|>{k} steps left`, ending with `<|im_start|>0 steps left`; the question ends with
  "Think for up to N steps.";
- class-conditional (CCC): one of two generic prompts (no training format).

A trace format is a callable (question, thinking, count_tokens) -> (question, thinking), chosen by
`train.trace_format._target_`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from s1exp.data.format import END_OF_THINKING

INSTRUCTION_SEPARATOR = "\n\n"  # the control instruction follows the question after two newlines

CLASS_PROMPTS = {
    "short": "Answer after a short amount of thinking. Do not spend excessive time "
    "double-checking your work.",
    "long": "Answer after a long amount of thinking. If you feel like you are finished early, "
    "spend the extra time trying to double-check your work until you are absolutely sure that "
    "you have the correct answer.",
}

STEPS_LEFT = " steps left"

CountTokens = Callable[[str], int]


def with_instruction(question: str, instruction: str) -> str:
    return f"{question}{INSTRUCTION_SEPARATOR}{instruction}"


def token_instruction(tokens: int) -> str:
    return f"Think for up to {tokens} tokens."


def step_instruction(steps: int) -> str:
    return f"Think for up to {steps} steps."


def step_delimiter(steps_left: int) -> str:
    return f"{END_OF_THINKING}{steps_left}{STEPS_LEFT}"


def power_of_two_at_least(n: int) -> int:
    """The TCC bucket of a trace of n tokens: the smallest power of two >= n (1 for n <= 1)."""
    return 1 << max(0, n - 1).bit_length()


@dataclass(frozen=True)
class PlainTraces:
    """The s1 format: question and thinking as they are."""

    def __call__(self, question: str, thinking: str, count_tokens: CountTokens) -> tuple[str, str]:
        return question, thinking


@dataclass(frozen=True)
class TokenConditionalTraces:
    """TCC training data: the question states the trace length bucketed to a power of two."""

    def __call__(self, question: str, thinking: str, count_tokens: CountTokens) -> tuple[str, str]:
        bucket = power_of_two_at_least(count_tokens(thinking))
        return with_instruction(question, token_instruction(bucket)), thinking


@dataclass(frozen=True)
class StepConditionalTraces:
    """SCC training data: the thinking as counted-down steps of at least `step_tokens` tokens.

    Steps are whole lines merged until they reach `step_tokens` (the paper's steps are ~100
    tokens); the question states the number of steps.
    """

    step_tokens: int = 100

    def __post_init__(self) -> None:
        if self.step_tokens < 1:
            raise ValueError(f"train.trace_format.step_tokens={self.step_tokens}: must be >= 1")

    def steps(self, thinking: str, count_tokens: CountTokens) -> list[str]:
        steps: list[str] = []
        current: list[str] = []
        for line in thinking.split("\n"):
            current.append(line)
            if count_tokens("\n".join(current)) >= self.step_tokens:
                steps.append("\n".join(current))
                current = []
        if current:
            steps.append("\n".join(current))
        return steps

    def __call__(self, question: str, thinking: str, count_tokens: CountTokens) -> tuple[str, str]:
        steps = self.steps(thinking, count_tokens)
        n = len(steps)
        parts = [f"{step_delimiter(n - i)}\n{step}" for i, step in enumerate(steps)]
        parts.append(step_delimiter(0))
        return with_instruction(question, step_instruction(n)), "\n".join(parts)
