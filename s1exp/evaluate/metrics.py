"""Per-run metrics from graded samples: accuracy with a bootstrap CI and thinking-token stats."""

from __future__ import annotations

import random
from collections import Counter
from statistics import mean

import numpy as np


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


def vote(graded: list[tuple[str | None, bool]], ks: list[int]) -> dict:
    """Majority vote over graded samples (predicted answer, correct), in sample order.

    maj@k: the most common answer among the first k is right (ties: the earliest such answer);
    cov@k: some answer among the first k is right. Unparsed answers (None) do not vote.
    """

    def majority(first: list[tuple[str | None, bool]]) -> tuple[str | None, bool]:
        counts = Counter(p for p, _ in first if p is not None)
        if not counts:
            return None, False
        top = max(counts.values())
        return next((p, c) for p, c in first if p is not None and counts[p] == top)

    scores: dict[str, float] = {}
    for k in ks:
        scores[f"maj@{k}"] = 100.0 * majority(graded[:k])[1]  # percent, like accuracy
        scores[f"cov@{k}"] = 100.0 * any(c for _, c in graded[:k])
    predicted, correct = majority(graded)
    return {"predicted": predicted, "correct": correct, "scores": scores}


def summarize(samples: list[dict]) -> dict[str, float]:
    """Accuracy (with CI), token means, and the mean of each method-specific score."""
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
    } | {
        name: mean(float(s["scores"][name]) for s in samples)
        for name in (samples[0].get("scores", {}) if samples else {})
    }


def paired_bootstrap_diff(
    a: list[float], b: list[float], resamples: int = 10_000, seed: int = 0
) -> tuple[float, float, float]:
    """mean(a) - mean(b) with its 95% paired bootstrap CI, in accuracy percent points.

    a[i] and b[i] are two runs' correctness (0/1) on the same question i. Each resample draws
    question indices once and uses them for both runs, as the paper's Table 2 CIs do, so the
    questions both runs find easy (or hard) do not widen the interval. Returns (diff, low, high).
    """
    if len(a) != len(b):
        raise ValueError(
            f"paired_bootstrap_diff needs one value per question in both runs: got {len(a)} "
            f"and {len(b)} values; pair the runs' samples by question id first"
        )
    if resamples < 1:
        raise ValueError(f"paired_bootstrap_diff: resamples must be >= 1, got {resamples}")
    if not a:
        return (float("nan"), float("nan"), float("nan"))
    diffs = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    n = len(diffs)
    rng = np.random.default_rng(seed)
    chunk = max(1, 2_000_000 // n)  # index blocks of ~16 MB, whatever the benchmark size
    sums = np.concatenate(
        [
            diffs[rng.integers(0, n, size=(min(chunk, resamples - start), n))].sum(axis=1)
            for start in range(0, resamples, chunk)
        ]
    )
    sums.sort()
    low, high = sums[int(0.025 * resamples)], sums[int(0.975 * resamples) - 1]
    # percent from integer-valued sums, so a difference of k/n questions prints exactly
    return (100 * float(diffs.sum()) / n, 100 * float(low) / n, 100 * float(high) / n)
