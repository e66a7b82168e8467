"""A sweep's report: `python -m s1exp.report <sweep dir> [--paper sweeps/<sheet>.yaml]`.

report.md (members x benchmarks with CIs, Δ vs a reference run, the paper's numbers, Table 3)
and PNG plots, built from the job dirs' results.json and samples.jsonl; the sweep-end callback
(s1exp.callbacks.SweepSummary) builds the same report.

Names load on first use: Hydra makes the callback at every start, and matplotlib (about half a
second) is only needed once a sweep ends.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "Report": "build",
    "build_report": "build",
    "publish": "build",
    "ReportError": "errors",
    "Sheet": "sheet",
    "load_sheet": "sheet",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 's1exp.report' has no attribute {name!r}")
    return getattr(importlib.import_module(f"s1exp.report.{_HOMES[name]}"), name)
