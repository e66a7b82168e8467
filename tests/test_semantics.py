"""`method.semantics`: budget forcing as the paper describes it, or as the public s1 evaluation
code runs it (S1_SPEC section 3), on the trained toy model with the transformers engine; vLLM and
SmolLM2 are in tests/test_vllm_engine.py and tests/test_smollm2.py."""

from __future__ import annotations

import pytest
from reference_forcing import budget_force_s1_code
from transformers import AutoModelForCausalLM, AutoTokenizer

from s1exp.data import toy
from s1exp.data.format import prompt_ids
from s1exp.errors import ConfigError
from s1exp.infer.budget_forcing import BudgetForcing
from s1exp.infer.hf_engine import TransformersEngine

MAX_LEN = 512
# Settings where the budget is reached after an ignore (the semantics differ there) and where it
# is not; measured on the tests' toy model (16 prompts): at cap 100 with "Wait" 5 prompts differ,
# cap 60 is reached before the first stop (none differ).
S1_CODE_SETTINGS = {
    "cap60_wait4": {"cap": 60, "ignore": 4, "extrapolation": "Wait"},
    "cap40_empty2": {"cap": 40, "ignore": 2, "extrapolation": ""},
    "cap100_wait2": {"cap": 100, "ignore": 2, "extrapolation": "Wait"},
    "cap200_wait1": {"cap": 200, "ignore": 1, "extrapolation": "Wait"},
    "auto": {"cap": "auto"},
}


@pytest.fixture(scope="module")
def world(trained_model: str):
    tok = AutoTokenizer.from_pretrained(trained_model)
    model = AutoModelForCausalLM.from_pretrained(trained_model).eval()
    engine = TransformersEngine(trained_model, max_model_len=MAX_LEN, batch_size=16)
    prompts = [prompt_ids(tok, q["question"]) for q in toy.make_benchmark(size=16, seed=99)]
    return tok, model, engine, prompts


def run(world, semantics: str, **kwargs) -> list[dict]:
    tok, _, engine, prompts = world
    method = BudgetForcing(max_length=MAX_LEN, answer_max_tokens=32, semantics=semantics, **kwargs)
    return method.run(engine, tok, prompts)


@pytest.mark.parametrize("name", sorted(S1_CODE_SETTINGS))
def test_s1_code_matches_its_reference_loop(world, name):
    """Token for token, and the logged (uncut) thinking too."""
    tok, model, _, prompts = world
    kwargs = S1_CODE_SETTINGS[name]
    records = run(world, "s1_code", **kwargs)
    longest = max(len(p) for p in prompts)
    for i, (record, prompt) in enumerate(zip(records, prompts, strict=True)):
        ids, logged = budget_force_s1_code(
            model, tok, prompt, max_length=MAX_LEN, answer_max_tokens=32,
            longest_prompt=longest, **kwargs,
        )  # fmt: skip
        assert record["token_ids"] == ids, (name, i)
        assert record["semantics"] == "s1_code"
        if logged:
            assert record["logged_thinking"] == tok.decode(logged), (name, i)


def test_the_semantics_differ_only_where_the_budget_is_reached_after_an_ignore(world):
    """Over caps the toy model reaches and does not: every sample the two give different tokens
    for ran into the budget after an ignore (s1_code cut its thinking, or the paper had no room
    left for "Wait"), and such samples exist; the others are token for token the same."""
    differ = 0
    for cap in (60, 100, 200):
        kwargs = dict(cap=cap, ignore=2, extrapolation="Wait")
        code, paper = run(world, "s1_code", **kwargs), run(world, "paper", **kwargs)
        for c, p in zip(code, paper, strict=True):
            assert c["semantics"] == "s1_code" and p["semantics"] == "paper"
            assert c["thinking_tokens"] <= cap and p["thinking_tokens"] <= cap
            assert c["logged_thinking"].startswith(c["thinking"]) and "logged_thinking" not in p
            reached = c["logged_thinking_tokens"] > cap or p["ignores_used"] < c["ignores_used"]
            if c["token_ids"] != p["token_ids"]:
                differ += 1
                assert reached and p["ignores_used"] >= 1, (cap, c, p)
            elif not reached:
                assert c["logged_thinking"] == c["thinking"]
    assert differ > 0, "the toy model should reach a budget after an ignore"


def test_s1_code_auto_budget_comes_from_the_longest_prompt_of_the_batch(world):
    tok = world[0]
    short = prompt_ids(tok, "What is 2+2?")
    long = prompt_ids(tok, "Count down from 700 by 1 until 3 steps are left; what is the number?")
    assert len(short) < len(long)
    code = BudgetForcing(max_length=MAX_LEN, semantics="s1_code")
    code.begin(tok, [short, long])
    paper = BudgetForcing(max_length=MAX_LEN)
    paper.begin(tok, [short, long])
    assert code.budget_for(short) == code.budget_for(long) == paper.budget_for(long)
    assert paper.budget_for(short) - paper.budget_for(long) == len(long) - len(short)
    code.set_batch([short, long])  # the benchmark, run in groups for the journal
    code.begin(tok, [short])
    assert code.budget_for(short) == paper.budget_for(long)


def test_s1_code_cannot_run_in_the_decode_loop(world):
    tok, _, engine, prompts = world
    method = BudgetForcing(cap=60, ignore=2, extrapolation="Wait", max_length=MAX_LEN,
                           semantics="s1_code", mode="inflight")  # fmt: skip
    with pytest.raises(ConfigError, match="method.mode=inflight: method.semantics=s1_code"):
        method.run(engine, tok, prompts[:2])
    with pytest.raises(ConfigError, match="method.semantics='code'"):
        BudgetForcing(semantics="code")
