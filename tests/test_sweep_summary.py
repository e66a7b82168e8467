"""Paired bootstrap differences, the sweep summary's "Δ vs ref" columns, and Table 2's ablations."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import OmegaConf

from s1exp.callbacks import SweepSummary, reference_deltas
from s1exp.evaluate.metrics import paired_bootstrap_diff

CONF = Path(__file__).resolve().parent.parent / "conf"


# --- paired_bootstrap_diff ---------------------------------------------------------------------


def test_identical_runs_differ_by_exactly_zero():
    a = [1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0]
    assert paired_bootstrap_diff(a, list(a), resamples=500) == (0.0, 0.0, 0.0)


def test_complement_on_some_items_gives_exact_difference_inside_ci():
    a = [1.0] * 20 + [0.0] * 20
    b = [0.0] * 10 + a[10:]  # b misses 10 of the 40 questions a gets right, agrees elsewhere
    diff, low, high = paired_bootstrap_diff(a, b, resamples=2000)
    assert diff == 25.0
    assert -100.0 <= low < diff < high <= 100.0
    # paired, the per-question differences are 1 on a quarter of the questions, 0 elsewhere: the
    # CI is about 25 +- 14 (2 x sqrt(.25 x .75 / 40)); resampling a and b apart gives about +- 21
    assert low > 0.0 and high - low <= 30.0


def test_b_better_gives_negative_difference():
    a = [0.0] * 8 + [1.0] * 2
    b = [1.0] * 10
    diff, low, high = paired_bootstrap_diff(a, b, resamples=1000)
    assert diff == -80.0 and -100.0 <= low <= diff <= high < 0.0


def test_deterministic_by_seed():
    a = [float(i % 3 == 0) for i in range(601)]
    b = [float(i % 2 == 0) for i in range(601)]  # fine-grained enough that seeds move the CI
    first = paired_bootstrap_diff(a, b, resamples=1000, seed=7)
    assert paired_bootstrap_diff(a, b, resamples=1000, seed=7) == first
    other = paired_bootstrap_diff(a, b, resamples=1000, seed=8)
    assert other[0] == first[0] and other[1:] != first[1:]


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match=r"got 3 and 2 values.*question id"):
        paired_bootstrap_diff([1.0, 0.0, 1.0], [1.0, 0.0])


def test_empty_runs_give_nan():
    assert all(math.isnan(v) for v in paired_bootstrap_diff([], []))


# --- the sweep summary -------------------------------------------------------------------------

METRICS = {
    "accuracy": 50.0,
    "accuracy_ci_low": 40.0,
    "accuracy_ci_high": 60.0,
    "thinking_tokens": 70.0,
    "forced_exit_rate": 0.1,
    "ignores_used": 0.0,
}


def write_job(sweep: Path, num: int, overrides: list[str], correct: dict[str, bool] | None):
    """One job's run dir as the pipeline leaves it: results.json and (unless None) samples.jsonl."""
    job = sweep / str(num)
    job.mkdir(parents=True)
    results = {
        "metrics": METRICS,
        "choices": {"method": "budget_forcing"},
        "overrides": ["+ablation=data_selection", *overrides],
        "stages": {"train": {"reused": False}},
        "config": {"method": {"cap": "auto"}},
    }
    (job / "results.json").write_text(json.dumps(results))
    if correct is not None:
        samples = [
            {"id": qid, "question": f"q {qid}", "correct": ok, "thinking_tokens": 5}
            for qid, ok in correct.items()
        ]
        (job / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))


def table_rows(text: str) -> dict[str, dict[str, str]]:
    """The printed table as label -> column name -> cell."""
    lines = text.splitlines()
    header = [c.strip() for c in lines[0].split(" | ")]
    rows = {}
    for line in lines[2:]:
        if " | " not in line:
            break
        cells = [c.strip() for c in line.split(" | ")]
        rows[cells[0]] = dict(zip(header, cells, strict=True))
    return rows


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    ids = [f"q{i}" for i in range(10)]
    write_job(tmp_path, 0, ["selection=s1k"], {q: i < 6 for i, q in enumerate(ids)})
    # random answers one extra question (q99, right) that s1k never saw: it must not count
    random_correct = {q: i < 3 for i, q in enumerate(ids)} | {"q99": True}
    write_job(tmp_path, 1, ["selection=random"], random_correct)
    write_job(tmp_path, 2, ["selection=diverse"], None)  # its samples are gone
    return tmp_path


def run_summary(sweep: Path, reference: str | None) -> str:
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}})
    SweepSummary(reference=reference).on_multirun_end(config)
    return (sweep / "summary.txt").read_text(encoding="utf-8")


def test_summary_with_reference_adds_paired_differences(sweep: Path, capsys):
    text = run_summary(sweep, "selection=s1k")
    assert text in capsys.readouterr().out
    rows = table_rows(text)
    assert rows["selection=s1k"]["Δ vs ref"] == "0.0"
    assert rows["selection=s1k"]["Δ low"] == "0.0" and rows["selection=s1k"]["Δ high"] == "0.0"
    assert rows["selection=random"]["Δ vs ref"] == "-30.0"  # 3/10 - 6/10 over the shared ids
    low, high = float(rows["selection=random"]["Δ low"]), float(rows["selection=random"]["Δ high"])
    assert -100.0 <= low <= -30.0 <= high <= 0.0  # random is never right where s1k is wrong
    assert [rows["selection=diverse"][c] for c in ("Δ vs ref", "Δ low", "Δ high")] == ["n/a"] * 3
    assert rows["selection=random"]["acc %"] == "50.0"  # the existing columns are untouched


def test_summary_without_matching_reference_says_so_and_keeps_the_table(sweep: Path, capsys):
    text = run_summary(sweep, "selection=nope")
    out = capsys.readouterr().out
    notes = [line for line in out.splitlines() if "selection=nope" in line]
    assert len(notes) == 1 and "No job" in notes[0]
    assert "Δ" not in text.splitlines()[0]  # no Δ columns in the header
    assert set(table_rows(text)) == {"selection=s1k", "selection=random", "selection=diverse"}


def test_summary_without_reference_is_the_plain_table(sweep: Path):
    text = run_summary(sweep, None)
    assert "Δ" not in text and len(table_rows(text)) == 3


def test_crossed_axis_compares_with_the_reference_of_the_same_value(tmp_path: Path):
    ids = [f"q{i}" for i in range(4)]
    right = {n: {q: i < n for i, q in enumerate(ids)} for n in range(5)}
    write_job(tmp_path, 0, ["selection=s1k", "benchmark=a"], right[4])
    write_job(tmp_path, 1, ["selection=s1k", "benchmark=b"], right[1])
    write_job(tmp_path, 2, ["selection=random", "benchmark=a"], right[2])
    write_job(tmp_path, 3, ["selection=random", "benchmark=b"], right[2])
    deltas = reference_deltas(tmp_path, "selection=s1k", resamples=200)
    assert [d[0] for d in deltas] == [0.0, 0.0, -50.0, 25.0]


def test_reference_deltas_none_when_no_job_matches(sweep: Path):
    assert reference_deltas(sweep, "selection.size=1000") is None


# --- Table 2's ablation configs ----------------------------------------------------------------


def compose_ablation(name: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=[f"+ablation={name}"], return_hydra_config=True)


@pytest.mark.parametrize(
    ("ablation", "axis", "values", "reference"),
    [
        ("data_selection", "selection", "s1k,random,diverse,longest,full", "selection=s1k"),
        ("dataset_size", "selection.size", "250,500,1000,2000", "selection.size=1000"),
    ],
)
def test_table2_ablations_sweep_and_set_the_reference(ablation, axis, values, reference):
    cfg = compose_ablation(ablation)
    assert cfg.hydra.mode.name == "MULTIRUN"
    assert dict(cfg.hydra.sweeper.params) == {axis: values}
    assert cfg.logger.group == ablation and list(cfg.logger.tags) == ["table2"]
    summary = instantiate(cfg.hydra.callbacks.summary)  # what Hydra does with a callback
    assert isinstance(summary, SweepSummary) and summary.reference == reference
    assert reference.split("=")[1] in values.split(",")  # the reference is one of the jobs
    raw = OmegaConf.load(CONF / "ablation" / f"{ablation}.yaml")
    assert set(raw) == {"hydra", "logger"}  # ablation files set nothing else (DESIGN.md)
