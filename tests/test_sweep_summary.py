"""Paired bootstrap differences, the sweep summary's "Δ vs ref" columns, and Table 2's ablations."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest import wandb_inspect
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import OmegaConf

from s1exp import track
from s1exp.callbacks import SweepSummary
from s1exp.errors import ConfigError
from s1exp.evaluate.metrics import paired_bootstrap_diff
from s1exp.report.sweep import load_sweep, member_deltas

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


# --- the sweep summary (s1exp.callbacks.SweepSummary builds s1exp.report) ----------------------

METRICS = {
    "accuracy": 50.0,
    "accuracy_ci_low": 40.0,
    "accuracy_ci_high": 60.0,
    "thinking_tokens": 70.0,
    "thinking_limit": None,
    "forced_exit_rate": 0.1,
    "ignores_used": 0.0,
}


def write_job(
    sweep: Path, num: int, overrides: list[str], correct: dict[str, bool] | None, flat=False
):
    """One job's run dir as the pipeline leaves it: results.json and (unless None) samples.jsonl.
    `flat`: metrics as runs wrote them before they were keyed by benchmark."""
    job = sweep / str(num)
    job.mkdir(parents=True)
    results = {
        "metrics": METRICS if flat else {"toy": METRICS},
        "choices": {"method": "budget_forcing", "benchmark": "toy"},
        "overrides": ["+ablation=data_selection", *overrides],
        "stages": {"train": {"reused": False}},
        "config": {"method": {"_target_": "s1exp.infer.budget_forcing.BudgetForcing"}},
    }
    (job / "results.json").write_text(json.dumps(results))
    if correct is not None:
        samples = [
            {"benchmark": "toy", "id": qid, "correct": ok, "thinking_tokens": 5}
            for qid, ok in correct.items()
        ]
        if flat:  # older samples name no benchmark
            samples = [{k: v for k, v in row.items() if k != "benchmark"} for row in samples]
        (job / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))


def table_rows(text: str) -> dict[str, dict[str, str]]:
    """The report's first markdown table as label -> column name -> cell."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split(" | ")]
    rows = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        if len(cells) != len(header) or cells[0] == "run":
            break
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


def run_summary(sweep: Path, reference: str | None, paper: str | None = None) -> str:
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}})
    SweepSummary(reference=reference, paper=paper).on_multirun_end(config)
    return (sweep / "summary.txt").read_text(encoding="utf-8")


DELTA = "toy Δ vs selection=s1k"


def test_summary_with_reference_adds_paired_differences(sweep: Path, capsys):
    text = run_summary(sweep, "selection=s1k")
    out = capsys.readouterr().out
    assert text in out and out.count("# Sweep report") == 1  # printed once
    assert (sweep / "report" / "report.md").read_text(encoding="utf-8").startswith(text)
    rows = table_rows(text)
    assert rows["selection=s1k"][DELTA] == "+0.0 [0.0, 0.0]"
    diff, low, high = (
        rows["selection=random"][DELTA].replace("[", "").replace(",", "").replace("]", "").split()
    )
    assert diff == "-30.0"  # 3/10 - 6/10 over the shared ids
    assert -100.0 <= float(low) <= -30.0 <= float(high) <= 0.0  # never right where s1k is wrong
    assert rows["selection=diverse"][DELTA] == "n/a"
    assert rows["selection=random"]["toy"] == "50.0 [40.0, 60.0] · 70"  # results.json's metrics


def test_summary_without_matching_reference_says_so_and_keeps_the_table(sweep: Path, capsys):
    text = run_summary(sweep, "selection=nope")
    out = capsys.readouterr().out
    notes = [line for line in out.splitlines() if "selection=nope" in line]
    assert len(notes) == 1 and "No job" in notes[0]
    assert "Δ" not in text.splitlines()[4]  # no Δ columns in the header
    assert set(table_rows(text)) == {"selection=s1k", "selection=random", "selection=diverse"}


def test_summary_without_reference_is_the_plain_table(sweep: Path):
    text = run_summary(sweep, None)
    assert "Δ" not in text and len(table_rows(text)) == 3


def test_summary_reads_runs_from_before_per_benchmark_metrics(tmp_path: Path):
    ids = [f"q{i}" for i in range(4)]
    write_job(tmp_path, 0, ["selection=s1k"], {q: True for q in ids}, flat=True)
    write_job(tmp_path, 1, ["selection=random"], {q: q == "q0" for q in ids}, flat=True)
    rows = table_rows(run_summary(tmp_path, "selection=s1k"))
    assert rows["selection=random"]["toy"] == "50.0 [40.0, 60.0] · 70"
    assert rows["selection=random"][DELTA].startswith("-75.0 [")


def test_summary_with_a_paper_sheet(sweep: Path):
    text = run_summary(sweep, None, paper="sweeps/table2_data.yaml")  # relative to the repo
    rows = table_rows(text)
    assert rows["selection=random"]["aime24 paper"] == "36.7"
    assert rows["selection=s1k"]["gpqa_diamond paper"] == "57.6"
    assert DELTA in text  # the sheet's reference, selection=s1k
    assert "- 1K-longest (`selection=longest`)" in text and "59K-full" in text


def test_a_bad_sheet_fails_when_the_callback_is_made(tmp_path: Path):
    with pytest.raises(ConfigError, match="cannot be read"):
        SweepSummary(paper=str(tmp_path / "missing.yaml"))  # before any job of the sweep runs


def test_summary_logs_the_report_to_wandb_offline(sweep: Path):
    """The callback's W&B report run, written by wandb itself (offline) and read back with
    wandb's own reader: the members table, the bar plot and the summary numbers."""
    config = OmegaConf.create(
        {
            "hydra": {"sweep": {"dir": str(sweep)}},
            "logger": {"enabled": True, "project": "s1exp", "entity": None, "mode": "offline"}
            | {"group": "data_selection", "tags": ["table2"]},
        }
    )
    SweepSummary(reference="selection=s1k").on_multirun_end(config)
    (folder,) = track.sweep_wandb_dir(sweep).glob("offline-run-*")
    summary = wandb_inspect(folder)["summary"]
    assert summary["report/jobs"] == 3 and summary["report/toy/best_accuracy"] == 50.0
    assert summary["report/bars_toy"]["_type"] == "image-file"
    runs = summary["report/runs"]
    table = json.loads((folder / "files" / runs["path"]).read_text())
    random_row = next(row for row in table["data"] if row[0] == "selection=random")
    assert random_row[table["columns"].index("delta")] == -30.0


def test_crossed_axis_compares_with_the_reference_of_the_same_value(tmp_path: Path):
    ids = [f"q{i}" for i in range(4)]
    right = {n: {q: i < n for i, q in enumerate(ids)} for n in range(5)}
    write_job(tmp_path, 0, ["selection=s1k", "seed=1"], right[4])
    write_job(tmp_path, 1, ["selection=s1k", "seed=2"], right[1])
    write_job(tmp_path, 2, ["selection=random", "seed=1"], right[2])
    write_job(tmp_path, 3, ["selection=random", "seed=2"], right[2])
    deltas = member_deltas(load_sweep(tmp_path), "selection=s1k", "toy", resamples=200)
    assert [d[0] for d in deltas] == [0.0, 0.0, -50.0, 25.0]


def test_reference_deltas_none_when_no_job_matches(sweep: Path):
    assert member_deltas(load_sweep(sweep), "selection.size=1000", "toy") is None


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


def test_an_ablation_can_name_its_paper_sheet():
    """What an ablation file's `hydra.callbacks.summary.paper:` line does, as a command-line
    override: Hydra instantiates the callback with the sheet loaded (relative to the repo)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        overrides = [
            "+ablation=wait_vs_hmm",
            "hydra.callbacks.summary.paper=sweeps/table4_extrapolation.yaml",
        ]
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    summary = instantiate(cfg.hydra.callbacks.summary)
    assert (
        summary.sheet.title.startswith("Table 4")
        and summary.sheet.reference == "extrapolation=none"
    )
