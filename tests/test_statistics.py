"""Accuracy intervals: the bootstrap CIs cover the true mean at their stated rate (issue 8).

Each coverage test draws many simulated benchmarks from a known Bernoulli model and counts how
often the 95% interval holds the true value. The percentile bootstrap runs slightly narrow for
small n, so the accepted band is 92.5-97.5% over 1,000 simulated runs (the standard error of the
rate itself is 0.7 points).
"""

from __future__ import annotations

import numpy as np
import pytest

from s1exp.evaluate.metrics import (
    bootstrap_ci,
    paired_bootstrap_diff,
    resampled_means,
    summarize,
)

TRIALS = 1000


@pytest.mark.parametrize(("p", "n"), [(0.3, 100), (0.5, 198), (0.9, 500)])
def test_accuracy_interval_covers_a_bernoulli_mean(p: float, n: int):
    rng = np.random.default_rng(7)
    hits = 0
    for trial in range(TRIALS):
        correct = (rng.random(n) < p).astype(float)
        low, high = bootstrap_ci(list(correct), resamples=2000, seed=trial)
        hits += low <= p <= high
    assert 0.925 <= hits / TRIALS <= 0.975, hits / TRIALS


def test_paired_interval_covers_the_true_difference():
    """Two runs on the same questions: run a solves each question with probability q_i + 0.1,
    run b with q_i (question difficulty shared, as between two models on one benchmark)."""
    rng = np.random.default_rng(11)
    n, delta, hits = 150, 0.1, 0
    for trial in range(TRIALS):
        q = rng.uniform(
            0.0, 0.9, size=n
        )  # questions drawn afresh: the population difference is 0.1
        u = rng.random(n)
        a, b = (u < q + delta).astype(float), (u < q).astype(float)  # coupled: same luck
        _, low, high = paired_bootstrap_diff(list(a), list(b), resamples=2000, seed=trial)
        hits += low <= 100 * delta <= high
    assert 0.925 <= hits / TRIALS <= 0.975, hits / TRIALS


def test_pairing_narrows_the_interval_of_correlated_runs():
    rng = np.random.default_rng(3)
    q = rng.uniform(0, 1, size=300)
    u = rng.random(300)
    a, b = list((u < q + 0.05).astype(float)), list((u < q).astype(float))
    _, low, high = paired_bootstrap_diff(a, b)
    a_low, a_high = bootstrap_ci(a)
    b_low, b_high = bootstrap_ci(b)
    unpaired = np.hypot(a_high - a_low, b_high - b_low)  # widths of independent intervals
    assert 100 * unpaired > 2 * (high - low)


def test_intervals_are_seeded_and_use_ten_thousand_resamples():
    values = [1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0] * 3
    assert bootstrap_ci(values) == bootstrap_ci(values, resamples=10_000, seed=0)
    same, other = resampled_means(values, seed=1), resampled_means(values, seed=2)
    assert len(same) == 10_000 and (same == resampled_means(values, seed=1)).all()
    assert (same != other).any()  # a 30-question interval is coarse; the draws show the seed
    samples = [
        {"correct": bool(v), "thinking_tokens": 5, "answer_tokens": 2, "exit": "natural",
         "ignores_used": 0, "unparsed": not v, "thinking_limit": 8}
        for v in values
    ]  # fmt: skip
    metrics = summarize(samples)
    low, high = bootstrap_ci(values, resamples=10_000, seed=0)
    assert (metrics["accuracy_ci_low"], metrics["accuracy_ci_high"]) == (100 * low, 100 * high)
    assert metrics["accuracy"] == pytest.approx(100 * sum(values) / len(values))
    assert metrics["unparsed_rate"] == pytest.approx(values.count(0.0) / len(values))
    assert metrics["thinking_limit"] == 8


def test_a_mean_of_k_over_n_questions_prints_exactly():
    """AIME24 has 30 questions: 16/30 must read 53.3, not 53.29999."""
    diff, _, _ = paired_bootstrap_diff([1.0] * 16 + [0.0] * 14, [0.0] * 30)
    assert round(diff, 1) == 53.3 and diff == 100 * 16 / 30
