"""The SFT learning-rate schedule (S1_SPEC section 2): linear warmup over `warmup_ratio` of the
optimizer steps, then cosine to 0 at the last step; as a function and as a real Lightning fit
applies it, step by step."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch

from s1exp.data.format import IGNORE_INDEX, TrainingExample
from s1exp.train.module import warmup_cosine
from s1exp.train.recipe import SFTRecipe


def test_warmup_cosine_at_the_papers_315_steps() -> None:
    """s1-32B: 315 steps, 5% warmup = 16 steps. Warmup rises linearly by 1/16 per step to the
    peak at its last step (the first update already moves: 1/16, not 0); the cosine starts at
    the peak, passes 1/2 at its midpoint and reaches 0 at step 315."""
    total, warmup = 315, 16
    assert warmup == round(0.05 * total)  # what SFTModule.configure_optimizers computes
    lr = [warmup_cosine(s, total, warmup) for s in range(total + 1)]
    assert lr[0] == pytest.approx(1 / 16)
    assert lr[7] == pytest.approx(8 / 16)
    assert lr[15] == pytest.approx(1.0)  # end of warmup: the peak
    assert all(b - a == pytest.approx(1 / 16) for a, b in zip(lr[:15], lr[1:16], strict=True))
    assert lr[16] == pytest.approx(1.0)  # cosine at progress 0
    # Cosine midpoint: 299 decay steps, so half way lies between steps 165 and 166.
    assert lr[165] == pytest.approx(0.5 * (1 + math.cos(math.pi * 149 / 299)))
    assert lr[165] > 0.5 > lr[166]
    assert (lr[165] + lr[166]) / 2 == pytest.approx(0.5, abs=1e-12)
    assert lr[314] == pytest.approx(0.5 * (1 + math.cos(math.pi * 298 / 299)))  # last update
    assert 0 < lr[314] < 1e-4
    assert lr[315] == pytest.approx(0.0, abs=1e-12)  # end: 0
    assert all(a >= b for a, b in zip(lr[16:], lr[17:], strict=False))  # decays monotonically


@pytest.mark.parametrize(
    ("step", "multiplier"),
    [(0, 0.25), (3, 1.0), (4, 1.0), (29, 0.5), (54, 0.0)],
)
def test_warmup_cosine_exact_midpoint(step: int, multiplier: float) -> None:
    """54 steps, 4 of warmup: step 0 at 1/4, the peak at steps 3 and 4, and 50 decay steps that
    put the cosine midpoint (1/2) exactly on step 29 and 0 on step 54."""
    assert warmup_cosine(step, 54, 4) == pytest.approx(multiplier, abs=1e-12)


class LearningRates(L.Callback):
    """The learning rate each optimizer step uses, and the one left after the last."""

    def __init__(self) -> None:
        self.used: list[float] = []
        self.after: float | None = None
        self.total: int | None = None

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.total = int(trainer.estimated_stepping_batches)

    def on_before_optimizer_step(
        self, trainer: L.Trainer, module: L.LightningModule, optimizer: Any
    ) -> None:
        self.used.append(optimizer.param_groups[0]["lr"])

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.after = trainer.optimizers[0].param_groups[0]["lr"]


@pytest.fixture(scope="module")
def tiny_base(one_layer_base: str) -> str:
    return one_layer_base


def examples(n: int, vocab: int = 300, length: int = 12) -> list[TrainingExample]:
    rng = random.Random(0)
    out = []
    for _ in range(n):
        ids = [rng.randrange(3, vocab) for _ in range(length)]
        out.append(TrainingExample(ids, [IGNORE_INDEX] * 4 + ids[4:]))
    return out


def test_fit_applies_warmup_then_cosine(tiny_base: str, tmp_path: Path) -> None:
    """A real fit of 10 optimizer steps (40 examples, global batch 4, 1 epoch), warmup_ratio 0.2
    = 2 steps: the optimizer steps at lr x (1/2, 1, then cosine over 8 steps: 1, ..., 1/2 at
    step 6, ...), and the lr left after the last step is 0."""
    lr = 1e-3
    recipe = SFTRecipe(
        epochs=1,
        lr=lr,
        warmup_ratio=0.2,
        betas=(0.9, 0.95),
        weight_decay=1e-4,
        global_batch_size=4,
        micro_batch_size=4,
        block_size=12,
        accelerator="cpu",
        log_every_n_steps=1,
    )
    seen = LearningRates()
    torch_threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        recipe.fit(tiny_base, examples(40), tmp_path / "out", callbacks=[seen])
    finally:
        torch.set_num_threads(torch_threads)
    cosine = [0.5 * (1 + math.cos(math.pi * k / 8)) for k in range(8)]
    expected = [lr * m for m in [0.5, 1.0, *cosine]]
    assert seen.total == 10
    assert seen.used == pytest.approx(expected, rel=1e-9)
    assert seen.used[6] == pytest.approx(0.5 * lr)  # the cosine's midpoint
    assert seen.after == pytest.approx(0.0, abs=1e-15)
