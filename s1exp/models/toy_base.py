"""The toy base model: the stand-in for Qwen2.5-Instruct, built once per machine and cached.

A tiny Qwen2 model with its own tokenizer, trained briefly as an "instruct" model that answers
toy questions with plain step-by-step solutions (no think/answer delimiters). SFT on selected
reasoning traces then teaches it the s1 thinking format, as s1K does for Qwen2.5-32B-Instruct.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from s1exp.data import toy
from s1exp.data.format import assistant_text, chat_example
from s1exp.models import tiny
from s1exp.store import ArtifactStore, config_key
from s1exp.train.recipe import SFTRecipe

BUILD_VERSION = 1  # bump when the build procedure changes so cached models are rebuilt


def tokenizer_corpus(seed: int) -> list[str]:
    """Text the tokenizer is trained on: toy questions, solutions, traces and the chat format."""
    rows = toy.make_pool(size=3000, seed=seed + 10_000, flawed_fraction=0.0)
    texts = [r["question"] + "\n" + r["solution"] for r in rows]
    texts += [assistant_text(r["thinking"] or "", r["attempt"] or "") for r in rows]
    return texts


def pretrain_tokenizer(size: int, seed: int = 0, vocab_size: int = 1024) -> Any:
    """A tokenizer trained on `size` toy question/answer pairs: for tests and benches that build
    a throwaway tiny model instead of the cached base model."""
    pairs = toy.pretrain_corpus(size=size, seed=seed)
    return tiny.build_tokenizer([q + "\n" + a for q, a in pairs], vocab_size=vocab_size)


def toy_base_model(
    cache_dir: str,
    seed: int,
    architecture: dict[str, int],
    pretrain: dict[str, Any],
    vocab_size: int = 1024,
    **_: Any,
) -> str:
    """Path of the cached base model, building it first if this machine has none."""
    settings = {
        "seed": seed,
        "architecture": architecture,
        "pretrain": pretrain,
        "vocab_size": vocab_size,
        "version": BUILD_VERSION,
    }
    store = ArtifactStore(cache_dir)
    key = config_key(settings)

    def build(out: Path) -> None:
        tokenizer = tiny.build_tokenizer(tokenizer_corpus(seed), vocab_size=vocab_size)
        model = tiny.build_model(tokenizer, seed=seed, **architecture)
        init_dir = out / "init"
        tiny.save(model, tokenizer, init_dir)
        pairs = toy.pretrain_corpus(size=pretrain["examples"], seed=seed)
        examples = [chat_example(tokenizer, q, a, pretrain["block_size"]) for q, a in pairs]
        recipe_args = {k: v for k, v in pretrain.items() if k != "examples"}
        metrics = SFTRecipe(**recipe_args, seed=seed).fit(str(init_dir), examples, out)
        (out / "pretrain_metrics.json").write_text(json.dumps(metrics, indent=2))

    return str(store.get_or_build("base_models", key, build, describe=settings).path)
