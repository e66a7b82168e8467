"""Table 3's metrics over a set of runs that vary test-time compute (S1_SPEC section 4).

- Control: share of runs whose average thinking tokens lie within [a_min, a_max];
- Scaling: mean slope of the piecewise-linear accuracy curve over all pairs of runs, with the x
  axis log2(thinking tokens) and accuracy in percentage points (the published values use both);
- Performance: the best accuracy.
"""

from __future__ import annotations

import math
from itertools import combinations


def control(thinking_tokens: list[float], a_max: list[float], a_min: float = 0.0) -> float:
    """Share of runs with a_min <= average thinking tokens <= that run's a_max."""
    if len(thinking_tokens) != len(a_max) or not thinking_tokens:
        raise ValueError("control: one a_max per run, and at least one run")
    inside = [a_min <= t <= m for t, m in zip(thinking_tokens, a_max, strict=True)]
    return sum(inside) / len(inside)


def scaling(thinking_tokens: list[float], accuracy: list[float]) -> float:
    """Mean over pairs a < b (by thinking tokens) of (f(b) - f(a)) / (log2 b - log2 a).

    Runs with equal thinking tokens have no slope between them and are skipped.
    """
    points = sorted(zip((math.log2(t) for t in thinking_tokens), accuracy, strict=True))
    slopes = [(fb - fa) / (b - a) for (a, fa), (b, fb) in combinations(points, 2) if b > a]
    if not slopes:
        raise ValueError("scaling: needs at least two runs with different thinking tokens")
    return sum(slopes) / len(slopes)


def performance(accuracy: list[float]) -> float:
    return max(accuracy)
