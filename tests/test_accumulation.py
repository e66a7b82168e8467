"""Gradient accumulation (S1_SPEC section 2: global batch 16): SFTRecipe.accumulation derives the
steps from the global batch, micro batch, devices and nodes, refuses a batch that does not split,
and a real Lightning fit takes ceil(examples / global batch) optimizer steps per epoch, each over
`accumulation` micro-batches."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from s1exp.data.format import IGNORE_INDEX, TrainingExample
from s1exp.errors import ConfigError
from s1exp.train.recipe import SFTRecipe

CONF = Path(__file__).resolve().parent.parent / "conf" / "train"


def recipe(global_batch: int, micro: int, devices: int = 1, nodes: int = 1, **kw: Any) -> SFTRecipe:
    settings: dict[str, Any] = dict(
        epochs=1,
        lr=1e-3,
        warmup_ratio=0.05,
        betas=(0.9, 0.95),
        weight_decay=1e-4,
        global_batch_size=global_batch,
        micro_batch_size=micro,
        block_size=16,
        accelerator="cpu",
        devices=devices,
        num_nodes=nodes,
        log_every_n_steps=1,
    )
    return SFTRecipe(**(settings | kw))


@pytest.mark.parametrize(
    ("global_batch", "micro", "devices", "nodes", "steps"),
    [
        (16, 1, 8, 2, 1),  # s1-32B: 16 H100 x micro batch 1
        (16, 1, 1, 1, 16),  # the same batch on one GPU: 16 micro-batches per step
        (16, 2, 4, 1, 2),
        (16, 16, 1, 1, 1),  # the toy recipe
        (32, 2, 2, 2, 4),
    ],
)
def test_accumulation_makes_up_the_global_batch(
    global_batch: int, micro: int, devices: int, nodes: int, steps: int
) -> None:
    """global batch = micro batch x devices x nodes x accumulation."""
    assert recipe(global_batch, micro, devices, nodes).accumulation() == steps
    assert micro * devices * nodes * steps == global_batch


def test_shipped_recipes_accumulate_as_the_paper() -> None:
    """conf/train/s1.yaml (2 nodes x 8 GPUs, micro 1) and toy.yaml (micro 16, one CPU) both make
    a global batch of 16 without accumulation."""
    for name in ("s1", "toy"):
        built = instantiate(OmegaConf.load(CONF / f"{name}.yaml"), seed=0)
        assert built.global_batch_size == 16 and built.accumulation() == 1, name


@pytest.mark.parametrize(
    ("global_batch", "micro", "devices", "nodes", "per_step"),
    [
        (16, 3, 1, 1, 3),
        (16, 1, 3, 1, 3),
        (16, 4, 2, 3, 24),  # larger than the global batch
        (10, 4, 1, 1, 4),
        (16, 0, 1, 1, 0),
        (0, 16, 1, 1, 16),  # an empty global batch would give 0 accumulation steps
        (-16, 16, 1, 1, 16),
    ],
)
def test_indivisible_global_batch_is_refused(
    global_batch: int, micro: int, devices: int, nodes: int, per_step: int
) -> None:
    """The error names the settings and the product the global batch must be a multiple of."""
    with pytest.raises(ConfigError) as caught:
        recipe(global_batch, micro, devices, nodes).accumulation()
    message = str(caught.value)
    assert f"train.global_batch_size={global_batch} must be a positive multiple" in message
    assert f"train.micro_batch_size x train.devices x train.num_nodes = {per_step}" in message


class Steps(L.Callback):
    """Micro-batches started before each optimizer step; the Trainer's own settings."""

    def __init__(self) -> None:
        self.batches = 0
        self.at_step: list[int] = []
        self.accumulate: int | None = None
        self.estimated: int | None = None

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.accumulate = trainer.accumulate_grad_batches
        self.estimated = int(trainer.estimated_stepping_batches)

    def on_train_batch_start(self, *args: Any) -> None:
        self.batches += 1

    def on_before_optimizer_step(self, *args: Any) -> None:
        self.at_step.append(self.batches)


@pytest.fixture(scope="module")
def tiny_base(one_layer_base: str) -> str:
    return one_layer_base


def examples(n: int, length: int = 8) -> list[TrainingExample]:
    rng = random.Random(0)
    out = []
    for _ in range(n):
        ids = [rng.randrange(3, 300) for _ in range(length)]
        out.append(TrainingExample(ids, [IGNORE_INDEX] * 2 + ids[2:]))
    return out


def fit(base: str, sft: SFTRecipe, n: int, out: Path) -> tuple[Steps, dict[str, float]]:
    steps = Steps()
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        metrics = sft.fit(base, examples(n), out, callbacks=[steps])
    finally:
        torch.set_num_threads(threads)
    return steps, metrics


def test_fit_steps_once_per_global_batch(tiny_base: str, tmp_path: Path) -> None:
    """10 examples, micro batch 2, global batch 4, 2 epochs: the Trainer accumulates 2
    micro-batches, so each epoch steps after micro-batches 2, 4 and 5 (the short last batch
    steps too): ceil(10 / 4) x 2 = 6 optimizer steps over 10 micro-batches."""
    steps, metrics = fit(tiny_base, recipe(4, 2, epochs=2), 10, tmp_path / "out")
    assert steps.accumulate == 2
    assert steps.at_step == [2, 4, 5, 7, 9, 10]
    assert steps.batches == 10
    assert steps.estimated == metrics["train/optimizer_steps"] == math.ceil(10 / 4) * 2 == 6


def test_fit_takes_the_papers_315_steps(tiny_base: str, tmp_path: Path) -> None:
    """s1K's shape: 1,000 examples, global batch 16, 5 epochs = ceil(1000 / 16) x 5 = 315
    optimizer steps (S1_SPEC section 2), here as micro batch 4 x 4 accumulation steps."""
    steps, metrics = fit(tiny_base, recipe(16, 4, epochs=5), 1000, tmp_path / "out")
    assert steps.accumulate == 4
    assert steps.estimated == metrics["train/optimizer_steps"] == 315
    assert steps.batches == 250 * 5
    per_step = [b - a for a, b in zip([0, *steps.at_step], steps.at_step, strict=False)]
    assert per_step == ([4] * 62 + [2]) * 5  # 1000 = 62 x 16 + 8: the last step of an epoch
