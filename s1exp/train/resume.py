"""Resume points: a training killed (kill -9, preemption, `scontrol requeue`) goes on from its
last finished epoch instead of from scratch.

Points are written at epoch ends: resuming there is exact (the loop, optimizer, schedule and the
RNG that shuffles the next epoch are all restored), while a point inside an epoch would need the
data loader's position too. At the paper's scale an epoch is ~5 minutes of 16 H100s.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import lightning as L
import torch

from s1exp.errors import ConfigError, brief

LATEST = "last.ckpt"


class ResumePoint(L.Callback):
    """Saves the whole training state into `folder/last.ckpt` every `every_n_epochs` epochs,
    replacing the previous point only once the new one is complete. `latest` is what `fit`
    resumes from (None: nothing saved yet)."""

    def __init__(self, folder: Path, every_n_epochs: int) -> None:
        self.folder = folder
        self.every_n_epochs = every_n_epochs
        self.resumed_at_step = 0

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.resumed_at_step = trainer.global_step  # > 0 once restored from a point

    @property
    def latest(self) -> Path | None:
        path = self.folder / LATEST
        return path if path.exists() else None

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args: Any) -> None:
        # At the epoch's last batch, not in on_train_epoch_end: Lightning restores a point saved
        # at a batch end into the next epoch with the accumulation counter reset; one saved at
        # the epoch end resumes with it off by an epoch's batches (the optimizer steps early).
        if not trainer.is_last_batch:
            return
        done = trainer.current_epoch + 1
        last_epoch = trainer.max_epochs is not None and done >= trainer.max_epochs
        if self.every_n_epochs < 1 or done % self.every_n_epochs or last_epoch:
            return  # after the last epoch the exported model is the result
        staging = self.folder / f"next-{done}.ckpt"
        if trainer.is_global_zero:
            self.folder.mkdir(parents=True, exist_ok=True)
        trainer.strategy.barrier()
        try:  # every rank: sharded strategies write their shards
            trainer.save_checkpoint(staging)
        except Exception as error:  # torch reports a full disk as "file write failed"
            raise unwritable(self.folder, error) from error
        if trainer.is_global_zero:
            replace(staging, self.folder / LATEST)
        trainer.strategy.barrier()

    def state_dict(self) -> dict[str, Any]:
        # The global RNG draws the next epoch's shuffle: restoring it makes a resumed run
        # train on the same batches as an uninterrupted one.
        return {"torch_rng": torch.get_rng_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.set_rng_state(state_dict["torch_rng"])


def unwritable(folder: Path, error: Exception) -> ConfigError:
    """A resume point that could not be written: most often a full disk or quota, which would
    fail the model's export too, hours later. Stop now, saying where and how much room is left."""
    try:
        free = f"{shutil.disk_usage(folder).free / 2**30:.1f} GiB free there"
    except OSError:
        free = "free space unknown"
    return ConfigError(
        f"paths.store: cannot write a resume point into {folder} ({brief(error)}; {free}); "
        "free space there or set paths.store (or S1EXP_STORE) to a folder with room, or "
        "train.resume_every_n_epochs=0 to train without resume points"
    )


def replace(source: Path, target: Path) -> None:
    """Move a checkpoint (a file, or a folder for sharded strategies) over `target`."""
    if target.is_dir():
        shutil.rmtree(target)
    os.replace(source, target)
