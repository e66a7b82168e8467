"""Conditional length control (S1_SPEC section 4): TCC, SCC and CCC, each with optional forcing.

All three are budget forcing with an instruction appended to the question; the format of the
instruction (and of SCC's step delimiters) comes from s1exp.data.control, the same code that writes
the training data.

- TokenConditional: "Think for up to N tokens."; with `force` the thinking cap is N (TCC + BF).
- StepConditional: "Think for up to N steps."; the thinking is read step by step: after each
  `<|im_start|>` the next tokens tell a step delimiter (`{k} steps left`, thinking goes on) from the
  end of thinking (`answer`). With `force`, thinking stops at `0 steps left` (SCC + BF).
- ClassConditional: the paper's short or long prompt, word for word.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from s1exp.data.control import (
    CLASS_PROMPTS,
    LAST_STEP_MARKER,
    step_instruction,
    token_instruction,
    with_instruction,
)
from s1exp.data.format import token_ids
from s1exp.infer.budget_forcing import BudgetForcing, Segment, Trajectory


class InstructedForcing(BudgetForcing):
    """Budget forcing whose prompt carries a control instruction after the question."""

    def instruction(self) -> str:
        raise NotImplementedError

    def prompt(self, tokenizer: Any, question: str) -> list[int]:
        return super().prompt(tokenizer, with_instruction(question, self.instruction()))


@dataclass
class TokenConditional(InstructedForcing):
    """TCC: instruct a thinking length; `force` also caps thinking at it (TCC + BF)."""

    tokens: int = 1024
    force: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.tokens, int) or self.tokens <= 0:
            raise ValueError(f"method.tokens={self.tokens!r}: use a positive number of tokens")
        if self.force:
            self.cap = self.tokens
        super().__post_init__()

    def instruction(self) -> str:
        return token_instruction(self.tokens)


@dataclass
class ClassConditional(InstructedForcing):
    """CCC: the generic short or long thinking prompt."""

    length: str = "short"

    def __post_init__(self) -> None:
        if self.length not in CLASS_PROMPTS:
            raise ValueError(f"method.length={self.length!r}: use one of {sorted(CLASS_PROMPTS)}")
        super().__post_init__()

    def instruction(self) -> str:
        return CLASS_PROMPTS[self.length]


@dataclass
class StepTrajectory(Trajectory):
    """A trajectory that reads what follows each `<|im_start|>` inside thinking.

    After the delimiter the model writes either `answer` (end of thinking) or a step count. Those
    tokens are generated one at a time (the same greedy tokens as one long segment) until they
    match or rule out `answer` and `0 steps left`.
    """

    markers: dict[str, list[int]] = field(default_factory=dict)
    force: bool = False
    probe: list[int] | None = None  # tokens after an in-thinking `<|im_start|>`, being read

    def segment(self) -> Segment | None:
        if self.phase == "thinking" and self.probe is not None:
            return Segment(1, 0, self.marks.thinking_stops)
        return super().segment()

    def thinking_stopped(self, stop_token: int) -> list[int]:
        if stop_token != self.marks.natural_exit[0]:
            return super().thinking_stopped(stop_token)  # end of turn: the natural exit
        self.thinking_ids.append(stop_token)  # it may open a step: keep it, read what follows
        if self.remaining <= 0:  # it was the last token the budget allows
            return [stop_token, *self._exit(forced=True)]
        self.probe = []
        return [stop_token]

    def advance(self, token_ids: list[int], finish_reason: str) -> list[int]:
        if self.probe is None or finish_reason == "stop":
            self.probe = None
            return super().advance(token_ids, finish_reason)
        self.thinking_ids += token_ids
        self.probe += token_ids
        answer, last = self.markers["answer"], self.markers["last_step"]
        if self.probe == answer:  # the end of thinking: `<|im_start|>answer`, already in context
            del self.thinking_ids[-len(answer) - 1 :]
            self.exit_ids = list(self.marks.natural_exit)
            self.exit, self.phase, self.probe = "natural", "answer", None
            return []
        if (self.force and self.probe == last) or self.remaining <= 0:
            self.probe = None  # out of steps (SCC + BF) or out of budget
            return self._exit(forced=True)
        if self.probe in (answer[: len(self.probe)], last[: len(self.probe)]):
            return []  # still ambiguous: read one more token
        self.probe = None
        self.extra["scores"]["steps_used"] += 1
        return []


@dataclass
class StepConditional(InstructedForcing):
    """SCC: instruct a number of steps; `force` ends thinking at `0 steps left` (SCC + BF)."""

    steps: int = 10
    force: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.steps, int) or self.steps <= 0:
            raise ValueError(f"method.steps={self.steps!r}: use a positive number of steps")
        if self.ignore:
            raise ValueError(
                f"extrapolation.ignore={self.ignore}: SCC ends thinking by its steps and does not "
                "extend it; use extrapolation=none (or method=budget_forcing to extend)"
            )
        super().__post_init__()

    def instruction(self) -> str:
        return step_instruction(self.steps)

    def prepare(self, tokenizer: Any) -> None:
        super().prepare(tokenizer)
        if len(self.marks.natural_exit) < 2:
            raise ValueError("model: `<|im_start|>answer` must tokenize as <|im_start|> + answer")
        self.markers = {
            "answer": self.marks.natural_exit[1:],
            "last_step": token_ids(tokenizer, LAST_STEP_MARKER),
        }

    def trajectory(self, prompt: list[int], seed: int | None = None) -> Trajectory:
        return StepTrajectory(
            prompt, self.budget_for(prompt), self, self.marks, self.extrapolation_ids, seed=seed,
            extra={"scores": {"steps_used": 0}}, markers=self.markers, force=self.force,
        )  # fmt: skip
