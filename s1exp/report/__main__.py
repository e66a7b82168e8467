"""python -m s1exp.report <sweep dir> [--paper SHEET] [--reference KEY=VALUE] [--out DIR]"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from s1exp.report.build import REPORT_FILE, build_report, publish
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


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        sheet = load_sheet(args.paper) if args.paper else None
        report = build_report(args.sweep_dir, sheet, args.reference)
        out = args.out or args.sweep_dir / "report"
        publish(report, out)
    except ReportError as error:
        print(f"{PROG}: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    print(report.markdown, end="")
    print(f"\nSaved {out / REPORT_FILE}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
