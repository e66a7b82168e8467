"""Per-run metrics from graded samples: accuracy with a bootstrap CI and thinking-token stats."""

from __future__ import annotations

import random
from statistics import mean


def bootstrap_ci(
    values: list[float], resamples: int = 10_000, seed: int = 0
) -> tuple[float, float]:
    """95% percentile bootstrap CI of the mean (the paper reports 10,000 resamples)."""
    if not values:
        return (float("nan"), float("nan"))
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(rng.choices(values, k=n)) / n for _ in range(resamples))
    return means[int(0.025 * resamples)], means[int(0.975 * resamples) - 1]


def summarize(samples: list[dict]) -> dict[str, float]:
    correct = [float(s["correct"]) for s in samples]
    low, high = bootstrap_ci(correct, resamples=2000)
    return {
        "accuracy": 100 * mean(correct) if correct else float("nan"),
        "accuracy_ci_low": 100 * low,
        "accuracy_ci_high": 100 * high,
        "thinking_tokens": mean(s["thinking_tokens"] for s in samples) if samples else 0.0,
        "answer_tokens": mean(s["answer_tokens"] for s in samples) if samples else 0.0,
        "forced_exit_rate": mean(s["exit"] == "forced" for s in samples) if samples else 0.0,
        "ignores_used": mean(s["ignores_used"] for s in samples) if samples else 0.0,
        "n": float(len(samples)),
    }
