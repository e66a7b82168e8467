"""python -m s1exp.report <sweep dir> [--paper SHEET] [--reference KEY=VALUE] [--out DIR]

A sweep that was configured with report parts (hydra.callbacks.summary.parts, as
`+ablation=paper` is) gets one report per part again, unless --paper or --reference asks for
one report over all its jobs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from omegaconf import OmegaConf

from s1exp.errors import ConfigError
from s1exp.report.build import (
    REPORT_FILE,
    Part,
    build_part_reports,
    build_report,
    combined_summary,
    publish,
)
from s1exp.report.errors import ReportError
from s1exp.report.sheet import load_sheet

PROG = "s1exp.report"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"python -m {PROG}",
        description="Print and save a sweep's report: accuracy with CIs per run and benchmark, "
        "Δ vs a reference run, the paper's numbers, Table 3's metrics and plots.",
    )
    p.add_argument("sweep_dir", type=Path, help="the multirun dir holding job dirs 0/, 1/, ...")
    p.add_argument("--paper", help="a paper sheet, e.g. sweeps/table4_extrapolation.yaml")
    p.add_argument("--reference", help="the job to compare with, as KEY=VALUE (selection=s1k)")
    p.add_argument("--out", type=Path, help="output dir (default: <sweep dir>/report)")
    return p


def sweep_parts(sweep_dir: Path) -> dict[str, Part]:
    """The report parts the sweep ran with (its multirun.yaml), so a re-report splits as the
    sweep's own report did; none for a sweep without parts or without that file."""
    from s1exp.callbacks import load_parts

    path = sweep_dir / "multirun.yaml"
    if not path.is_file():
        return {}
    return load_parts(OmegaConf.select(OmegaConf.load(path), "hydra.callbacks.summary.parts"))


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    out = args.out or args.sweep_dir / "report"
    try:
        parts = {} if args.paper or args.reference else sweep_parts(args.sweep_dir)
        if parts:
            reports, missing = build_part_reports(args.sweep_dir, parts)
            for name, report in reports.items():
                publish(report, out / name)
            text, saved = (
                combined_summary(reports, missing),
                [out / n / REPORT_FILE for n in reports],
            )
        else:
            sheet = load_sheet(args.paper) if args.paper else None
            report = build_report(args.sweep_dir, sheet, args.reference)
            publish(report, out)
            text, saved = report.markdown, [out / REPORT_FILE]
    except (ReportError, ConfigError) as error:
        print(f"{PROG}: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    print(text, end="")
    print(f"\nSaved {', '.join(map(str, saved))}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
