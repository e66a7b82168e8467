"""One SFT fit through the project's recipe and a strategy from conf/strategy/, as its own program.

Lightning's local launcher starts ranks > 0 by re-running this script, so multi-process strategies
(ddp, fsdp) run here exactly as under `python -m s1exp`. Each rank writes `rank<r>.json` into the
output folder: how its model was built (parameters on the meta device before sharding, whether it
read the checkpoint) and the bytes and dtypes of its local parameter shards after the fit.

    python tests/sft_worker.py BASE OUT --strategy fsdp --devices 2 --precision bf16-mixed

With `--resume-dir` the fit keeps resume points there; `--kill-at-epoch k` then kills the whole
process group with SIGKILL as epoch k starts (every rank at once, as a node failure would).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from s1exp.data.format import IGNORE_INDEX, TrainingExample
from s1exp.train import fsdp2
from s1exp.train.recipe import SFTRecipe

CONF = Path(__file__).resolve().parent.parent / "conf" / "strategy"
BUILD = {"meta_before_shard": None, "read_checkpoint": 0}


def _record_build() -> None:
    """Wrap (not replace) the loader's steps so each rank can report what it did."""
    shard, read = fsdp2.shard_model, fsdp2.read_full_state_dict

    def shard_model(model, *args, **kwargs):
        BUILD["meta_before_shard"] = all(p.is_meta for p in model.parameters())
        return shard(model, *args, **kwargs)

    def read_full_state_dict(*args, **kwargs):
        BUILD["read_checkpoint"] += 1
        return read(*args, **kwargs)

    fsdp2.shard_model, fsdp2.read_full_state_dict = shard_model, read_full_state_dict


def equal_length_examples(n: int, length: int, prompt: int, vocab: int, seed: int):
    """Same length and the same number of supervised tokens per example, so a mean of per-rank
    means is the global mean and any data split gives the same gradient."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        ids = [rng.randrange(3, vocab) for _ in range(length)]
        out.append(TrainingExample(ids, [IGNORE_INDEX] * prompt + ids[prompt:]))
    return out


class RankReport(L.Callback):
    def __init__(self, out: Path) -> None:
        self.out = out

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        params = list(module.model.parameters())
        local = [p.to_local() if hasattr(p, "to_local") else p for p in params]
        report = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "local_param_bytes": sum(t.numel() * t.element_size() for t in local),
            "param_dtypes": sorted({str(t.dtype) for t in local}),
            "sharded": any(hasattr(p, "to_local") for p in params),
        } | BUILD
        (self.out / f"rank{trainer.global_rank}.json").write_text(json.dumps(report))


class KillAtEpoch(L.Callback):
    """kill -9 of every process of the fit as epoch `epoch` (0-based) starts."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            trainer.strategy.barrier()  # every rank is here: no rank is mid-save
            os.killpg(os.getpgid(0), signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("base")
    parser.add_argument("out", type=Path)
    parser.add_argument("--strategy", default="single")
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("--dtype", default="float32", help="master weights")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--examples", type=int, default=16)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--micro-batch", type=int, default=8)
    parser.add_argument("--clip", type=float, default=1.0)
    parser.add_argument("--checkpointing", action="store_true")
    parser.add_argument("--export-dtype", default="float32")
    parser.add_argument("--global-batch", type=int, default=None, help="default: --examples")
    parser.add_argument("--resume-dir", type=Path, default=None)
    parser.add_argument("--kill-at-epoch", type=int, default=None)
    args = parser.parse_args()
    _record_build()
    args.out.mkdir(parents=True, exist_ok=True)
    recipe = SFTRecipe(
        epochs=args.epochs,
        lr=args.lr,
        warmup_ratio=0.05,
        betas=(0.9, 0.95),
        weight_decay=1e-4,
        global_batch_size=args.global_batch or args.examples,
        micro_batch_size=args.micro_batch,
        block_size=args.length,
        precision=args.precision,
        dtype=args.dtype,
        gradient_clip_val=args.clip,
        activation_checkpointing=args.checkpointing,
        export_dtype=args.export_dtype,
        accelerator="cpu",
        devices=args.devices,
        log_every_n_steps=1,
    )
    vocab = json.loads((Path(args.base) / "config.json").read_text())["vocab_size"]
    examples = equal_length_examples(args.examples, args.length, 16, vocab, seed=0)
    strategy = instantiate(OmegaConf.load(CONF / f"{args.strategy}.yaml"))
    callbacks: list[L.Callback] = [RankReport(args.out)]
    if args.kill_at_epoch is not None:
        callbacks.append(KillAtEpoch(args.kill_at_epoch))
    metrics = recipe.fit(
        args.base, examples, args.out, strategy=strategy, callbacks=callbacks,
        resume_dir=args.resume_dir,
    )  # fmt: skip
    if torch.distributed.is_initialized() and torch.distributed.get_rank() > 0:
        return
    (args.out / "metrics.json").write_text(json.dumps(metrics))


if __name__ == "__main__":
    main()
