"""The report's figures, built as matplotlib Figures (Agg canvas, no pyplot state) so tests can
inspect them before they are saved as PNGs."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 100


def _figure(width: float = 7.0, height: float = 4.5) -> Figure:
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def scaling_figure(benchmark: str, lines: Mapping[str, Sequence[tuple[float, float]]]) -> Figure:
    """Accuracy vs average thinking tokens on a log2 axis (Table 3's Scaling is the mean slope on
    it), one line with markers per method kind. Runs with no thinking tokens have no log2 and
    are left out."""
    figure = _figure()
    axes = figure.add_subplot()
    for kind, points in lines.items():
        shown = sorted((t, a) for t, a in points if t > 0)
        axes.plot([t for t, _ in shown], [a for _, a in shown], marker="o", label=kind)
    axes.set_xscale("log", base=2)
    axes.set_xlabel("average thinking tokens (log2 scale)")
    axes.set_ylabel("accuracy (%)")
    axes.set_title(f"Test-time scaling on {benchmark}")
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(title="method")
    return figure


def bars_figure(
    benchmark: str,
    labels: Sequence[str],
    accuracy: Sequence[float],
    ci: Sequence[tuple[float, float]],
    paper: Sequence[float | None] | None = None,
    paper_label: str = "paper",
) -> Figure:
    """Accuracy per sweep member with its 95% CI; with `paper`, the paper's numbers beside each
    (a missing one leaves a gap)."""
    figure = _figure(width=max(6.0, 1.1 * len(labels) + 2.0))
    axes = figure.add_subplot()
    width = 0.4 if paper is not None else 0.7
    offset = width / 2 if paper is not None else 0.0
    xs = range(len(labels))
    errors = [
        [max(0.0, a - low) for a, (low, _) in zip(accuracy, ci, strict=True)],
        [max(0.0, high - a) for a, (_, high) in zip(accuracy, ci, strict=True)],
    ]
    axes.bar([x - offset for x in xs], accuracy, width, yerr=errors, capsize=4, label="this sweep")
    if paper is not None:
        values = [math.nan if v is None else v for v in paper]
        axes.bar([x + offset for x in xs], values, width, label=paper_label)
    axes.set_xticks(list(xs), labels, rotation=20 if max(map(len, labels)) > 12 else 0)
    axes.set_xlabel("sweep member")
    axes.set_ylabel("accuracy (%) with 95% CI")
    axes.set_title(f"Accuracy per run on {benchmark}")
    axes.legend()
    return figure


def save(figure: Figure, path: Path) -> Path:
    figure.savefig(path, dpi=DPI)
    return path
