"""The SFT recipe: the paper's hyper-parameters as one config node, turned into a Lightning fit.

`conf/train/*.yaml` instantiate `SFTRecipe` (or `NoTraining` to evaluate the base model as is);
`conf/strategy/*.yaml` supply the distributed strategy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from transformers import AutoTokenizer

from s1exp.data.format import TrainingExample
from s1exp.train.datamodule import SFTDataModule
from s1exp.train.module import SFTModule


class SteadyThroughput(L.Callback):
    """Tokens/s per device after the first optimizer step (start-up and warm-up excluded)."""

    def __init__(self) -> None:
        self.start: float | None = None
        self.tokens = 0
        self.tokens_per_s = float("nan")

    @staticmethod
    def _now() -> float:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        if self.start is None:
            if trainer.global_step >= 1:
                self.start = self._now()
            return
        self.tokens += int(args[2]["attention_mask"].sum())

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self.start is not None and self.tokens:
            self.tokens_per_s = self.tokens / (self._now() - self.start)


def full_state_dict(trainer: L.Trainer, module: SFTModule) -> dict[str, Any] | None:
    """Unsharded weights on global rank 0 (None elsewhere), whatever the strategy.

    FSDP gathers through Lightning's full-state-dict path; DeepSpeed ZeRO-3 keeps only partitions
    in each rank's parameters, so they are gathered explicitly before reading them.
    """
    if getattr(trainer.strategy, "zero_stage_3", False):
        import deepspeed

        params = list(module.model.parameters())
        with deepspeed.zero.GatheredParameters(params, modifier_rank=None):
            if not trainer.is_global_zero:
                return None
            return {k: v.detach().cpu().clone() for k, v in module.model.state_dict().items()}
    state = trainer.strategy.lightning_module_state_dict()
    if not trainer.is_global_zero:
        return None
    return {k.removeprefix("model."): v for k, v in state.items()}


@dataclass
class NoTraining:
    """`train=none`: evaluate the base model itself."""

    trains: bool = field(default=False, init=False)


@dataclass
class SFTRecipe:
    """Supervised fine-tuning hyper-parameters (S1_SPEC section 2 for the paper's values)."""

    epochs: int
    lr: float
    warmup_ratio: float
    betas: tuple[float, float]
    weight_decay: float
    global_batch_size: int
    micro_batch_size: int
    block_size: int
    precision: str = "32-true"
    dtype: str = "float32"
    gradient_clip_val: float | None = 1.0
    accelerator: str = "auto"
    devices: int = 1
    num_nodes: int = 1
    seed: int = 0
    log_every_n_steps: int = 5
    trains: bool = field(default=True, init=False)

    def accumulation(self) -> int:
        """Gradient accumulation steps that make up the global batch."""
        per_step = self.micro_batch_size * self.devices * self.num_nodes
        if per_step <= 0 or self.global_batch_size % per_step:
            raise ValueError(
                f"train.global_batch_size={self.global_batch_size} must be a positive multiple of "
                f"train.micro_batch_size x train.devices x train.num_nodes = {per_step}; "
                "change one of them"
            )
        return self.global_batch_size // per_step

    def fit(
        self,
        base_model: str,
        examples: list[TrainingExample],
        out_dir: Path,
        strategy: Any = "auto",
        logger: Any = False,
    ) -> dict[str, float]:
        """Train on `examples` and save a Hugging Face checkpoint (model + tokenizer) to out_dir."""
        if not examples:
            raise ValueError("selection: no training examples; check selection.size and data")
        L.seed_everything(self.seed, workers=True, verbose=False)
        tokenizer = AutoTokenizer.from_pretrained(base_model)
        module = SFTModule(
            base_model, self.lr, tuple(self.betas), self.weight_decay, self.warmup_ratio, self.dtype
        )
        data = SFTDataModule(examples, self.micro_batch_size, tokenizer.pad_token_id)
        throughput = SteadyThroughput()
        trainer = L.Trainer(
            max_epochs=self.epochs,
            callbacks=[throughput],
            accelerator=self.accelerator,
            devices=self.devices,
            num_nodes=self.num_nodes,
            strategy=strategy,
            precision=self.precision,
            accumulate_grad_batches=self.accumulation(),
            gradient_clip_val=self.gradient_clip_val,
            logger=logger,
            log_every_n_steps=self.log_every_n_steps,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=str(out_dir),
        )
        start = time.perf_counter()
        trainer.fit(module, datamodule=data)
        seconds = time.perf_counter() - start
        state = full_state_dict(trainer, module)
        if trainer.is_global_zero:
            module.model.save_pretrained(out_dir, state_dict=state)
            tokenizer.save_pretrained(out_dir)
        tokens = sum(len(e.input_ids) for e in examples) * self.epochs
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        metrics |= {
            "train/steady_tokens_per_s": throughput.tokens_per_s,
            "train/seconds": seconds,
            "train/tokens_per_s": tokens / seconds,
            "train/optimizer_steps": float(trainer.global_step),
        }
        return metrics
