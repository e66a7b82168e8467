"""Hydra callbacks: the report a sweep prints and saves when all its jobs are done."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

if TYPE_CHECKING:
    from s1exp.report.build import Report

SUMMARY_FILE = "summary.txt"
REPORT_DIR = "report"


class SweepSummary(Callback):
    """Builds the sweep's report (s1exp.report) once a multirun ends: report/report.md with its
    plots, summary.txt (the report without plot links), the console, and W&B.

    `reference` (an override such as "selection=s1k") adds each run's accuracy difference from
    that job with the paired bootstrap CI (Table 2); `paper` (a sheet such as
    sweeps/table4_extrapolation.yaml, relative to the cwd or the repository root) adds the
    paper's numbers. Ablations set both through hydra.callbacks.summary.*.
    """

    def __init__(self, reference: str | None = None, paper: str | None = None) -> None:
        self.reference = reference
        self.sheet = None
        if paper:  # a bad sheet fails here, before any job of the sweep runs
            from s1exp.report.sheet import load_sheet

            self.sheet = load_sheet(paper)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from s1exp.report import build_report, publish
        from s1exp.report.sweep import job_dirs

        sweep_dir = Path(config.hydra.sweep.dir)
        if not job_dirs(sweep_dir):
            return
        report = build_report(sweep_dir, self.sheet, self.reference)
        images = publish(report, sweep_dir / REPORT_DIR)
        (sweep_dir / SUMMARY_FILE).write_text(report.summary, encoding="utf-8")  # "Δ"
        print(f"\nSweep report ({sweep_dir / REPORT_DIR}):\n{report.summary}", flush=True)
        self.log_to_wandb(config, sweep_dir, report, images)
        if config.get("logger", {}).get("enabled"):
            print(f"Every run side by side: wandb leet {sweep_dir / 'wandb'}", flush=True)

    @staticmethod
    def log_to_wandb(
        config: DictConfig, sweep_dir: Path, report: Report, images: dict[str, Path]
    ) -> None:
        """The report's tables, plots and summary as the sweep's W&B report run, under
        `report/...` (s1exp.track.log_sweep: a no-op with logger.enabled false, and a W&B
        failure only warns). A config without a logger node (a bare test config) logs nothing."""
        from s1exp.track import log_sweep

        if "logger" not in config:
            return
        log_sweep(
            config,
            sweep_dir,
            {f"report/{name}": table for name, table in report.tables.items()},
            {f"report/{name}": path for name, path in images.items()},
            {f"report/{name}": value for name, value in report.metrics.items()},
        )
