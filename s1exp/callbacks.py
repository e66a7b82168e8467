"""Hydra callbacks: the report a sweep prints and saves when all its jobs are done."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from s1exp.errors import ConfigError, exit_config_error

if TYPE_CHECKING:
    from s1exp.report.build import Part, Report

SUMMARY_FILE = "summary.txt"
REPORT_DIR = "report"
PART_KEYS = ("paper", "reference")  # hydra.callbacks.summary.parts.<part>.*
WHERE = "hydra.callbacks.summary.parts"


class SweepSummary(Callback):
    """Builds the sweep's report (s1exp.report) once a multirun ends: report/report.md with its
    plots, summary.txt (the report without plot links), the console, and W&B.

    `reference` (an override such as "selection=s1k") adds each run's accuracy difference from
    that job with the paired bootstrap CI (Table 2); `paper` (a sheet such as
    sweeps/table4_extrapolation.yaml, relative to the cwd or the repository root) adds the
    paper's numbers. Ablations set both through hydra.callbacks.summary.*.

    `parts` ({<part>: {paper: <sheet>, reference: <override>}}) splits a `hydra/sweeper=grids`
    sweep by table: one report per part over the jobs of its grids "<part>/...", into
    report/<part>/, and summary.txt holds every part's summary (`+ablation=paper`).
    """

    def __init__(
        self,
        reference: str | None = None,
        paper: str | None = None,
        parts: Mapping[str, Any] | None = None,
    ) -> None:
        self.reference = reference
        self.sheet = None
        if paper:  # a bad sheet fails here, before any job of the sweep runs
            from s1exp.report.sheet import load_sheet

            self.sheet = load_sheet(paper)
        try:
            self.parts = load_parts(parts)
        except ConfigError as error:
            exit_config_error(error)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """A part that names no grid of the sweep would silently report nothing: refuse it."""
        try:
            check_parts_have_grids(self.parts, config)
        except ConfigError as error:
            exit_config_error(error)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from s1exp.report.sweep import job_dirs

        sweep_dir = Path(config.hydra.sweep.dir)
        if not job_dirs(sweep_dir):
            return
        if self.parts:
            self.report_parts(config, sweep_dir)
            return
        from s1exp.report import build_report, publish

        report = build_report(sweep_dir, self.sheet, self.reference)
        images = publish(report, sweep_dir / REPORT_DIR)
        self.finish(config, sweep_dir, report.summary, {"": report}, {"": images})

    def report_parts(self, config: DictConfig, sweep_dir: Path) -> None:
        """One report per part into report/<part>/; summary.txt and the console get them all."""
        from s1exp.report.build import build_part_reports, combined_summary, publish

        reports, missing = build_part_reports(sweep_dir, self.parts)
        images = {
            name: publish(report, sweep_dir / REPORT_DIR / name) for name, report in reports.items()
        }
        self.finish(config, sweep_dir, combined_summary(reports, missing), reports, images)

    def finish(
        self,
        config: DictConfig,
        sweep_dir: Path,
        summary: str,
        reports: dict[str, Report],
        images: dict[str, dict[str, Path]],
    ) -> None:
        (sweep_dir / SUMMARY_FILE).write_text(summary, encoding="utf-8")  # "Δ"
        print(f"\nSweep report ({sweep_dir / REPORT_DIR}):\n{summary}", flush=True)
        self.log_to_wandb(config, sweep_dir, reports, images)
        if config.get("logger", {}).get("enabled"):
            print(f"Every run side by side: wandb leet {sweep_dir / 'wandb'}", flush=True)

    @staticmethod
    def log_to_wandb(
        config: DictConfig,
        sweep_dir: Path,
        reports: dict[str, Report],
        images: dict[str, dict[str, Path]],
    ) -> None:
        """The reports' tables, plots and summaries as the sweep's W&B report run, under
        `report/...` (a part's under `report/<part>/...`; s1exp.track.log_sweep: a no-op with
        logger.enabled false, and a W&B failure only warns). A config without a logger node
        (a bare test config) logs nothing."""
        from s1exp.track import log_sweep

        if "logger" not in config:
            return
        tables, pngs, metrics = {}, {}, {}
        for part, report in reports.items():
            prefix = f"report/{part}/" if part else "report/"
            tables |= {f"{prefix}{name}": table for name, table in report.tables.items()}
            pngs |= {f"{prefix}{name}": path for name, path in images[part].items()}
            metrics |= {f"{prefix}{name}": value for name, value in report.metrics.items()}
        log_sweep(config, sweep_dir, tables, pngs, metrics)


def load_parts(parts: Mapping[str, Any] | None) -> dict[str, Part]:
    """hydra.callbacks.summary.parts as Part settings, each sheet loaded (a bad one fails before
    any job runs); an unknown key is a ConfigError naming the part and the allowed keys."""
    if not parts:
        return {}
    from s1exp.report.build import Part
    from s1exp.report.sheet import load_sheet

    plain = OmegaConf.to_container(parts) if OmegaConf.is_config(parts) else dict(parts)
    out = {}
    for name, settings in plain.items():
        settings = settings or {}
        if not isinstance(settings, dict):
            raise ConfigError(
                f"{WHERE}.{name} must be a mapping with {' and/or '.join(PART_KEYS)}, got "
                f"{settings!r}"
            )
        unknown = sorted(set(settings) - set(PART_KEYS))
        if unknown:
            raise ConfigError(
                f"{WHERE}.{name}: unknown keys {unknown}; a part takes {list(PART_KEYS)}"
            )
        paper = settings.get("paper")
        out[str(name)] = Part(load_sheet(paper) if paper else None, settings.get("reference"))
    return out


def check_parts_have_grids(parts: Mapping[str, Part], config: DictConfig) -> None:
    """Every configured part must be the "<part>" of some grid of hydra.sweeper.grids."""
    if not parts:
        return
    from hydra_plugins.s1exp_sweeper.grids import part_of

    grids = config.hydra.sweeper.get("grids") or {}
    have = {part_of(str(name)) for name in grids}
    stray = [name for name in parts if name not in have]
    if stray:
        raise ConfigError(
            f"{WHERE} names {stray}, which no grid of hydra.sweeper.grids belongs to (grid "
            f"parts: {sorted(have) or 'none; select hydra/sweeper=grids'}); name a grid "
            f"<part>/<sub> or remove the part"
        )
