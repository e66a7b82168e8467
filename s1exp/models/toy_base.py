"""The toy base model: the stand-in for Qwen2.5-Instruct, built once per machine and cached.

A tiny Qwen2 model with its own tokenizer, trained briefly as an "instruct" model that writes
every step of a toy walk inside the s1 think/answer delimiters, pausing like the teacher but
always going on after "Wait" (`toy.CAREFUL`). SFT on selected reasoning traces then teaches it
the teacher's habit of stopping early, less (s1K) or more (random), as s1K teaches
Qwen2.5-32B-Instruct to think long. The delimiters are learned here, not in SFT, because a model
this small that first meets them in SFT loses its arithmetic (SFT starts at loss ~4 and ends
with the steps wrong) while one that knows them keeps it.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from s1exp.data import toy
from s1exp.data.format import assistant_text, training_example
from s1exp.models import tiny
from s1exp.store import ArtifactStore, config_key
from s1exp.train.recipe import SFTRecipe

log = logging.getLogger(__name__)

BUILD_VERSION = 2  # bump when the build or the toy world changes, so cached models are rebuilt


def tokenizer_corpus(seed: int) -> list[str]:
    """Text the tokenizer is trained on: toy questions, solutions, traces and the chat format."""
    rows = toy.make_pool(size=3000, seed=seed + 10_000, flawed_fraction=0.0)
    # The chat roles and the default system prompt open every example: merged into words they
    # are ~20 tokens instead of ~70 characters, a third less compute per training example.
    chat = f"system\n{tiny.DEFAULT_SYSTEM_PROMPT}\nuser\nassistant"
    texts = [f"{chat}\n{r['question']}\n{r['solution']}" for r in rows]
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
        corpus = toy.instruct_corpus(size=pretrain["examples"], seed=seed)
        examples = [
            training_example(tokenizer, q, thinking, answer, pretrain["block_size"])
            for q, thinking, answer in corpus
        ]
        recipe_args = {k: v for k, v in pretrain.items() if k != "examples"}
        log.info(
            "building the toy base model once for this machine: %d examples, cached in %s",
            len(examples),
            store.root,
        )
        recipe = SFTRecipe(**recipe_args, seed=seed)
        metrics = recipe.fit(
            str(init_dir), examples, out, resume_dir=resume_dir, progress="toy base model"
        )
        (out / "pretrain_metrics.json").write_text(json.dumps(metrics, indent=2))

    resume_dir = store.path("base_models", f".resume-{key}")
    model = store.get_or_build("base_models", key, build, describe=settings)
    shutil.rmtree(resume_dir, ignore_errors=True)  # the points of the finished build
    return str(model.path)
