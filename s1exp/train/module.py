"""SFT as a LightningModule: loss on supervised tokens, the paper's optimizer schedule."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch

from s1exp.models.loading import causal_lm


def warmup_cosine(step: int, total_steps: int, warmup_steps: int) -> float:
    """LR multiplier: linear warmup to 1, then cosine to 0 at `total_steps` (S1_SPEC section 2)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


class SFTModule(L.LightningModule):
    """Fine-tunes a Hugging Face causal LM; labels of -100 (prompt, padding) carry no loss."""

    def __init__(
        self,
        model_path: str,
        lr: float,
        betas: tuple[float, float],
        weight_decay: float,
        warmup_ratio: float,
        dtype: str = "float32",
        activation_checkpointing: bool = False,
        trust_remote_code: bool = False,  # the base model config's (s1exp.models.loading)
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model_path = model_path
        self.model: torch.nn.Module | None = None

    def configure_model(self) -> None:
        # Loaded here, not in __init__, so sharded strategies build it sharded: a strategy with a
        # `build_model` (FSDP2, ZeRO-3) loads the weights its own way, never whole on every rank.
        if self.model is not None:
            return
        dtype = getattr(torch, self.hparams.dtype)
        trust = self.hparams.trust_remote_code
        build = getattr(self.trainer.strategy, "build_model", None) if self._trainer else None
        if build is not None:
            model = build(self.model_path, dtype, trust_remote_code=trust)
        else:
            model = causal_lm(self.model_path, dtype=dtype, trust_remote_code=trust)
        model.config.use_cache = False
        if self.hparams.activation_checkpointing:
            model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False}
            )
        # from_pretrained returns eval mode and Lightning leaves it so; Hugging Face checkpoints a
        # layer only in training mode, so without this the flag above would do nothing.
        self.model = model.train()

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        out = self.model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            labels=batch["labels"],
        )
        supervised = (batch["labels"] != -100).sum()
        self.log("train/loss", out.loss, prog_bar=True, batch_size=batch["input_ids"].shape[0])
        self.log("train/tokens", supervised.float(), reduce_fx="sum", batch_size=1)
        return out.loss

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # Before clipping: the norm that clipping compares with train.gradient_clip_val. Only on
        # the steps the logger writes: a second pass over every gradient each step costs ~3%.
        if self.trainer.global_step % self.trainer.log_every_n_steps:
            return
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        if grads:
            norm = torch.nn.utils.get_total_norm(grads)
            if hasattr(norm, "full_tensor"):  # FSDP2: a DTensor of partial norms over the shards
                norm = norm.full_tensor()
            self.log("train/grad_norm", norm, batch_size=1)
        self.log("train/lr", optimizer.param_groups[0]["lr"], batch_size=1)

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = torch.optim.AdamW(
            self.parameters(),
            lr=self.hparams.lr,
            betas=tuple(self.hparams.betas),
            weight_decay=self.hparams.weight_decay,
        )
        total = int(self.trainer.estimated_stepping_batches)
        warmup = max(1, round(self.hparams.warmup_ratio * total))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_cosine(step, total, warmup)
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
