"""Training progress as lines: optimizer step, loss, tokens/s and ETA (s1exp.progress)."""

from __future__ import annotations

import time
from typing import Any

import lightning as L

from s1exp.progress import ProgressLine


class TrainProgress(L.Callback):
    """One line at most every `every` seconds from global rank 0 while a fit runs."""

    def __init__(self, what: str = "train", every: float = 15.0) -> None:
        self.what, self.every = what, every
        self.line: ProgressLine | None = None
        self.tokens = 0
        self.started = 0.0

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            total = int(trainer.estimated_stepping_batches)
            self.line = ProgressLine(self.what, total, "steps", self.every)
            self.started = time.perf_counter()
            note = f"resumed after epoch {trainer.current_epoch}" if trainer.global_step else ""
            self.line.update(trainer.global_step, note, force=True)

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:  # fmt: skip
        if self.line is None:
            return
        self.tokens += int(batch["attention_mask"].sum()) * trainer.world_size
        loss = trainer.callback_metrics.get("train/loss")
        seconds = max(time.perf_counter() - self.started, 1e-9)
        extra = f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"
        if loss is not None:
            extra += f" · loss {float(loss):.3f}"
        extra += f" · {self.tokens / seconds:,.0f} tokens/s"
        self.line.update(trainer.global_step, extra)
