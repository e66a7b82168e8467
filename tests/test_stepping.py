"""The per-token stepper both in-loop drivers share, and the replay vLLM's driver relies on.

No model: a scripted "model" chooses the tokens, so every branch (stop dropped and "Wait"
forced, suppression below min_tokens, cap reached, natural and forced exit, answer stop) is hit
on purpose, and a stepper must give the records of the segment-level resubmit logic.
"""

from __future__ import annotations

import pickle

import pytest

from s1exp.infer.budget_forcing import BudgetForcing
from s1exp.infer.stepping import Forced, TokenStepper, replay
from s1exp.models import tiny


@pytest.fixture(scope="module")
def tok():
    words = ["Wait, let me check.", "The answer is 42.", "Final Answer: 7"] * 20
    return tiny.build_tokenizer(words, vocab_size=400)


class Script:
    """A model that says the next scripted token unless it is suppressed (then a filler)."""

    def __init__(self, tokens: list[int], filler: int) -> None:
        self.tokens, self.filler, self.asked = list(tokens), filler, 0

    def __call__(self, params, suppress: bool) -> int:
        self.asked += 1
        token = self.tokens.pop(0) if self.tokens else self.filler
        return self.filler if suppress and token in params.stop_token_ids else token


def run_stepper(method: BudgetForcing, tok, script: Script):
    method.prepare(tok)
    t = method.trajectory(method.prompt(tok, "What is 6 times 7?"))
    stepper, emitted = TokenStepper(Forced(t, method.sampling)), []
    while (token := stepper.next_token(script)) is not None:
        emitted.append(token)
    return t, stepper, emitted


@pytest.mark.parametrize(
    "settings",
    [
        dict(cap=12, ignore=2, extrapolation="Wait"),  # two stops dropped, "Wait" forced twice
        dict(cap=2, ignore=0),  # the cap is reached before the stop: forced exit
        dict(cap=12, min_tokens=5, ignore=1, extrapolation=""),  # suppressed stop, empty string
    ],
)
def test_the_stepper_emits_the_context_and_replay_rebuilds_the_record(tok, settings):
    end_of_thinking = tok.convert_tokens_to_ids("<|im_start|>")
    end_of_turn = tok.convert_tokens_to_ids("<|im_end|>")
    word = tok("answer", add_special_tokens=False)["input_ids"][0]
    # thinking: 2 words, stop; 1 word, stop; 3 words, stop; answer: 2 words, end of turn
    script = [word] * 2 + [end_of_thinking] + [word] + [end_of_thinking] + [word] * 3
    script += [end_of_thinking] + [word] * 2 + [end_of_turn]
    method = BudgetForcing(max_length=128, answer_max_tokens=8, **settings)
    t, stepper, emitted = run_stepper(method, tok, Script(script, filler=word))
    assert t.phase == "done" and stepper.done
    prompt = len(t.prompt_ids)
    assert emitted == t.context()[prompt:]  # dropped stops never emitted, forced ones are

    fresh = method.trajectory(t.prompt_ids)
    replay(Forced(fresh, method.sampling), emitted, stepper.events)
    assert method.record(fresh, tok) == method.record(t, tok)
    if settings.get("ignore") == 2:
        assert t.ignores_used == 2 and t.rounds == 3 and t.exit == "natural"
    if settings["cap"] == 2:
        assert t.exit == "forced" and len(t.thinking_ids) == 2
    if settings.get("min_tokens"):
        assert len(t.thinking_ids) >= 5


def test_replay_refuses_tokens_the_events_do_not_explain(tok):
    end_of_thinking = tok.convert_tokens_to_ids("<|im_start|>")
    word = tok("answer", add_special_tokens=False)["input_ids"][0]
    method = BudgetForcing(cap=12, ignore=1, extrapolation="Wait", max_length=128)
    script = Script([word, end_of_thinking, word, end_of_thinking], filler=word)
    t, stepper, emitted = run_stepper(method, tok, script)
    bad = list(emitted)
    bad[1] = word  # where "Wait" was forced
    with pytest.raises(RuntimeError, match="forced tokens"):
        replay(Forced(method.trajectory(t.prompt_ids), method.sampling), bad, stepper.events)
    with pytest.raises(RuntimeError, match="events explain"):
        replay(Forced(method.trajectory(t.prompt_ids), method.sampling), emitted + [word], [])


def test_a_sequence_survives_pickling(tok):
    """vLLM's processor gets its trajectory pickled (it may run in another process)."""
    method = BudgetForcing(cap=12, ignore=1, extrapolation="Wait", max_length=128)
    method.prepare(tok)
    t = method.trajectory(method.prompt(tok, "What is 6 times 7?"))
    copy = pickle.loads(pickle.dumps(Forced(t, method.sampling)))
    assert copy.params() == method.sampling(t)
    assert copy.trajectory.marks.newline_ending == method.marks.newline_ending


def test_a_driver_the_engine_lacks_is_a_one_line_error():
    """`barrier_free` exists on vLLM only; transformers names the modes that work."""
    from s1exp.errors import ConfigError
    from s1exp.infer.hf_engine import TransformersEngine

    engine = TransformersEngine.__new__(TransformersEngine)  # no model needed to pick a driver
    with pytest.raises(ConfigError, match="method.mode=barrier_free: TransformersEngine has no"):
        BudgetForcing(mode="barrier_free").drive(engine, [])
    with pytest.raises(ConfigError, match="method.mode='rounds'"):
        BudgetForcing(mode="rounds")
