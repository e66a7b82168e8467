"""Tests for the tiny offline Qwen2 model and its Qwen2.5-like tokenizer (s1exp.models.tiny)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from s1exp.models import tiny


def _corpus() -> list[str]:
    """Small arithmetic traces in the s1 assistant format, with self-corrections after "Wait"."""
    rows = []
    for a in range(3, 150, 7):
        for b in range(2, 60, 9):
            rows.append(
                f"Question: What is {a} + {b}?\n<|im_start|>think\nLet me add {a} and {b}. "
                f"The sum is {a + b + 1}. Wait, that is wrong. Hmm, recompute: {a} + {b} = {a + b}."
                f"\n<|im_start|>answer\nAnswer: {a + b}\nFinal answer: {a + b}"
            )
    return rows


@pytest.fixture(scope="module")
def tok():
    return tiny.build_tokenizer(_corpus())


@pytest.fixture(scope="module")
def model(tok):
    return tiny.build_model(tok, seed=0)


@pytest.fixture(scope="module")
def saved(tok, model, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny")
    tiny.save(model, tok, out)
    return out


def test_tokenizer_deterministic(tok):
    again = tiny.build_tokenizer(_corpus())
    assert again.get_vocab() == tok.get_vocab()
    assert again.backend_tokenizer.to_str() == tok.backend_tokenizer.to_str()
    assert 200 < len(tok) <= 1024


def test_pretokenizer_is_qwens():
    from transformers.models.qwen2 import tokenization_qwen2

    assert tiny.QWEN_PRETOKENIZE_REGEX == tokenization_qwen2.PRETOKENIZE_REGEX


@pytest.mark.parametrize(
    "text",
    [
        "12345",
        "Wait",
        "<|im_start|>think\n",
        "  leading spaces\n\nand\ttabs \n",
        "\n\n\n",
        " Final Answer: 3.14 + (-2)/7 = x^2; \"quoted\" 'it's' ~`|{}[]@#$%&*\\",
        "<|im_start|>user\n99 bottles<|im_end|>\n<|endoftext|>",
        "héllo ∑ 你好",
    ],
)
def test_round_trip(tok, text):
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text


def test_digits_words_and_specials(tok):
    for d in "0123456789":
        assert len(tok.encode(d, add_special_tokens=False)) == 1
    assert tok.tokenize("12345") == list("12345")
    for word in tiny.REQUIRED_WORDS:
        assert len(tok.encode(word, add_special_tokens=False)) == 1, word
        assert len(tok.encode(" " + word, add_special_tokens=False)) == 1, word
    ids = {t: tok.convert_tokens_to_ids(t) for t in tiny.SPECIAL_TOKENS}
    assert sorted(ids.values()) == [0, 1, 2]
    for t, i in ids.items():
        assert tok.encode(t, add_special_tokens=False) == [i]
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    for delim in ("think", "answer"):
        ids_ = tok.encode(f"<|im_start|>{delim}", add_special_tokens=False)
        assert ids_ == [ids["<|im_start|>"], tok.convert_tokens_to_ids(delim)]
    assert tok.model_max_length == 2048
    # Special tokens are dropped on request; "think"/"answer" are ordinary text and stay.
    text = "<|im_start|>think\nx<|im_end|>"
    assert tok.decode(tok.encode(text), skip_special_tokens=True) == "think\nx"


def test_chat_template(tok):
    user = {"role": "user", "content": "What is 2 + 2?"}
    system = {"role": "system", "content": "Be brief."}
    got = tok.apply_chat_template([user], tokenize=False, add_generation_prompt=True)
    assert got == (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
        "<|im_end|>\n<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n<|im_start|>assistant\n"
    )
    got = tok.apply_chat_template([system, user], tokenize=False, add_generation_prompt=True)
    assert got == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    convo = [user, {"role": "assistant", "content": "4"}]
    got = tok.apply_chat_template(convo, tokenize=False)
    assert got.endswith("<|im_start|>assistant\n4<|im_end|>\n")


def test_model_config_and_determinism(tok, model):
    cfg = model.config
    assert cfg.hidden_size // cfg.num_attention_heads >= 64
    assert cfg.head_dim >= 64
    assert cfg.vocab_size % 64 == 0 and cfg.vocab_size >= len(tok)
    assert cfg.tie_word_embeddings
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert cfg.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>")
    assert cfg.pad_token_id == tok.pad_token_id
    assert next(model.parameters()).dtype == torch.float32
    state = torch.get_rng_state()
    again = tiny.build_model(tok, seed=0)
    assert torch.equal(state, torch.get_rng_state())  # global RNG untouched
    other = tiny.build_model(tok, seed=1)
    for (k, v), v2 in zip(model.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(v, v2), k
    assert not torch.equal(model.model.embed_tokens.weight, other.model.embed_tokens.weight)
    with pytest.raises(ValueError):
        tiny.build_model(tok, hidden_size=128, num_heads=4)


def test_save_reload(tok, model, saved):
    files = {p.name for p in saved.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= files
    gen = json.loads((saved / "generation_config.json").read_text())
    assert gen["eos_token_id"] == [
        tok.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")
    ]
    assert json.loads((saved / "tokenizer_config.json").read_text())["chat_template"]

    tok2 = AutoTokenizer.from_pretrained(saved)
    model2 = AutoModelForCausalLM.from_pretrained(saved).eval()
    texts = ["<|im_start|>think\nWait, 12 + 30 = 42.", "Hmm  \n\n answer"]
    assert tok2.get_vocab() == tok.get_vocab()
    assert tok2.chat_template == tok.chat_template
    assert tok2.eos_token == "<|im_end|>" and tok2.pad_token == "<|endoftext|>"
    for t in texts:
        assert tok2.encode(t) == tok.encode(t)
    batch = tok(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        a = model(**batch).logits
        b = model2(**batch).logits
    assert torch.equal(a, b)


def _greedy(model, ids: list[int], n: int) -> tuple[list[int], list[float]]:
    """Plain argmax decoding over the full (padded) vocabulary, as vLLM's greedy sampling does.

    Returns the tokens and their log-probabilities.
    """
    x = torch.tensor([ids])
    out, logprobs = [], []
    with torch.no_grad():
        for _ in range(n):
            lp = torch.log_softmax(model(x).logits[0, -1], dim=-1)
            nxt = int(lp.argmax())
            out.append(nxt)
            logprobs.append(float(lp[nxt]))
            x = torch.cat([x, torch.tensor([[nxt]])], dim=1)
    return out, logprobs


_VLLM_SCRIPT = textwrap.dedent(
    """
    import json, sys
    if __name__ == "__main__":
        from vllm import LLM, SamplingParams
        llm = LLM(model=sys.argv[1], enforce_eager=True, dtype="float32", max_model_len=512)
        prompts = json.loads(sys.argv[2])
        params = SamplingParams(temperature=0.0, max_tokens=8, ignore_eos=True, logprobs=0)
        outs = llm.generate(prompts, params)
        res = []
        for o in outs:
            c = o.outputs[0]
            lps = [lp[t].logprob for t, lp in zip(c.token_ids, c.logprobs)]
            res.append({"prompt": o.prompt_token_ids, "out": list(c.token_ids), "logprobs": lps})
        with open(sys.argv[3], "w") as f:
            json.dump(res, f)
    """
)


@pytest.mark.vllm
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm not installed")
def test_vllm_loads_and_matches_transformers(tok, model, saved, tmp_path):
    prompts = [
        tok.apply_chat_template(
            [{"role": "user", "content": "What is 17 + 25?"}],
            tokenize=False,
            add_generation_prompt=True,
        )
        + "<|im_start|>think\n",
        "Question: What is 3 + 4?\nWait",
    ]
    script, result = tmp_path / "run_vllm.py", tmp_path / "out.json"
    script.write_text(_VLLM_SCRIPT)
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    proc = subprocess.run(
        [sys.executable, str(script), str(saved), json.dumps(prompts), str(result)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    res = json.loads(result.read_text())
    for prompt, r in zip(prompts, res, strict=True):
        ids = tok.encode(prompt, add_special_tokens=False)
        assert r["prompt"] == ids  # vLLM tokenizes exactly like transformers
        out, logprobs = _greedy(model, ids, 8)
        assert r["out"] == out
        # Same numbers, not just the same argmax: the weights, RoPE and norms load identically.
        assert r["logprobs"] == pytest.approx(logprobs, abs=1e-3)
