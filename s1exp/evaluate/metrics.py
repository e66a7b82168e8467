"""Per-run metrics from graded samples: accuracy with a bootstrap CI and thinking-token stats."""

from __future__ import annotations

from collections import Counter
from statistics import mean

import numpy as np
from numpy.typing import ArrayLike


def resampled_means(values: ArrayLike, resamples: int = 10_000, seed: int = 0) -> np.ndarray:
    """Sorted means of `resamples` bootstrap resamples (drawn with replacement, seeded).

    Index blocks of ~16 MB keep memory flat whatever the benchmark size. Sums are of integer
    counts for 0/1 values, so a mean of k/n questions comes out exact.
    """
    if resamples < 1:
        raise ValueError(f"bootstrap: resamples must be >= 1, got {resamples}")
    data = np.asarray(values, dtype=np.float64)
    n = len(data)
    rng = np.random.default_rng(seed)
    chunk = max(1, 2_000_000 // n)
    sums = np.concatenate(
        [
            data[rng.integers(0, n, size=(min(chunk, resamples - start), n))].sum(axis=1)
            for start in range(0, resamples, chunk)
        ]
    )
    sums.sort()
    return sums / n


def percentile_interval(means: np.ndarray) -> tuple[float, float]:
    """The 95% percentile interval of sorted resampled means."""
    resamples = len(means)
    return float(means[int(0.025 * resamples)]), float(means[int(0.975 * resamples) - 1])


def bootstrap_ci(
    values: list[float], resamples: int = 10_000, seed: int = 0
) -> tuple[float, float]:
    """95% percentile bootstrap CI of the mean (the paper reports 10,000 resamples)."""
    if not values:
        return (float("nan"), float("nan"))
    return percentile_interval(resampled_means(values, resamples, seed))


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


def summarize(samples: list[dict], resamples: int = 10_000, seed: int = 0) -> dict[str, float]:
    """Accuracy (with its 95% bootstrap CI), token means, the share of unparseable answers, and
    the mean of each method-specific score."""
    if not samples:
        raise ValueError("summarize: no samples (the benchmark has no questions)")
    correct = [float(s["correct"]) for s in samples]
    low, high = bootstrap_ci(correct, resamples=resamples, seed=seed)
    limits = [s.get("thinking_limit") for s in samples]
    return {
        "accuracy": 100 * mean(correct),
        "accuracy_ci_low": 100 * low,
        "accuracy_ci_high": 100 * high,
        "thinking_tokens": mean(s["thinking_tokens"] for s in samples),
        "thinking_limit": None if None in limits else mean(limits),
        "answer_tokens": mean(s["answer_tokens"] for s in samples),
        "forced_exit_rate": mean(s["exit"] == "forced" for s in samples),
        "ignores_used": mean(s["ignores_used"] for s in samples),
        "unparsed_rate": mean(bool(s.get("unparsed")) for s in samples),
        "n": float(len(samples)),
    } | {
        name: mean(float(s["scores"][name]) for s in samples)
        for name in samples[0].get("scores", {})
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
    if not a:
        return (float("nan"), float("nan"), float("nan"))
    diffs = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    low, high = percentile_interval(resampled_means(diffs, resamples, seed))
    return (100 * float(diffs.sum()) / len(diffs), 100 * low, 100 * high)
