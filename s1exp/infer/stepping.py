"""Budget forcing one token at a time: the decision both in-loop drivers share.

A trajectory (s1exp.infer.budget_forcing) speaks in segments: what to generate next, and which
tokens to force once a segment ends. A decode loop speaks in tokens. `TokenStepper` translates:
asked for a sequence's next token, it asks the model's choice under the current segment's limits
(stop tokens suppressed until min_tokens), ends the segment on a stop token or at max_tokens, and
feeds the forced tokens one per step. A dropped stop token is never emitted, so the emitted tokens
are exactly the context the resubmit driver builds: the transformers loop feeds them as inputs,
and vLLM's logits processor (s1exp.infer.vllm_forcing) makes them the only token it may sample.

Each segment end is recorded as an `Event` so that a driver whose stepper lives in another process
can replay the same `advance` calls on its own trajectory (`replay`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from s1exp.infer.engine import Completion, SamplingParams

# The model's choice for a segment: (params, suppress the stop tokens?) -> token id.
Choose = Callable[[SamplingParams, bool], int]


class Controlled(Protocol):
    """A sequence a decode loop drives: what to generate next, and what to force after it."""

    def context(self) -> list[int]: ...
    def params(self) -> SamplingParams | None: ...  # None: finished
    def advance(self, token_ids: list[int], finish_reason: str) -> list[int]: ...


class OneShot:
    """The engine contract: one segment, then done."""

    def __init__(self, prompt: list[int], params: SamplingParams) -> None:
        self.prompt, self._params, self.result = prompt, params, None

    def context(self) -> list[int]:
        return self.prompt

    def params(self) -> SamplingParams | None:
        return self._params if self.result is None else None

    def advance(self, token_ids: list[int], finish_reason: str) -> list[int]:
        self.result = Completion(token_ids=list(token_ids), finish_reason=finish_reason)
        return []


class Forced:
    """A budget-forcing trajectory (s1exp.infer.budget_forcing.Trajectory) in a decode loop."""

    def __init__(self, trajectory: Any, sampling: Callable[[Any], SamplingParams]) -> None:
        self.trajectory, self.sampling = trajectory, sampling

    def context(self) -> list[int]:
        return self.trajectory.context()

    def params(self) -> SamplingParams | None:
        return self.sampling(self.trajectory)

    def advance(self, token_ids: list[int], finish_reason: str) -> list[int]:
        return self.trajectory.advance(token_ids, finish_reason)


class Event(NamedTuple):
    """A segment's end: its kept tokens (emitted), how it ended, and the dropped stop token."""

    kept: int
    reason: str  # "stop" | "length"
    stop: int | None


class TokenStepper:
    """Per-token state of one sequence: the open segment and the forced tokens still to emit."""

    def __init__(self, seq: Controlled) -> None:
        self.seq = seq
        self.params = seq.params()
        self.segment: list[int] = []
        self.queue: list[int] = []
        self.events: list[Event] = []

    @property
    def done(self) -> bool:
        return self.params is None

    def next_token(self, choose: Choose) -> int | None:
        """The sequence's next token, or None once it is finished (nothing left to emit)."""
        while not self.done:
            if self.queue:
                return self.queue.pop(0)
            p = self.params
            if p.max_tokens <= 0:  # nothing to generate in this segment
                self._end(0, "length", None)
                continue
            suppress = len(self.segment) < p.min_tokens and bool(p.stop_token_ids)
            token = choose(p, suppress)
            stopped = token in p.stop_token_ids
            if stopped:  # dropped: the forced tokens follow, or the model decodes again
                self._end(len(self.segment), "stop", token)
                continue
            self.segment.append(token)
            if len(self.segment) == p.max_tokens:  # kept: the forced tokens come after it
                self._end(len(self.segment), "length", None)
            return token
        return None

    def _end(self, kept: int, reason: str, stop: int | None) -> None:
        tokens = self.segment + ([stop] if stop is not None else [])
        self.events.append(Event(kept, reason, stop))
        forced = self.seq.advance(tokens, reason)
        self.segment, self.params, self.queue = [], self.seq.params(), list(forced)


def replay(seq: Controlled, emitted: list[int], events: list[Event]) -> None:
    """Make `seq` take the path a stepper took elsewhere, from its emitted tokens and events.

    Raises if the tokens and events do not describe one path (a driver out of step).
    """
    at = 0
    for kept, reason, stop in events:
        tokens = emitted[at : at + kept]
        forced = seq.advance(tokens + ([stop] if stop is not None else []), reason)
        at += kept
        if emitted[at : at + len(forced)] != forced:
            raise RuntimeError(f"replay: forced tokens {forced} not found at token {at}")
        at += len(forced)
    if at != len(emitted) or seq.params() is not None:
        raise RuntimeError(f"replay: {len(emitted)} tokens emitted, events explain {at}")
