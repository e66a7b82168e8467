"""Table 3's Control / Scaling / Performance against the paper's raw TCC runs (S1_SPEC 4)."""

from __future__ import annotations

import pytest

from s1exp.evaluate.scaling import control, performance, scaling

INSTRUCTED = [1024, 2048, 4096, 8192, 16384]
FREE_TOKENS = [7939, 7158, 8263, 7108, 7500]
FORCED_TOKENS = [1024, 2048, 4031, 5664, 6330]
# AIME24 has 30 problems: 26.7 = 8/30, 30.0 = 9/30, 33.3 = 10/30, 40.0 = 12/30.
FREE_ACC = [100 * k / 30 for k in (8, 9, 10, 10, 12)]
FORCED_ACC = [100 * k / 30 for k in (1, 9, 10, 10, 12)]


def test_scaling_reproduces_table3_tcc():
    assert round(scaling(FREE_TOKENS, FREE_ACC), 1) == -23.8  # Table 3: -24
    assert round(scaling(FORCED_TOKENS, FORCED_ACC), 1) == 13.2  # Table 3: 13
    # with the rounded percentages it comes out near -23.5 and rounds the wrong way (to -23)
    rounded = scaling(FREE_TOKENS, [26.7, 30.0, 33.3, 33.3, 40.0])
    assert -23.5 <= rounded < -23.4 and round(rounded) == -23


def test_control_and_performance_reproduce_table3_tcc():
    assert control(FREE_TOKENS, INSTRUCTED) == 0.4  # TCC: 40%
    assert control(FORCED_TOKENS, INSTRUCTED) == 1.0  # TCC + BF: 100%
    assert round(performance(FREE_ACC), 1) == 40.0


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="a_max"):
        control([1.0, 2.0], [3.0])
    with pytest.raises(ValueError, match="two runs"):
        scaling([100.0, 100.0], [1.0, 2.0])


def _row(method: str, tokens: float, accuracy: float, limit: int | str) -> tuple:
    results = {"choices": {"method": method}, "config": {"method": {"cap": limit}}}
    return ("label", {"thinking_tokens": tokens, "accuracy": accuracy}, results)


def test_sweep_summary_prints_table3_metrics_per_method():
    from s1exp.callbacks import format_scaling

    forced = zip(FORCED_TOKENS, FORCED_ACC, INSTRUCTED, strict=True)
    free = zip(FREE_TOKENS, FREE_ACC, INSTRUCTED, strict=True)
    rows = [_row("tcc_bf", *run) for run in forced] + [_row("tcc", *run) for run in free]
    assert format_scaling(rows).splitlines() == [
        "Table 3 metrics, method=tcc_bf: Control 100% | Scaling 13.2 pp per doubling | "
        "Performance 40.0",
        "Table 3 metrics, method=tcc: Control 40% | Scaling -23.8 pp per doubling | "
        "Performance 40.0",
    ]
    no_limit = [_row("budget_forcing", t, 50.0, "auto") for t in (10.0, 20.0)]
    assert format_scaling(no_limit) == ""  # Table 3 needs a thinking limit per run
