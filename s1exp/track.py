"""Weights & Biases and the local results files.

W&B runs are offline by default (sync later with `wandb sync`); tracking never makes a run fail:
with `logger=none` nothing is sent anywhere and results.json/samples.jsonl are still written.

Where runs go: a single run (`python -m s1exp`) keeps its W&B files in its run dir
(`<run dir>/wandb/offline-run-*`). Every job of a multirun writes into the sweep's one folder,
`<sweep dir>/wandb/offline-run-*`, so `wandb leet <sweep dir>/wandb` lists the whole sweep side
by side (leet lists the `run-*`/`offline-run-*` folders directly inside the directory it is
given, not deeper) and `wandb sync <sweep dir>/wandb/offline-run-*` uploads it into one project
and group. Each run is named after the values its job sweeps ("extrapolation=wait"), which are
also its `axes` config columns; `choices` holds every config group's option.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from s1exp.errors import brief
from s1exp.secrets import redact, redacted_argv

log = logging.getLogger(__name__)

ADHOC_GROUP = "adhoc"  # conf/logger/*.yaml's default group: runs started by hand, not an ablation
SHARED_KEYS = ("ablation",)  # every job of an ablation sweep carries `+ablation=`: not an axis
SAMPLE_COLUMNS = (
    "benchmark",
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
)


@dataclass(frozen=True)
class Job:
    """What W&B needs to know about the Hydra job a run belongs to.

    `sweep_dir` is None outside a multirun; `axes` are the settings this job sets that differ
    between the jobs of its sweep (all of its overrides but `+ablation` in a single run).
    """

    sweep_dir: Path | None = None
    num: int | None = None
    axes: dict[str, str] = field(default_factory=dict)
    choices: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str | None:
        """The run's display name: its axis values, or None (W&B picks one) when it has none."""
        return " ".join(f"{k}={v}" for k, v in self.axes.items()) or None


def _override_key(override: Any) -> str:
    """`model@featurize.judge` stays apart from `model`; the +/~/++ prefixes are dropped."""
    if override.package is None:
        return override.key_or_group
    return f"{override.key_or_group}@{override.package}"


def _parse(overrides: list[str]) -> list[Any]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_overrides(overrides)


def swept_keys(
    sweep_dir: Path,
    sweeper_params: Mapping[str, Any] | None,
    grids: Mapping[str, Any] | None = None,
) -> set[str]:
    """The keys a sweep varies: its sweeper params (an ablation's `hydra.sweeper.params`), every
    key a grid of the `grids` sweeper sets (grids differ in them even where each grid holds one
    value, e.g. budget=auto next to the caps), and the command line's sweeps
    (`extrapolation=none,wait`), which Hydra keeps only in the `multirun.yaml` it writes into the
    sweep dir before the first job starts."""
    from hydra_plugins.s1exp_sweeper.grids import grid_overrides

    lines = [f"{k}={v}" for k, v in (sweeper_params or {}).items()]
    saved = sweep_dir / "multirun.yaml"
    if saved.is_file():
        lines += list(OmegaConf.load(saved).hydra.overrides.task)
    keys = {_override_key(o) for o in _parse(lines) if o.is_sweep_override()}
    for name, grid in (grids or {}).items():
        keys |= {_override_key(o) for o in _parse(grid_overrides(name, grid))}
    return keys


def job_axes(overrides: list[str], swept: set[str] | None) -> dict[str, str]:
    """This job's value of each swept key, in command-line order (`swept=None`: every override
    but the shared `+ablation`, for a run that is not part of a sweep)."""
    axes = {}
    for o in _parse(overrides):
        key = _override_key(o)
        if key in SHARED_KEYS or o.value_type is None:
            continue
        if swept is None or key in swept:
            axes[key] = o.get_value_string()
    return redact(axes)  # the run's name and `axes` column: no `+logger.api_key=` value


def config_choices(choices: Mapping[str, Any]) -> dict[str, str]:
    """Each config group's option (model=tiny, ...) without Hydra's own groups; options nested
    inside another group's config (model@featurize.judge) belong to that group and are left out."""
    return {k: str(v) for k, v in choices.items() if not k.startswith("hydra") and "@" not in k}


def current_job() -> Job:
    """The running Hydra job (an empty Job outside Hydra, e.g. a library call or a test)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return Job()
    hc = HydraConfig.get()
    overrides = list(hc.overrides.task)
    choices = config_choices(hc.runtime.choices)
    if hc.mode != RunMode.MULTIRUN:
        return Job(axes=job_axes(overrides, None), choices=choices)
    sweep_dir = Path(hc.runtime.cwd, hc.sweep.dir).resolve()  # sweep.dir may be relative
    sweeper = OmegaConf.to_container(hc.sweeper)
    swept = swept_keys(sweep_dir, sweeper.get("params"), sweeper.get("grids")) or None
    return Job(sweep_dir, hc.job.get("num"), job_axes(overrides, swept), choices)


def sweep_group(cfg: DictConfig, sweep_dir: Path | None) -> str:
    """The W&B group: `logger.group` (an ablation's name). A sweep left in the default group
    gets `adhoc/<sweep dir's parent>/<sweep dir>` instead (by default `adhoc/<date>/<time>`), so
    two hand-started sweeps never share a group; a single run stays in `adhoc`."""
    group = cfg.logger.group
    if group != ADHOC_GROUP or sweep_dir is None:
        return group
    return f"{ADHOC_GROUP}/{sweep_dir.parent.name}/{sweep_dir.name}"


def sweep_wandb_dir(sweep_dir: Path) -> Path:
    """The folder that holds every W&B run of a sweep: what `wandb leet` must be pointed at."""
    return Path(sweep_dir) / "wandb"


def _wandb_kwargs(cfg: DictConfig, run_dir: Path, job_type: str, tags: list[str]) -> dict[str, Any]:
    """wandb.init's arguments: the sweep's folder and group when in a multirun, the run's name
    and the axes/choices config columns beside the whole resolved config."""
    logger = cfg.logger
    job = current_job()
    config = OmegaConf.to_container(cfg, resolve=True)
    config |= {"axes": job.axes, "choices": job.choices}
    if job.sweep_dir is not None:
        config["sweep"] = {"dir": str(job.sweep_dir), "job": job.num}
    return {
        "project": logger.project,
        "entity": logger.get("entity"),
        "id": run_id(run_dir, job_type, config["axes"]),
        "resume": "allow",  # a job re-run after a kill logs into its run, not a second one
        "group": sweep_group(cfg, job.sweep_dir),
        "job_type": job_type,
        "name": job.name,
        "tags": [*logger.get("tags", []), *tags],
        "mode": logger.mode,
        "dir": str(job.sweep_dir or run_dir),
        "config": redact(config),
    }


INIT_TIMEOUT_S = 60.0  # wandb.init's wait for the server before s1exp logs offline instead


def init_run(**kwargs: Any) -> Any:
    """wandb.init; where the W&B server cannot be reached (no network on a compute node, an
    outage), the run is logged offline into the same folder instead, with one warning that says
    how to upload it: a finished training or evaluation is never lost to W&B."""
    import wandb

    if kwargs.get("mode") in ("offline", "disabled"):
        with redacted_argv():
            return wandb.init(**kwargs)
    try:
        with redacted_argv():
            timeout = float(os.environ.get("WANDB_INIT_TIMEOUT", INIT_TIMEOUT_S))
            return wandb.init(**kwargs, settings=wandb.Settings(init_timeout=timeout))
    except Exception as error:  # noqa: BLE001 - CommError, timeouts, auth: all mean "not online"
        folder = Path(kwargs.get("dir") or ".") / "wandb"
        log.warning(
            "W&B: cannot log online (%s); this run is logged offline in %s: upload it later "
            "with `wandb sync %s/offline-run-*`",
            brief(error),
            folder,
            folder,
        )
        wandb.teardown()  # the service still holds the failed run's id: "run ID is in use"
        with redacted_argv():
            return wandb.init(**(kwargs | {"mode": "offline"}))


def run_id(run_dir: Path, job_type: str, axes: Any) -> str:
    """A W&B run id fixed by the job's folder, stage and settings: re-running an interrupted
    sweep into its folder resumes each job's runs instead of adding duplicates."""
    blob = json.dumps([str(Path(run_dir).resolve()), job_type, axes], sort_keys=True, default=str)
    number = int.from_bytes(hashlib.sha256(blob.encode()).digest()[:8], "big")
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    # 8 base-36 characters, W&B's own id shape (`wandb leet` shows about 10 of an id)
    return "".join(digits[(number // 36**i) % 36] for i in range(8))


def train_logger(cfg: DictConfig, run_dir: Path, tags: list[str]) -> Any:
    """A Lightning logger for the train stage: W&B (job_type=train) or CSV files."""
    if not cfg.logger.enabled:
        from lightning.pytorch.loggers import CSVLogger

        return CSVLogger(str(run_dir), name="train")
    from lightning.pytorch.loggers import WandbLogger

    os.environ.setdefault("WANDB_SILENT", "true")
    from s1exp.train.ranks import process_rank

    kwargs = _wandb_kwargs(cfg, run_dir, "train", tags)
    # WandbLogger's save_dir (default ".") wins over wandb.init's dir
    logger_kwargs = {k: v for k, v in kwargs.items() if k != "dir"} | {"save_dir": kwargs["dir"]}
    if process_rank() > 0:  # Lightning gives the other ranks a dummy experiment: no run
        return WandbLogger(**logger_kwargs)
    # Rank 0's run starts now, not inside fit: its "args" are redacted and an unreachable server
    # means an offline run (init_run), handed to Lightning as the logger's experiment.
    run = init_run(**kwargs, reinit="create_new")
    return WandbLogger(experiment=run, **logger_kwargs)


def finish_train_logger(logger: Any) -> None:
    if hasattr(logger, "experiment") and type(logger).__name__ == "WandbLogger":
        logger.experiment.finish()


def eval_summary(metrics: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """`eval/<benchmark>/<metric>` for each benchmark of the job, and also `eval/<metric>` when
    there is only one, so the usual one-benchmark sweep has short W&B columns."""
    summary = {f"eval/{b}/{k}": v for b, values in metrics.items() for k, v in values.items()}
    if len(metrics) == 1:
        summary |= {f"eval/{k}": v for k, v in next(iter(metrics.values())).items()}
    return summary


COST_STAGE_KEYS = ("wall_seconds", "gpu_hours", "usd")


def cost_summary(cost: Mapping[str, Any] | None) -> dict[str, Any]:
    """results.json's cost block as W&B summary values: `cost/<field>` for the job (wall time,
    device, GPUs, GPU-hours, dollars, price) and `cost/<stage>/<field>` for what each stage spent
    here, so a sweep's runs compare by cost in one column each. Empty without a block."""
    if not cost:
        return {}
    summary = {f"cost/{k}": v for k, v in cost.items() if k != "stages" and v is not None}
    for stage, spent in cost.get("stages", {}).items():
        summary |= {f"cost/{stage}/{k}": spent[k] for k in COST_STAGE_KEYS if spent[k] is not None}
    return summary


def log_eval(
    cfg: DictConfig, run_dir: Path, results: dict[str, Any], samples: list[dict], tags: list[str]
) -> str | None:
    """Log one eval run: results["metrics"] ({benchmark: {metric: value}}) as summary values
    (eval_summary), the timings and the job's cost (cost_summary), and the samples as a table;
    returns the W&B run dir."""
    if not cfg.logger.enabled:
        return None
    import wandb

    os.environ.setdefault("WANDB_SILENT", "true")
    run = init_run(**_wandb_kwargs(cfg, run_dir, "eval", tags), reinit="create_new")
    try:
        metrics = eval_summary(results["metrics"])
        run.log(metrics)
        timings = {f"timing/{k}": v for k, v in results.get("timings", {}).items()}
        run.summary.update(metrics | timings | cost_summary(results.get("cost")))
        rows = [[s.get(c) for c in SAMPLE_COLUMNS] for s in samples]  # older samples lack fields
        run.log({"eval/samples": wandb.Table(columns=list(SAMPLE_COLUMNS), data=rows)})
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
    run = init_run(**_wandb_kwargs(cfg, run_dir, "select", tags), reinit="create_new")
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


def _sweep_config(cfg: DictConfig, sweep_dir: Path) -> dict[str, Any]:
    """The report run's config: the settings every job shares (Hydra's own node left out) and
    which keys the sweep varies."""
    shared = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    node = OmegaConf.select(cfg, "hydra.sweeper")
    sweeper = OmegaConf.to_container(node) if node is not None else {}
    swept = swept_keys(sweep_dir, sweeper.get("params"), sweeper.get("grids"))
    return redact(OmegaConf.to_container(shared, resolve=True)) | {
        "sweep": {"dir": str(sweep_dir), "swept": sorted(swept)}
    }


def log_sweep(
    cfg: DictConfig,
    sweep_dir: Path,
    tables: dict[str, tuple[list[str], list[list]]],
    images: dict[str, Path],
    summary: dict[str, float],
) -> str | None:
    """Log a finished sweep's report as one run (job_type `report`, named "report") in the
    sweep's group and folder, beside its jobs' runs: each (columns, rows) of `tables` as a
    wandb.Table and each PNG of `images` as a wandb.Image, under their keys as given, and
    `summary` as summary values. Returns the W&B run dir, or None when W&B is off or logging
    failed: the sweep's results are already on disk, so a W&B error only logs a warning."""
    if not cfg.logger.enabled:
        return None
    try:
        return _log_report(cfg, Path(sweep_dir).resolve(), tables, images, summary)
    except Exception:  # noqa: BLE001 - any W&B failure here must not fail the finished sweep
        log.warning("W&B: the report of sweep %s was not logged", sweep_dir, exc_info=True)
        return None


def _log_report(
    cfg: DictConfig,
    sweep_dir: Path,
    tables: dict[str, tuple[list[str], list[list]]],
    images: dict[str, Path],
    summary: dict[str, float],
) -> str:
    import wandb

    os.environ.setdefault("WANDB_SILENT", "true")
    # Tables and images first: a missing PNG fails here, before a half-empty run exists.
    media = {
        k: wandb.Table(columns=list(c), data=[list(r) for r in rows])
        for k, (c, rows) in tables.items()
    }
    media |= {k: wandb.Image(str(path), caption=k) for k, path in images.items()}
    logger = cfg.logger
    run = init_run(
        project=logger.project,
        entity=logger.get("entity"),
        group=sweep_group(cfg, sweep_dir),
        job_type="report",
        name="report",
        id=run_id(sweep_dir, "report", None),  # a re-run sweep updates its report run
        resume="allow",
        tags=list(logger.get("tags", [])),
        mode=logger.mode,
        dir=str(sweep_dir),
        config=_sweep_config(cfg, sweep_dir),
        reinit="create_new",
    )
    try:
        run.log(media)
        run.summary.update(summary)
        return str(Path(run.dir).parent)
    finally:
        run.finish()
