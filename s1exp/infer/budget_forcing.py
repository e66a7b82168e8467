"""Budget forcing (S1_SPEC section 3), written once as a per-question state machine.

A `Trajectory` says what the engine should generate next (a segment: max/min tokens and stop ids)
and consumes each generated segment, returning the tokens to force after it:

- thinking: decode until the end-of-thinking token (or the task's end tokens) or the remaining
  budget; an early end is ignored up to `ignore` times by dropping it and appending the
  extrapolation string, and every continuation must produce a token before it may stop. Thinking
  tokens, appended strings included, never exceed the cap;
- exit: forced ("\\n" unless already there, then `<|im_start|>answer\\nFinal Answer:`) when the
  budget is spent, natural (`<|im_start|>answer`) otherwise;
- answer: decode to the end of the turn.

Three drivers run the machines, with the same greedy tokens:
- `resubmit` (any engine): every round, all unfinished trajectories are sent as one batch of new
  requests, as the public s1 code does;
- `barrier_free` (vLLM): each trajectory's next segment is a new request the moment its previous
  one ends, the prefix served from vLLM's cache; no round barrier;
- `inflight` (both engines): the forced tokens are fed inside the decode loop, one per step, so a
  trajectory is one sequence from prompt to answer (s1exp.infer.stepping; transformers keeps its
  KV cache, vLLM forces them with a logits processor). On vLLM a sampled trajectory
  (temperature > 0) takes the barrier-free driver: a processor cannot reproduce vLLM's sampler.
`auto` (the default) takes inflight where the engine has it.

`semantics` (S1_SPEC section 3): `paper` (above: the cap is a hard limit) or `s1_code`, the
public evaluation code's rounds: with ignores, every round gets the whole cap and at least one
token, the ignore string is appended at every stop before the last round, and after the last
round the thinking is cut to the cap (the record keeps the uncut text as `logged_thinking`); the
exit follows how the last round ended; `auto` comes from the batch's longest prompt. A cut takes
back tokens the model saw, so s1_code with ignores runs on the re-submitting drivers.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any, Literal

from s1exp.data.format import (
    ANSWER_START,
    END_OF_THINKING,
    END_OF_TURN,
    FORCED_ANSWER,
    THINK_START,
    prompt_ids,
    token_ids,
)
from s1exp.errors import ConfigError
from s1exp.infer.engine import Engine, SamplingParams

AUTO_MARGIN = 100  # tokens the paper's "auto" budget keeps free for the answer
MODES = ("auto", "resubmit", "barrier_free", "inflight")  # drivers; see the module doc
SEMANTICS = ("paper", "s1_code")


def _is_int(value: Any, minimum: int) -> bool:
    """An integer setting (not a bool, not a string from the command line) >= minimum."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def single_token_id(tokenizer: Any, text: str, setting: str) -> int:
    """The id of a delimiter that must be one token of the vocabulary (not an unknown token)."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) != 1 or tokenizer.decode(ids) != text:
        raise ValueError(
            f"{setting}: the tokenizer has no single token for {text!r} (got {len(ids)} tokens); "
            "use a model whose vocabulary and chat template carry the s1 think/answer delimiters"
        )
    return ids[0]


@dataclass(frozen=True)
class Segment:
    """What to generate next for one trajectory."""

    max_tokens: int
    min_tokens: int
    stop_token_ids: tuple[int, ...]


_NEWLINE_ENDING: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def newline_ending(tokenizer: Any) -> frozenset[int]:
    """Ids of the tokens whose text ends with a newline (one decode of the vocabulary, cached:
    0.36 s for SmolLM2's 49k tokens)."""
    if tokenizer not in _NEWLINE_ENDING:
        texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
        _NEWLINE_ENDING[tokenizer] = frozenset(i for i, s in enumerate(texts) if s.endswith("\n"))
    return _NEWLINE_ENDING[tokenizer]


@dataclass
class Delimiters:
    """Token ids of the s1 format for one tokenizer."""

    thinking_stops: tuple[int, ...]
    answer_stops: tuple[int, ...]
    think_start: list[int]
    natural_exit: list[int]
    forced_exit: list[int]
    newline: list[int]
    newline_ending: frozenset[int]  # ids whose text ends with "\n" (a plain set: picklable)

    def ends_with_newline(self, ids: list[int]) -> bool:
        return bool(ids) and ids[-1] in self.newline_ending


@dataclass
class Trajectory:
    """One question's path through thinking, exit and answer."""

    prompt_ids: list[int]
    cap: int
    config: BudgetForcing
    marks: Delimiters
    extrapolation_ids: list[int]
    seed: int | None = None  # sampling seed of this trajectory (None: the method's)
    thinking_ids: list[int] = field(default_factory=list)
    exit_ids: list[int] = field(default_factory=list)
    answer_ids: list[int] = field(default_factory=list)
    phase: Literal["thinking", "answer", "done"] = "thinking"
    rounds: int = 0
    ignores_used: int = 0
    finish_reasons: list[str] = field(default_factory=list)
    exit: str = ""
    continuing: bool = False  # after an ignore: the continuation must produce a token first
    extra: dict[str, Any] = field(default_factory=dict)  # method-specific fields of the record
    logged_ids: list[int] | None = None  # s1_code: the thinking it logs, before its cut

    @property
    def generated_tokens(self) -> int:
        """Tokens that occupied the engine: thinking (forced strings included) and answer."""
        thinking = self.thinking_ids if self.logged_ids is None else self.logged_ids
        return len(thinking) + len(self.answer_ids)

    @property
    def s1_code_rounds(self) -> bool:
        """Thinking runs in the public evaluation code's rounds (S1_SPEC section 3): it differs
        from the paper's only where end-of-thinking is ignored."""
        return self.config.semantics == "s1_code" and self.config.ignore > 0

    @property
    def remaining(self) -> int:
        return self.cap - len(self.thinking_ids)

    def context(self) -> list[int]:
        """Everything the model has seen so far (the next segment continues it)."""
        return self.prompt_ids + self.thinking_ids + self.exit_ids + self.answer_ids

    def segment(self) -> Segment | None:
        if self.phase == "thinking" and self.s1_code_rounds:
            # Every round: the whole budget (within the model's room) and at least one token.
            room = self.config.max_length - len(self.context()) - len(self.marks.forced_exit) - 2
            return Segment(max(0, min(self.cap, room)), 1, self.marks.thinking_stops)
        if self.phase == "thinking":
            minimum = max(int(self.continuing), self.config.min_tokens - len(self.thinking_ids))
            return Segment(self.remaining, minimum, self.marks.thinking_stops)
        if self.phase == "answer":
            used = len(self.context())
            room = self.config.max_length - used
            if self.config.answer_max_tokens is not None:
                room = min(room, self.config.answer_max_tokens)
            return Segment(max(room, 1), 0, self.marks.answer_stops)
        return None

    def advance(self, token_ids: list[int], finish_reason: str) -> list[int]:
        """Consume a generated segment (stop token last on "stop"); return tokens to force."""
        self.finish_reasons.append(finish_reason)
        stopped = finish_reason == "stop"
        kept = token_ids[:-1] if stopped else token_ids  # the stop token is always dropped
        if self.phase == "answer":
            self.answer_ids += kept
            self.phase = "done"
            return []
        self.rounds += 1
        self.continuing = False
        if self.s1_code_rounds:
            return self._s1_code_round(token_ids, stopped)
        self.thinking_ids += kept
        if not stopped:
            return self._exit(forced=True)
        return self.thinking_stopped(token_ids[-1])

    def thinking_stopped(self, stop_token: int) -> list[int]:
        """The model ended thinking early: extend it (an ignore) or take the natural exit."""
        fits = self.remaining - len(self.extrapolation_ids) >= 1
        if self.ignores_used < self.config.ignore and fits:
            self.ignores_used += 1
            self.continuing = True
            self.thinking_ids += self.extrapolation_ids
            return list(self.extrapolation_ids)
        return self._exit(forced=False)

    def _s1_code_round(self, token_ids: list[int], stopped: bool) -> list[int]:
        """A round as the public evaluation code runs it: a stop before the last round is
        dropped and the ignore string appended, budget left or not; after the last round (or a
        round that ran out of its budget) the thinking is cut to the budget, a stop token left
        at its end removed, and the exit follows how the last round ended."""
        if stopped and self.ignores_used < self.config.ignore:
            self.ignores_used += 1
            self.thinking_ids += token_ids[:-1] + self.extrapolation_ids
            return list(self.extrapolation_ids)
        logged = self.thinking_ids + token_ids  # the last round's stop token stays until the cut
        cut = logged[: self.cap]
        if cut and cut[-1] in self.marks.thinking_stops:
            cut = cut[:-1]
        if logged and logged[-1] in self.marks.thinking_stops:
            logged = logged[:-1]
        self.logged_ids, self.thinking_ids = logged, cut
        return self._exit(forced=not stopped, newline_after=logged)

    def _exit(self, forced: bool, newline_after: list[int] | None = None) -> list[int]:
        """`newline_after`: the tokens whose end decides the forced exit's newline (s1_code
        looks at its logged text, not at the cut)."""
        self.exit = "forced" if forced else "natural"
        if forced:
            last = self.thinking_ids if newline_after is None else newline_after
            newline = [] if self.marks.ends_with_newline(last) else self.marks.newline
            self.exit_ids = newline + self.marks.forced_exit
        else:
            self.exit_ids = list(self.marks.natural_exit)
        self.phase = "answer"
        return list(self.exit_ids)


@dataclass
class BudgetForcing:
    """Thinking cap, minimum, and "ignore the end N times" with an extrapolation string."""

    cap: int | str = "auto"
    min_tokens: int = 0
    ignore: int = 0
    extrapolation: str | None = None
    max_length: int = 32768
    answer_max_tokens: int | None = None
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    mode: Literal["auto", "resubmit", "barrier_free", "inflight"] = "auto"
    prompt_suffix: str = ""
    semantics: Literal["paper", "s1_code"] = "paper"  # S1_SPEC section 3; see Trajectory

    def __post_init__(self) -> None:
        """Settings out of range fail here (ConfigError, one line): the pipeline builds the
        method before any stage runs, and s1exp.preflight before a sweep is submitted."""
        if self.cap != "auto" and not _is_int(self.cap, minimum=1):
            raise ConfigError(f"budget.cap={self.cap!r}: use a positive integer or 'auto'")
        if not _is_int(self.min_tokens, minimum=0):
            raise ConfigError(f"budget.min_tokens={self.min_tokens!r}: must be an integer >= 0")
        if self.cap != "auto" and self.min_tokens > self.cap:
            raise ConfigError(
                f"budget.min_tokens={self.min_tokens} exceeds budget.cap={self.cap}: thinking "
                f"cannot be longer than its cap; lower budget.min_tokens to at most {self.cap}"
            )
        if not _is_int(self.ignore, minimum=0):
            raise ConfigError(
                f"extrapolation.ignore={self.ignore!r}: must be an integer >= 0 (0 = never extend)"
            )
        if not _is_int(self.max_length, minimum=1):
            raise ConfigError(f"model.max_length={self.max_length!r}: must be a positive integer")
        if self.semantics not in SEMANTICS:
            raise ConfigError(
                f"method.semantics={self.semantics!r}: use 'paper' (the cap is a hard limit, as "
                "the paper describes) or 's1_code' (as the public evaluation code runs it)"
            )
        if self.mode not in MODES:
            raise ConfigError(f"method.mode={self.mode!r}: use one of {', '.join(MODES)}")

    # -- setup ----------------------------------------------------------------------------
    def prompt(self, tokenizer: Any, question: str) -> list[int]:
        """The chat prompt ending in `<|im_start|>think` (S1_SPEC section 3)."""
        return prompt_ids(tokenizer, question + self.prompt_suffix)

    def prepare(self, tokenizer: Any) -> None:
        """Resolve delimiter token ids and validate settings against the tokenizer."""
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("model: the tokenizer has no chat template; s1 prompts need ChatML")
        end_of_thinking = single_token_id(tokenizer, END_OF_THINKING, "model")
        end_of_turn = single_token_id(tokenizer, END_OF_TURN, "model")
        specials = {tokenizer.eos_token_id, tokenizer.pad_token_id} - {None}

        def encode(text: str) -> list[int]:
            return token_ids(tokenizer, text)

        self.marks = Delimiters(
            thinking_stops=tuple(sorted({end_of_thinking, end_of_turn, *specials})),
            answer_stops=tuple(sorted({end_of_turn, *specials})),
            think_start=encode(THINK_START),
            natural_exit=encode(ANSWER_START),
            forced_exit=encode(FORCED_ANSWER),
            newline=encode("\n"),
            newline_ending=newline_ending(tokenizer),
        )
        try:
            self.extrapolation_ids = encode(self.extrapolation or "")
            round_trip = tokenizer.decode(self.extrapolation_ids)
        except (UnicodeError, ValueError, TypeError) as err:
            round_trip = f"<error: {err}>"
        if self.extrapolation and round_trip != self.extrapolation:
            raise ValueError(
                f"extrapolation.string={self.extrapolation!r} does not survive the model's "
                "tokenizer (decode(encode(s)) != s); choose a string the tokenizer can encode"
            )

    def room(self, prompt: list[int]) -> int:
        """The most thinking tokens that still leave room for the forced exit and an answer."""
        return self.max_length - len(prompt) - len(self.marks.forced_exit) - 2

    def budget_for(self, prompt: list[int]) -> int:
        """The thinking cap of one prompt; "auto" follows the paper's formula."""
        if self.cap != "auto":
            cap = int(self.cap)
        else:  # s1_code: from the longest prompt of the batch, as the evaluation code does
            longest = len(prompt)
            if self.semantics == "s1_code":
                longest = max(longest, getattr(self, "longest_prompt", 0))
            question_len = longest - len(self.marks.think_start)
            cap = (self.max_length - question_len - len(self.marks.think_start)
                   - len(self.marks.forced_exit) - AUTO_MARGIN)  # fmt: skip
        room = self.room(prompt)
        if cap <= 0 or room <= 0:
            raise ValueError(
                f"budget.cap={self.cap}: a prompt of {len(prompt)} tokens leaves no thinking "
                f"budget within model.max_length={self.max_length}; raise model.max_length"
            )
        return min(cap, room)

    def sampling(self, t: Trajectory) -> SamplingParams | None:
        """The engine request for a trajectory's next segment (None once it is done)."""
        segment = t.segment()
        if segment is None:
            return None
        return SamplingParams(
            max_tokens=segment.max_tokens,
            min_tokens=segment.min_tokens,
            stop_token_ids=segment.stop_token_ids,
            temperature=self.temperature,
            top_p=self.top_p,
            seed=self.seed if t.seed is None else t.seed,
        )

    # -- run --------------------------------------------------------------------------------
    def trajectory(self, prompt: list[int], seed: int | None = None) -> Trajectory:
        return Trajectory(prompt, self.budget_for(prompt), self, self.marks,
                          self.extrapolation_ids, seed=seed)  # fmt: skip

    def set_batch(self, prompts: list[list[int]]) -> None:
        """The questions evaluated together: s1_code's "auto" budget is computed from their
        longest prompt, also when they are run in groups (s1exp.evaluate.run journals groups)."""
        self.batch_longest = max((len(p) for p in prompts), default=0)

    def begin(self, tokenizer: Any, prompts: list[list[int]]) -> None:
        """Before a run: delimiters from the tokenizer, the longest prompt of the batch."""
        self.prepare(tokenizer)
        group = max((len(p) for p in prompts), default=0)
        self.longest_prompt = max(group, getattr(self, "batch_longest", 0))

    def run(self, engine: Engine, tokenizer: Any, prompts: list[list[int]]) -> list[dict]:
        """One record per prompt (see `record`)."""
        self.begin(tokenizer, prompts)
        paths = [self.trajectory(p) for p in prompts]
        self.drive(engine, paths)
        return [self.record(t, tokenizer) for t in paths]

    def drive(self, engine: Engine, paths: list[Trajectory]) -> None:
        """Run trajectories to the end with the chosen driver (`auto`: inflight where the
        engine has it, else resubmit)."""
        mode = self.mode
        if self.semantics == "s1_code" and self.ignore > 0:
            # The cut after the last round takes back tokens the model saw: new requests only.
            if mode == "inflight":
                raise ConfigError(
                    "method.mode=inflight: method.semantics=s1_code cuts thinking after its last "
                    "round, which a decode loop cannot take back; use method.mode=auto"
                )
            if mode == "auto":
                mode = "barrier_free" if hasattr(engine, "run_barrier_free") else "resubmit"
        if mode == "auto":
            mode = "inflight" if hasattr(engine, "run_inflight") else "resubmit"
        if mode == "resubmit":
            self.resubmit(engine, paths)
            return
        runner = getattr(engine, f"run_{mode}", None)
        if runner is None:
            raise ConfigError(
                f"method.mode={mode}: {type(engine).__name__} has no {mode} driver; use "
                "method.mode=resubmit (every engine) or auto"
            )
        runner(paths, self.sampling)

    def resubmit(self, engine: Engine, paths: list[Trajectory]) -> None:
        """The reference driver: every segment of every trajectory is a new engine request."""
        while active := [t for t in paths if t.phase != "done"]:
            params = [self.sampling(t) for t in active]
            outs = engine.generate([t.context() for t in active], params)
            for t, out in zip(active, outs, strict=True):
                t.advance(out.token_ids, out.finish_reason)

    def thinking_limit(self, t: Trajectory) -> int | None:
        """The thinking tokens this run asks the model to stay within (Table 3's Control): the
        cap, `auto` resolved for the prompt."""
        return t.cap

    def record(self, t: Trajectory, tokenizer: Any) -> dict:
        """The sample's fields. `thinking` is what the answer was conditioned on; under s1_code
        `logged_thinking` is the thinking as the evaluation code logs it, before its cut."""
        logged = {}
        if self.semantics == "s1_code":
            ids = t.thinking_ids if t.logged_ids is None else t.logged_ids
            logged = {
                "logged_thinking": tokenizer.decode(ids, skip_special_tokens=False),
                "logged_thinking_tokens": len(ids),
            }
        return logged | {
            "semantics": self.semantics,
            "thinking": tokenizer.decode(t.thinking_ids, skip_special_tokens=False),
            "answer_text": tokenizer.decode(t.exit_ids + t.answer_ids, skip_special_tokens=False),
            "thinking_tokens": len(t.thinking_ids),
            "answer_tokens": len(t.answer_ids),
            "generated_tokens": t.generated_tokens,
            "thinking_cap": t.cap,
            "thinking_limit": self.thinking_limit(t),
            "rounds": t.rounds,
            "ignores_used": t.ignores_used,
            "exit": t.exit,
            "finish_reasons": t.finish_reasons,
            "token_ids": t.thinking_ids + t.exit_ids + t.answer_ids,
            **t.extra,
        }
