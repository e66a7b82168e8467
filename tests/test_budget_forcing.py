"""Budget forcing semantics (S1_SPEC section 3) on the trained toy model, transformers engine."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from s1exp.data import toy
from s1exp.data.format import FORCED_ANSWER, prompt_ids
from s1exp.infer.budget_forcing import BudgetForcing
from s1exp.infer.hf_engine import TransformersEngine


@pytest.fixture(scope="module")
def setup(trained_model: str):
    tok = AutoTokenizer.from_pretrained(trained_model)
    engine = TransformersEngine(trained_model, max_model_len=512, batch_size=32)
    prompts = [prompt_ids(tok, item["question"]) for item in toy.make_benchmark(size=24, seed=7)]
    return tok, engine, prompts


def run(setup, **kwargs) -> list[dict]:
    tok, engine, prompts = setup
    return BudgetForcing(max_length=512, answer_max_tokens=32, **kwargs).run(engine, tok, prompts)


def ids(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def test_cap_forces_exit_with_final_answer(setup) -> None:
    """min_tokens = cap forbids ending thinking before the cap, so every question's thinking runs
    into the cap and must leave by the forced exit: "\n" (unless already there), then
    `<|im_start|>answer\nFinal Answer:`, then the answer."""
    tok, cap = setup[0], 8
    forced = ids(tok, FORCED_ANSWER)
    records = run(setup, cap=cap, min_tokens=cap)
    assert len(records) == len(setup[2])
    for record in records:
        assert record["thinking_tokens"] == cap
        assert record["finish_reasons"][0] == "length" and record["rounds"] == 1
        assert record["exit"] == "forced"
        newline = [] if record["thinking"].endswith("\n") else ids(tok, "\n")
        after = record["token_ids"][cap:]
        assert after[: len(newline) + len(forced)] == newline + forced
        assert record["answer_text"].startswith(("\n" if newline else "") + FORCED_ANSWER)


def test_natural_exit_appends_answer_delimiter(setup):
    tok = setup[0]
    natural = [r for r in run(setup, cap="auto") if r["exit"] == "natural"]
    assert natural, "the trained toy model should end thinking on its own"
    for r in natural:
        n = r["thinking_tokens"]
        assert r["token_ids"][n : n + 2] == ids(tok, "<|im_start|>answer")


def test_wait_extends_thinking_from_the_same_prefix(setup):
    """Greedy: the extended run repeats the plain run's thinking, then appends "Wait"."""
    tok = setup[0]
    wait = ids(tok, "Wait")
    plain = run(setup, cap=200)
    forced = run(setup, cap=200, ignore=2, extrapolation="Wait")
    extended = 0
    for p, f in zip(plain, forced, strict=True):
        assert f["thinking_tokens"] <= 200 and f["ignores_used"] <= 2
        assert f["rounds"] == f["ignores_used"] + 1
        if p["exit"] == "natural" and p["thinking_tokens"] + len(wait) < 200:
            n = p["thinking_tokens"]
            assert f["ignores_used"] >= 1
            assert f["token_ids"][:n] == p["token_ids"][:n]
            assert f["token_ids"][n : n + len(wait)] == wait
            extended += 1
    assert extended > 0


def test_total_thinking_never_exceeds_cap_with_ignores(setup):
    for cap in (5, 17, 40):
        for record in run(setup, cap=cap, ignore=4, extrapolation="Alternatively"):
            assert record["thinking_tokens"] <= cap


def test_min_tokens_suppresses_early_end(setup):
    baseline = min(r["thinking_tokens"] for r in run(setup, cap=300))
    floor = baseline + 10
    for record in run(setup, cap=300, min_tokens=floor):
        assert record["thinking_tokens"] >= floor


def test_empty_extrapolation_still_continues(setup):
    for p, f in zip(
        run(setup, cap=200), run(setup, cap=200, ignore=1, extrapolation=""), strict=True
    ):
        if p["exit"] == "natural":
            assert f["ignores_used"] == 1 and f["thinking_tokens"] > p["thinking_tokens"]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"cap": 0}, "budget.cap"),
        ({"cap": -3}, "budget.cap"),
        ({"cap": "lots"}, "budget.cap"),
        ({"ignore": -1}, "extrapolation.ignore"),
        ({"min_tokens": -1}, "budget.min_tokens"),
    ],
)
def test_bad_settings_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        BudgetForcing(**kwargs)


def test_unencodable_extrapolation_is_rejected(setup):
    with pytest.raises(ValueError, match=r"extrapolation\.string"):
        BudgetForcing(ignore=1, extrapolation="Wait\ud800").prepare(setup[0])


def test_prompt_longer_than_max_length_is_rejected(setup):
    tok, engine, prompts = setup
    with pytest.raises(ValueError, match=r"model\.max_length"):
        BudgetForcing(max_length=len(prompts[0]) + 3).run(engine, tok, prompts[:1])


def test_tokenizer_without_delimiters_is_rejected():
    vocab = {"[UNK]": 0, "hello": 1}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]")
    with pytest.raises(ValueError, match="model"):
        BudgetForcing().prepare(tok)
