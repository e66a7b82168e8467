"""Conditional length control (S1_SPEC section 4): TCC, SCC and CCC, each with optional forcing.

All three are budget forcing with an instruction appended to the question; the format of the
instruction (and of SCC's step delimiters) comes from s1exp.data.control, the same code that writes
the training data.

- TokenConditional: "Think for up to N tokens."; with `force` the thinking cap is N (TCC + BF).
- StepConditional: "Think for up to N steps."; the thinking is read step by step: after each
  `<|im_start|>` the next tokens tell a step delimiter (`{k} steps left`, thinking goes on) from the
  end of thinking (`answer`). With `force`, thinking stops where the model opens `<|im_start|>0`
  (no step left), as s1's SCC + BF runs do with the stop string `<|im_start|>0`: the delimiter is
  dropped and `<|im_start|>answer` follows. The delimiter lines are not thinking tokens (s1's
  eval/compute_sample_stats.py counts step bodies only).
- ClassConditional: the paper's short or long prompt, word for word.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from s1exp.data.control import (
    CLASS_PROMPTS,
    step_instruction,
    token_instruction,
    with_instruction,
)
from s1exp.errors import ConfigError
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
            raise ConfigError(f"method.tokens={self.tokens!r}: use a positive number of tokens")
        if self.force:
            self.cap = self.tokens
        super().__post_init__()

    def instruction(self) -> str:
        return token_instruction(self.tokens)

    def thinking_limit(self, t: Trajectory) -> int:
        return self.tokens  # the instructed length, forced or not


@dataclass
class ClassConditional(InstructedForcing):
    """CCC: the generic short or long thinking prompt."""

    length: str = "short"

    def __post_init__(self) -> None:
        if self.length not in CLASS_PROMPTS:
            raise ConfigError(f"method.length={self.length!r}: use one of {sorted(CLASS_PROMPTS)}")
        super().__post_init__()

    def instruction(self) -> str:
        return CLASS_PROMPTS[self.length]

    def thinking_limit(self, t: Trajectory) -> None:
        return None  # no number: Control compares short and long with the default prompt


@dataclass
class StepTrajectory(Trajectory):
    """A trajectory that reads what follows each `<|im_start|>` inside thinking.

    After the delimiter the model writes either `answer` (end of thinking) or a step count. Those
    tokens are generated one at a time (the same greedy tokens as one long segment) until they
    match or rule out `answer`. With `force`, a count starting with "0" is a stop token of that
    one-token segment: it is never fed to the model, so no engine has to take a token back.
    """

    markers: dict[str, list[int]] = field(default_factory=dict)
    zero_ids: tuple[int, ...] = ()  # tokens that open a `0 steps left` count
    force: bool = False
    probe: list[int] | None = None  # tokens after an in-thinking `<|im_start|>`, being read

    def segment(self) -> Segment | None:
        if self.phase == "thinking" and self.probe is not None:
            stops = self.marks.thinking_stops + (self.zero_ids if self.force else ())
            return Segment(1, 0, stops)
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
        if self.probe is not None and finish_reason == "stop" and token_ids[-1] in self.zero_ids:
            return self.out_of_steps()
        if self.probe is None or finish_reason == "stop":
            self.probe = None
            return super().advance(token_ids, finish_reason)
        self.thinking_ids += token_ids
        self.probe += token_ids
        answer = self.markers["answer"]
        if self.probe == answer:  # the end of thinking: `<|im_start|>answer`, already in context
            del self.thinking_ids[-len(answer) - 1 :]
            self.exit_ids = list(self.marks.natural_exit)
            self.exit, self.phase, self.probe = "natural", "answer", None
            return []
        if self.remaining <= 0:
            self.probe = None  # out of budget
            return self._exit(forced=True)
        if self.probe == answer[: len(self.probe)]:
            return []  # still ambiguous: read one more token
        self.probe = None
        self.extra["scores"]["steps_used"] += 1
        return []

    def out_of_steps(self) -> list[int]:
        """`<|im_start|>0`: thinking ends before the delimiter, `<|im_start|>answer` follows (its
        `<|im_start|>` is the delimiter's, already in context)."""
        self.finish_reasons.append("stop")
        self.rounds += 1
        self.extra["scores"]["stopped_at_zero"] = 1
        self.thinking_ids.pop()
        self.exit_ids = list(self.marks.natural_exit)
        self.exit, self.phase, self.probe = "forced", "answer", None
        return self.exit_ids[1:]


def delimiter_tokens(thinking_ids: list[int], tokenizer: Any, opener: int) -> int:
    """Tokens of the step delimiter lines (`<|im_start|>{k} steps left` and its newline)."""
    count, inside = 0, False
    for token in thinking_ids:
        inside = inside or token == opener
        if inside:
            count += 1
            inside = token == opener or "\n" not in tokenizer.decode([token])
    return count


@dataclass
class StepConditional(InstructedForcing):
    """SCC: instruct a number of steps; `force` ends thinking at `<|im_start|>0` (SCC + BF).

    Table 3's Control holds a run to `tokens_per_step` x steps thinking tokens (the paper: 100,
    its step size)."""

    steps: int = 10
    force: bool = False
    tokens_per_step: int = 100

    def __post_init__(self) -> None:
        if not isinstance(self.steps, int) or self.steps <= 0:
            raise ConfigError(f"method.steps={self.steps!r}: use a positive number of steps")
        if self.ignore:
            raise ConfigError(
                f"extrapolation.ignore={self.ignore}: SCC ends thinking by its steps and does not "
                "extend it; use extrapolation=none (or method=budget_forcing to extend)"
            )
        super().__post_init__()

    def instruction(self) -> str:
        return step_instruction(self.steps)

    def thinking_limit(self, t: Trajectory) -> int:
        return self.tokens_per_step * self.steps

    def prepare(self, tokenizer: Any) -> None:
        super().prepare(tokenizer)
        if len(self.marks.natural_exit) < 2:
            raise ValueError("model: `<|im_start|>answer` must tokenize as <|im_start|> + answer")
        self.markers = {"answer": self.marks.natural_exit[1:]}
        self.zero_ids = tuple(
            sorted(i for text, i in tokenizer.get_vocab().items() if text.startswith("0"))
        )

    def trajectory(self, prompt: list[int], seed: int | None = None) -> Trajectory:
        return StepTrajectory(
            prompt, self.budget_for(prompt), self, self.marks, self.extrapolation_ids, seed=seed,
            extra={"scores": {"steps_used": 0, "stopped_at_zero": 0}}, markers=self.markers,
            zero_ids=self.zero_ids, force=self.force,
        )  # fmt: skip

    def record(self, t: Trajectory, tokenizer: Any) -> dict:
        record = super().record(t, tokenizer)
        opener = self.marks.natural_exit[0]
        record["thinking_tokens"] -= delimiter_tokens(t.thinking_ids, tokenizer, opener)
        return record
