"""Weights & Biases and the local results files.

W&B runs are offline by default (sync later with `wandb sync`); tracking never makes a run fail:
with `logger=none` nothing is sent anywhere and results.json/samples.jsonl are still written.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def _wandb_kwargs(cfg: DictConfig, run_dir: Path, job_type: str, tags: list[str]) -> dict[str, Any]:
    logger = cfg.logger
    return {
        "project": logger.project,
        "entity": logger.get("entity"),
        "group": logger.group,
        "job_type": job_type,
        "tags": [*logger.get("tags", []), *tags],
        "mode": logger.mode,
        "dir": str(run_dir),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }


def train_logger(cfg: DictConfig, run_dir: Path, tags: list[str]) -> Any:
    """A Lightning logger for the train stage: W&B (job_type=train) or CSV files."""
    if not cfg.logger.enabled:
        from lightning.pytorch.loggers import CSVLogger

        return CSVLogger(str(run_dir), name="train")
    from lightning.pytorch.loggers import WandbLogger

    os.environ.setdefault("WANDB_SILENT", "true")
    kwargs = _wandb_kwargs(cfg, run_dir, "train", tags)
    kwargs["save_dir"] = kwargs.pop("dir")  # WandbLogger's save_dir (default ".") wins over dir
    return WandbLogger(**kwargs)


def finish_train_logger(logger: Any) -> None:
    if hasattr(logger, "experiment") and type(logger).__name__ == "WandbLogger":
        logger.experiment.finish()


def log_eval(
    cfg: DictConfig, run_dir: Path, results: dict[str, Any], samples: list[dict], tags: list[str]
) -> str | None:
    """Log one eval run (metrics as summary, a samples table); returns the W&B run dir."""
    if not cfg.logger.enabled:
        return None
    import wandb

    os.environ.setdefault("WANDB_SILENT", "true")
    run = wandb.init(**_wandb_kwargs(cfg, run_dir, "eval", tags), reinit="create_new")
    try:
        metrics = {f"eval/{k}": v for k, v in results["metrics"].items()}
        run.log(metrics)
        run.summary.update(metrics | {f"timing/{k}": v for k, v in results["timings"].items()})
        columns = [
            "id",
            "question",
            "gold",
            "predicted",
            "correct",
            "thinking_tokens",
            "ignores_used",
            "exit",
            "thinking",
            "answer_text",
        ]
        table = wandb.Table(columns=columns, data=[[s[c] for c in columns] for s in samples])
        run.log({"eval/samples": table})
        return str(Path(run.dir).parent)
    finally:
        run.finish()


def log_selection(
    cfg: DictConfig, run_dir: Path, report: dict[str, Any], selection_dir: Path, tags: list[str]
) -> str | None:
    """Log one select run: the funnel as a table and as `select/<stage>` summary values, the
    length statistics, and the report's plots as images; returns the W&B run dir."""
    if not cfg.logger.enabled:
        return None
    import wandb

    os.environ.setdefault("WANDB_SILENT", "true")
    run = wandb.init(**_wandb_kwargs(cfg, run_dir, "select", tags), reinit="create_new")
    try:
        funnel = report["funnel"]
        table = wandb.Table(columns=["stage", "count"], data=[[k, v] for k, v in funnel.items()])
        stats = report.get("thinking_tokens") or {}
        summary = {f"select/{k}": v for k, v in funnel.items()}
        summary |= {f"select/thinking_tokens_{k}": v for k, v in stats.items()}
        images = {
            f"select/{name}": wandb.Image(str(selection_dir / file), caption=name)
            for name, file in report.get("plots", {}).items()
        }
        run.log({"select/funnel": table, **images})
        run.summary.update(summary)
        return str(Path(run.dir).parent)
    finally:
        run.finish()
