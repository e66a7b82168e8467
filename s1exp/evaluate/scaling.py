"""Table 3's metrics over a set of runs that vary test-time compute (S1_SPEC section 4).

- Control: share of runs whose average thinking tokens lie within [a_min, a_max];
- Scaling: mean slope of the piecewise-linear accuracy curve over all pairs of runs, with the x
  axis log2(thinking tokens) and accuracy in percentage points (the published values use both);
- Performance: the best accuracy.

Runs are grouped into Table 3's rows by their method's kind (`method_kind`): the class a run's
method config instantiates, and whether it forces the limit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

# (method class, force) -> Table 3's row name; MajorityVoting scales in parallel: no row.
METHOD_KINDS: dict[tuple[str, bool], str] = {
    ("BudgetForcing", False): "budget forcing",
    ("TokenConditional", False): "TCC",
    ("TokenConditional", True): "TCC + BF",
    ("StepConditional", False): "SCC",
    ("StepConditional", True): "SCC + BF",
    ("ClassConditional", False): "CCC",
    ("RejectionSampling", False): "RS",
}
PARALLEL_METHODS = frozenset({"MajorityVoting"})
TABLE3_KINDS = tuple(dict.fromkeys(METHOD_KINDS.values()))  # Table 3's row order
DEFAULT_KIND = "budget forcing"  # what CCC's short/long prompts are compared against

# CCC's class -> its thinking bounds given the default run's average thinking tokens: the paper's
# order short <= default <= long.
CCC_BOUNDS = {
    "short": lambda default: (0.0, default),
    "long": lambda default: (default, math.inf),
}


def control(
    thinking_tokens: Sequence[float],
    a_max: Sequence[float],
    a_min: float | Sequence[float] = 0.0,
) -> float:
    """Share of runs with a_min <= average thinking tokens <= that run's a_max (a_min: one for
    all runs, or one per run, as CCC's long prompt needs)."""
    lows = [a_min] * len(thinking_tokens) if isinstance(a_min, int | float) else list(a_min)
    if not thinking_tokens or not len(thinking_tokens) == len(a_max) == len(lows):
        raise ValueError("control: one a_max (and a_min) per run, and at least one run")
    inside = [lo <= t <= hi for t, hi, lo in zip(thinking_tokens, a_max, lows, strict=True)]
    return sum(inside) / len(inside)


def scaling(thinking_tokens: Sequence[float], accuracy: Sequence[float]) -> float:
    """Mean over pairs a < b (by thinking tokens) of (f(b) - f(a)) / (log2 b - log2 a).

    Runs with equal thinking tokens have no slope between them and are skipped.
    """
    points = sorted(zip((math.log2(t) for t in thinking_tokens), accuracy, strict=True))
    slopes = [(fb - fa) / (b - a) for (a, fa), (b, fb) in combinations(points, 2) if b > a]
    if not slopes:
        raise ValueError("scaling: needs at least two runs with different thinking tokens")
    return sum(slopes) / len(slopes)


def performance(accuracy: Sequence[float]) -> float:
    return max(accuracy)


def method_kind(method: Mapping[str, Any]) -> str | None:
    """Table 3's row for a run's resolved method config; None for parallel scaling (voting).

    A method class Table 3 does not know keeps its class name, so a new method still gets a row.
    """
    target = method.get("_target_")
    if not target:
        raise ValueError(
            "method_kind: the method config has no _target_; pass results.json's "
            "config['method'] (the resolved config), not the method's choice name"
        )
    name = str(target).rsplit(".", 1)[-1]
    if name in PARALLEL_METHODS:
        return None
    return METHOD_KINDS.get((name, bool(method.get("force", False))), name)


@dataclass(frozen=True)
class ScalingRun:
    """One run of a Table 3 row: its average thinking tokens, accuracy (%) and the bounds its
    thinking should stay within (None: unknown, so Control is undefined for the row)."""

    thinking_tokens: float
    accuracy: float
    bounds: tuple[float, float] | None


@dataclass(frozen=True)
class Table3Row:
    """Control (a share, 0..1), Scaling (pp per doubling) and Performance (%); None = n/a."""

    runs: int
    control: float | None
    scaling: float | None
    performance: float


def table3_row(runs: Sequence[ScalingRun]) -> Table3Row:
    """Table 3's metrics over one method kind's runs on one benchmark.

    Control needs every run's bounds; Scaling needs two runs with different, positive thinking
    token counts (it is a slope on a log2 axis).
    """
    if not runs:
        raise ValueError("table3_row: no runs")
    tokens = [r.thinking_tokens for r in runs]
    accuracy = [r.accuracy for r in runs]
    bounds = [r.bounds for r in runs]
    shares = None
    if None not in bounds:
        shares = control(tokens, [b[1] for b in bounds], [b[0] for b in bounds])
    slope = scaling(tokens, accuracy) if len(set(tokens)) > 1 and min(tokens) > 0 else None
    return Table3Row(len(runs), shares, slope, performance(accuracy))
