"""The per-run selection report: the funnel as text, domain and trace-length plots, report.json.

A selection is only trustworthy if one can see what it is made of: how many rows each filter kept
(the paper's funnel, S1_SPEC section 1), how many domains it spans, and how long its traces are.
Plots are drawn with matplotlib's Agg canvas directly (no pyplot, so no display and no global
figure registry) and published atomically, like every other artifact file.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from s1exp.store import write_json_atomic

DOMAINS_PLOT = "domains.png"
THINKING_PLOT = "thinking_tokens.png"
REPORT_FILE = "report.json"
DOMAINS_KEY = "domains"  # a count of distinct domains, not a stage of the funnel
NO_DOMAIN = "(no domain)"

# Known stages: human label and whether the stage branches off the filter chain (its rows are a
# part of the last filter's output rather than a further filter of the stage just before it).
# Branch stages are shown relative to the last chain stage and do not become the next base, so
# pre-selected (384) -> candidates -> selected (1,000) all read as fractions of the difficulty
# stage instead of nonsense ratios like 1,000 / 384. Unknown names are chain stages.
STAGES: dict[str, tuple[str, bool]] = {
    "pool": ("pool", False),
    "decontaminated": ("decontaminated: benchmark 8-gram overlaps dropped", False),
    "deduplicated": ("deduplicated: exact duplicates dropped", False),
    "quality1": ("quality 1: API errors dropped", False),
    "quality2": ("quality 2: formatting problems dropped", False),
    "difficulty": ("difficulty: questions a base model solves dropped", False),
    "with_trace": ("with a trace: rows without one dropped (59K-full)", False),
    "preselected": ("pre-selected: benchmark-like rows", True),
    "candidates": ("diversity candidates: the rest", True),
    "selected": ("selected", True),
}


def stage_label(name: str) -> str:
    """Human words for a funnel stage; unknown stages keep their name (underscores as spaces)."""
    known = STAGES.get(name)
    return known[0] if known else name.replace("_", " ")


def _percent(kept: int, base: int) -> str:
    """kept/base as a percentage that never rounds a real drop up to 100%."""
    if base <= 0:
        return "n/a"
    pct = 100.0 * kept / base
    if kept < base and pct >= 99.95:
        return f"{min(pct, 99.99):.2f}%"
    return f"{pct:.1f}%"


def format_funnel(funnel: Mapping[str, int]) -> str:
    """The funnel as a text table: one line per stage (in the given order), its count, and the
    fraction kept relative to the stage it came from; the domain count goes last, on its own."""
    stages = [(k, v) for k, v in funnel.items() if k != DOMAINS_KEY]
    labels = [stage_label(k) for k, _ in stages]
    label_w = max([len("stage"), *map(len, labels)])
    count_w = max([len("count"), *(len(f"{v:,}") for _, v in stages)])
    lines = [f"{'stage':<{label_w}}  {'count':>{count_w}}  kept"]
    base: tuple[str, int] | None = None  # the last chain stage: (name, count)
    for (name, count), label in zip(stages, labels, strict=True):
        kept = f"{_percent(count, base[1])} of {base[0]}" if base else ""
        lines.append(f"{label:<{label_w}}  {count:>{count_w},}  {kept}".rstrip())
        if not STAGES.get(name, ("", False))[1]:
            base = (name, count)
    if DOMAINS_KEY in funnel:
        lines.append(f"domains in selection: {funnel[DOMAINS_KEY]:,}")
    return "\n".join(lines)


def domain_counts(rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Selected rows per domain, largest first (ties by name, so the order is reproducible)."""
    counts = Counter(r.get("domain") or NO_DOMAIN for r in rows)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def length_stats(tokens: Sequence[int]) -> dict[str, float | int] | None:
    """Mean, median, min, max and 90th percentile of thinking lengths; None when there are none."""
    if not tokens:
        return None
    a = np.asarray(tokens, dtype=float)
    return {
        "mean": float(a.mean()),
        "median": float(np.median(a)),
        "min": int(a.min()),
        "max": int(a.max()),
        "p90": float(np.percentile(a, 90)),
    }


def _save_atomic(fig: Figure, path: Path) -> None:
    """Render to a temporary sibling, then rename: readers see the old plot or the new one."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        FigureCanvasAgg(fig).print_figure(str(tmp), format="png", dpi=100, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def plot_domains(counts: Mapping[str, int], path: Path) -> None:
    """Horizontal bars, largest domain on top; the figure grows with the number of domains so
    50+ labels stay readable."""
    names = list(counts)[::-1]  # barh draws bottom-up
    values = [counts[n] for n in names]
    fig = Figure(figsize=(8, max(3.0, 0.28 * len(names) + 1.2)))
    ax = fig.add_subplot()
    bars = ax.barh(range(len(names)), values, color="tab:blue")
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_ylim(-0.6, len(names) - 0.4)
    ax.bar_label(bars, padding=2, fontsize=7)
    ax.set_xlabel("selected rows")
    ax.set_title(f"selected rows per domain ({len(names)} domains, {sum(values):,} rows)")
    ax.margins(x=0.08)
    _save_atomic(fig, path)


def plot_thinking_tokens(tokens: Sequence[int], stats: Mapping[str, float], path: Path) -> None:
    """Histogram of thinking-trace lengths with the mean and the median marked."""
    fig = Figure(figsize=(8, 4.5))
    ax = fig.add_subplot()
    ax.hist(tokens, bins=min(50, max(10, int(len(tokens) ** 0.5))), color="tab:gray")
    ax.axvline(stats["mean"], color="tab:red", label=f"mean {stats['mean']:,.0f}")
    ax.axvline(
        stats["median"], color="tab:blue", linestyle="--", label=f"median {stats['median']:,.0f}"
    )
    ax.set_xlabel("thinking tokens")
    ax.set_ylabel("selected rows")
    ax.set_title(f"thinking trace length ({len(tokens):,} rows)")
    ax.legend()
    _save_atomic(fig, path)


def write_selection_report(
    rows: Sequence[Mapping[str, Any]], funnel: Mapping[str, int], out_dir: Path
) -> dict[str, Any]:
    """Write domains.png, thinking_tokens.png and report.json into `out_dir`; return the report.

    Rows without a thinking length (None) are left out of the length statistics. With no rows
    there is nothing to plot: stats are None and `note` says why.
    """
    out_dir = Path(out_dir)
    counts = domain_counts(rows)
    tokens = [int(r["thinking_tokens"]) for r in rows if r.get("thinking_tokens") is not None]
    stats = length_stats(tokens)
    report: dict[str, Any] = {
        "funnel": dict(funnel),
        "rows": len(rows),
        "domains": counts,
        "thinking_tokens": stats,
        "plots": {},
    }
    if counts:
        plot_domains(counts, out_dir / DOMAINS_PLOT)
        report["plots"]["domains"] = DOMAINS_PLOT
    if stats is not None:
        plot_thinking_tokens(tokens, stats, out_dir / THINKING_PLOT)
        report["plots"]["thinking_tokens"] = THINKING_PLOT
    if not rows:
        report["note"] = "no rows selected: no plots written, thinking_tokens stats are None"
    elif stats is None:
        report["note"] = "no selected row has thinking_tokens: no length plot written"
    write_json_atomic(out_dir / REPORT_FILE, report)
    return report
