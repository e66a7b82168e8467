"""The engines follow S1_SPEC section 3 token for token (greedy), checked against a naive loop."""

from __future__ import annotations

import pytest
from reference_forcing import SETTINGS, budget_force, divergences
from transformers import AutoModelForCausalLM, AutoTokenizer

from s1exp.data import toy
from s1exp.data.format import prompt_ids
from s1exp.infer.budget_forcing import BudgetForcing
from s1exp.infer.hf_engine import TransformersEngine


@pytest.fixture(scope="module")
def world(trained_model: str):
    tok = AutoTokenizer.from_pretrained(trained_model)
    model = AutoModelForCausalLM.from_pretrained(trained_model).eval()
    engine = TransformersEngine(trained_model, max_model_len=512, batch_size=8)
    prompts = [prompt_ids(tok, q["question"]) for q in toy.make_benchmark(size=20, seed=99)]
    return tok, model, engine, prompts


@pytest.mark.parametrize("mode", ["resubmit", "inflight"])
@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_transformers_engine_matches_reference(world, name: str, mode: str):
    tok, model, engine, prompts = world
    kwargs = SETTINGS[name]
    method = BudgetForcing(max_length=512, answer_max_tokens=32, mode=mode, **kwargs)
    got = [r["token_ids"] for r in method.run(engine, tok, prompts)]
    want = [
        budget_force(model, tok, p, max_length=512, answer_max_tokens=32, **kwargs) for p in prompts
    ]
    diverged = divergences(got, want)
    assert not diverged, (
        f"{len(diverged)}/{len(prompts)} differ (sample, first position): {diverged}"
    )
