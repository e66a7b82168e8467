"""The sweep report (`python -m s1exp.report`): cells, Δ vs a reference, paper sheets, Table 3 for
every method kind, the plots, the CLI's errors, and the sheets in sweeps/."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.image
import pytest
import yaml
from matplotlib.container import BarContainer

from s1exp.evaluate.metrics import bootstrap_ci, paired_bootstrap_diff
from s1exp.report import build_report, load_sheet, publish
from s1exp.report.__main__ import main
from s1exp.report.sheet import TABLE3_FIELDS

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {
    "budget_forcing": ("s1exp.infer.budget_forcing.BudgetForcing", {}),
    "tcc": ("s1exp.infer.conditional.TokenConditional", {"force": False}),
    "tcc_bf": ("s1exp.infer.conditional.TokenConditional", {"force": True}),
    "ccc_short": ("s1exp.infer.conditional.ClassConditional", {"length": "short"}),
    "ccc_long": ("s1exp.infer.conditional.ClassConditional", {"length": "long"}),
    "majority_voting": ("s1exp.infer.voting.MajorityVoting", {"n": 4}),
}


@dataclass
class Bench:
    """One benchmark of a job: correctness per question (ids q0, q1, ...), thinking tokens, and
    the thinking limit the method asked for (None: it has none)."""

    correct: list[bool]
    tokens: float
    limit: float | None = None
    extra: dict[str, bool] = field(default_factory=dict)  # more question ids -> correct

    def answers(self) -> dict[str, bool]:
        return {f"q{i}": ok for i, ok in enumerate(self.correct)} | self.extra


def write_job(
    sweep: Path,
    num: int,
    overrides: list[str],
    benches: dict[str, Bench],
    method: str = "budget_forcing",
    fields: dict | None = None,
    samples: bool = True,
) -> Path:
    """A job dir in the per-benchmark results shape, with metrics computed from the answers."""
    job = sweep / str(num)
    job.mkdir(parents=True)
    target, defaults = TARGETS[method]
    metrics = {}
    for name, bench in benches.items():
        values = [float(ok) for ok in bench.answers().values()]
        low, high = bootstrap_ci(values, resamples=1000)
        metrics[name] = {
            "accuracy": 100 * sum(values) / len(values),
            "accuracy_ci_low": 100 * low,
            "accuracy_ci_high": 100 * high,
            "thinking_tokens": bench.tokens,
            "thinking_limit": bench.limit,
            "answer_tokens": 5.0,
            "forced_exit_rate": 0.25,
            "ignores_used": 0.0,
            "unparsed_rate": 0.0,
            "n": float(len(values)),
        }
    results = {
        "metrics": metrics,
        "choices": {"method": method, "benchmark": next(iter(benches)), "budget": "toy64"},
        "overrides": ["+ablation=test", *overrides],
        "stages": {"train": {"reused": num > 0}},
        "config": {
            "method": {"_target_": target, **defaults, **(fields or {})},
            "benchmark": {name: {} for name in benches},
            "extrapolation": {"ignore": 0},
        },
    }
    (job / "results.json").write_text(json.dumps(results))
    if samples:
        rows = [
            {"benchmark": name, "id": qid, "correct": ok, "thinking_tokens": int(bench.tokens)}
            for name, bench in benches.items()
            for qid, ok in bench.answers().items()
        ]
        (job / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return job


def table(markdown: str, first_header: str = "run") -> list[dict[str, str]]:
    """The markdown table whose header starts with `first_header`, as rows of column -> cell."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    header = [c.strip() for c in lines[start].strip("|").split(" | ")]
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(
            dict(zip(header, [c.strip() for c in line.strip("|").split(" | ")], strict=True))
        )
    return rows


def by_run(markdown: str) -> dict[str, dict[str, str]]:
    return {row["run"]: row for row in table(markdown)}


def ci_text(values: list[bool]) -> str:
    low, high = bootstrap_ci([float(v) for v in values], resamples=1000)
    return f"[{100 * low:.1f}, {100 * high:.1f}]"


TOY_NONE = [True] * 6 + [False] * 4
TOY_WAIT = [True] * 3 + [False] * 7
AIME_NONE = [True, False, False, True, False, False]
AIME_WAIT = [True, True, True, True, False, False]


@pytest.fixture
def extrapolation_sweep(tmp_path: Path) -> Path:
    """Two benchmarks, a categorical axis; wait also answered a toy question none never saw."""
    sweep = tmp_path / "sweep"
    write_job(
        sweep,
        0,
        ["extrapolation=none"],
        {"toy": Bench(TOY_NONE, 76.2, 128.0), "aime24": Bench(AIME_NONE, 7000.0, 32000.0)},
    )
    write_job(
        sweep,
        1,
        ["extrapolation=wait"],
        {"toy": Bench(TOY_WAIT, 119.4, 128.0, {"q99": True}), "aime24": Bench(AIME_WAIT, 9000.0)},
    )
    write_job(
        sweep, 2, ["extrapolation=hmm"], {"toy": Bench(TOY_WAIT, 105.7, 128.0)}, samples=False
    )
    return sweep


# --- the members table -------------------------------------------------------------------------


def test_cells_show_accuracy_ci_and_thinking_tokens(extrapolation_sweep: Path):
    rows = by_run(build_report(extrapolation_sweep).markdown)
    assert list(rows) == ["extrapolation=none", "extrapolation=wait", "extrapolation=hmm"]
    assert rows["extrapolation=none"]["toy"] == f"60.0 {ci_text(TOY_NONE)} · 76"
    assert rows["extrapolation=none"]["aime24"] == f"33.3 {ci_text(AIME_NONE)} · 7000"
    wait_toy = [*TOY_WAIT, True]  # q99 counts for the run itself
    assert rows["extrapolation=wait"]["toy"] == f"36.4 {ci_text(wait_toy)} · 119"
    assert rows["extrapolation=hmm"]["aime24"] == "—"  # hmm did not run aime24


def test_delta_column_is_the_paired_bootstrap_per_benchmark(extrapolation_sweep: Path):
    report = build_report(extrapolation_sweep, reference="extrapolation=none", resamples=2000)
    rows = by_run(report.markdown)
    toy = paired_bootstrap_diff(
        [float(v) for v in TOY_WAIT], [float(v) for v in TOY_NONE], resamples=2000
    )  # q99 is left out: none never answered it
    aime = paired_bootstrap_diff(
        [float(v) for v in AIME_WAIT], [float(v) for v in AIME_NONE], resamples=2000
    )
    column = "{} Δ vs extrapolation=none"
    assert rows["extrapolation=wait"][column.format("toy")] == (
        f"{toy[0]:+.1f} [{toy[1]:.1f}, {toy[2]:.1f}]"
    )
    assert toy[0] == -30.0
    assert rows["extrapolation=wait"][column.format("aime24")] == (
        f"{aime[0]:+.1f} [{aime[1]:.1f}, {aime[2]:.1f}]"
    )
    assert rows["extrapolation=none"][column.format("toy")] == "+0.0 [0.0, 0.0]"
    assert rows["extrapolation=hmm"][column.format("toy")] == "n/a"  # its samples are gone
    assert "paired bootstrap 95% CI (2,000 resamples)" in report.markdown
    runs_columns, runs = report.tables["runs"]
    wait_toy = next(r for r in runs if r[:2] == ["extrapolation=wait", "toy"])
    assert wait_toy[runs_columns.index("delta")] == toy[0]


def test_reference_no_job_has_says_so_without_delta_columns(extrapolation_sweep: Path):
    markdown = build_report(extrapolation_sweep, reference="extrapolation=nope").markdown
    assert "Δ" not in table(markdown)[0] and "No job of this sweep" in markdown


def test_paper_columns_from_the_table4_sheet(extrapolation_sweep: Path):
    sheet = load_sheet(ROOT / "sweeps" / "table4_extrapolation.yaml")
    report = build_report(extrapolation_sweep, sheet)
    header = list(table(report.markdown)[0])
    # the toy sweep's own benchmarks, each with the paper beside it where the sheet has one,
    # then the paper's benchmarks this sweep did not run
    # (and the sheet's reference, extrapolation=none, adds a Δ column after each benchmark)
    delta = "Δ vs extrapolation=none"
    assert header == [
        *["run", "toy", f"toy {delta}", "aime24", f"aime24 {delta}", "aime24 paper"],
        *["math500 paper", "gpqa_diamond paper"],
    ]
    rows = by_run(report.markdown)
    assert rows["extrapolation=wait"]["aime24 paper"] == "53.3"
    assert rows["extrapolation=hmm"]["gpqa_diamond paper"] == "59.6"
    assert rows["extrapolation=none"]["math500 paper"] == "93.0"
    below = report.markdown.split("Paper rows no run of this sweep matches:")[1]
    assert "2x without string (`extrapolation=empty`)" in below
    assert '2x "Alternatively"' in below and '2x "Wait"' not in below


def test_most_specific_sheet_row_wins_and_thinking_tokens_print(tmp_path: Path):
    sweep = tmp_path / "sweep"
    write_job(sweep, 0, ["model=s1-32b"], {"toy": Bench(TOY_NONE, 50.0)})
    write_job(sweep, 1, ["model=s1.1-32b"], {"toy": Bench(TOY_WAIT, 60.0)})
    sheet_path = tmp_path / "sheet.yaml"
    sheet_path.write_text(
        yaml.safe_dump(
            {
                "title": "t",
                "source": "s",
                "ablation": None,
                "command": "c",
                "paper_command": "p",
                "rows": [
                    {"label": "any", "match": {"extrapolation.ignore": 0}, "paper": {"toy": 1.0}},
                    {
                        "label": "s1.1",
                        "match": {"model": "s1.1-32b", "extrapolation.ignore": 0},
                        "paper": {"toy": 2.0},
                        "paper_thinking_tokens": {"toy": 3268},
                    },
                    {"label": "never", "match": {"model": "other"}, "paper": {"toy": None}},
                ],
            }
        )
    )
    rows = by_run(build_report(sweep, load_sheet(sheet_path)).markdown)
    assert rows["model=s1-32b"]["toy paper"] == "1.0"  # matched through the resolved config
    assert rows["model=s1.1-32b"]["toy paper"] == "2.0 · 3268"


# --- Table 3 -----------------------------------------------------------------------------------

INSTRUCTED = [1024, 2048, 4096, 8192, 16384]
FREE = [(7939, 8), (7158, 9), (8263, 10), (7108, 10), (7500, 12)]  # S1_SPEC 4: tokens, k of 30
FORCED = [(1024, 1), (2048, 9), (4031, 10), (5664, 10), (6330, 12)]


def aime(right: int) -> list[bool]:
    return [i < right for i in range(30)]


@pytest.fixture
def tcc_sweep(tmp_path: Path) -> Path:
    sweep, num = tmp_path / "tcc", 0
    for method, runs in (("tcc", FREE), ("tcc_bf", FORCED)):
        for n, (tokens, right) in zip(INSTRUCTED, runs, strict=True):
            bench = {"aime24": Bench(aime(right), float(tokens), float(n))}
            overrides = [f"method={method}", f"method.tokens={n}"]
            write_job(sweep, num, overrides, bench, method, {"tokens": n})
            num += 1
    return sweep


def test_table3_reproduces_the_papers_tcc_rows(tcc_sweep: Path):
    sheet = load_sheet(ROOT / "sweeps" / "table3_methods.yaml")
    report = build_report(tcc_sweep, sheet)
    rows = {r["method"]: r for r in table(report.markdown, "benchmark")}
    assert set(rows) == {"TCC", "TCC + BF"}
    tcc, forced = rows["TCC"], rows["TCC + BF"]
    assert (tcc["runs"], tcc["Control"], tcc["Scaling (pp/doubling)"]) == ("5", "40%", "-23.8")
    assert (forced["Control"], forced["Scaling (pp/doubling)"], forced["Performance"]) == (
        "100%",
        "13.2",
        "40.0",
    )
    paper = [tcc[f"paper {f.capitalize() if f != 'runs' else f}"] for f in TABLE3_FIELDS]
    assert paper == ["40%", "-24", "40.0", "5"]
    assert forced["paper Scaling"] == "13"
    # the raw per-run rows match by method and instructed tokens
    assert by_run(report.markdown)["method=tcc method.tokens=1024"]["aime24 paper"] == "26.7 · 7939"
    assert report.tables["table3"][1][0][:3] == ["aime24", "TCC", 5]


def test_ccc_control_follows_the_default_run(tmp_path: Path):
    sweep = tmp_path / "ccc"
    toy = [True] * 3 + [False] * 5
    write_job(sweep, 0, ["method=ccc_short"], {"toy": Bench(toy, 50.0)}, "ccc_short")
    write_job(sweep, 1, ["method=ccc_long"], {"toy": Bench(toy[1:], 60.0)}, "ccc_long")
    write_job(sweep, 2, ["method=budget_forcing"], {"toy": Bench(toy, 70.0, 100.0)})
    rows = {r["method"]: r for r in table(build_report(sweep).markdown, "benchmark")}
    # short thought 50 <= 70 (inside), long thought 60 < 70 (outside): the paper's 50%
    assert rows["CCC"]["runs"] == "2" and rows["CCC"]["Control"] == "50%"
    assert rows["budget forcing"]["Control"] == "100%"  # 70 <= its limit of 100

    (sweep / "2" / "results.json").unlink()  # no default run: CCC's Control is n/a, and why
    markdown = build_report(sweep).markdown
    rows = {r["method"]: r for r in table(markdown, "benchmark")}
    assert rows["CCC"]["Control"] == "n/a"
    assert "add `method=budget_forcing` to the sweep" in markdown


def test_default_run_must_share_the_other_settings(tmp_path: Path):
    sweep = tmp_path / "ccc"
    write_job(sweep, 0, ["method=ccc_short", "seed=1"], {"toy": Bench(TOY_NONE, 50.0)}, "ccc_short")
    write_job(sweep, 1, ["method=ccc_long", "seed=1"], {"toy": Bench(TOY_NONE, 80.0)}, "ccc_long")
    write_job(sweep, 2, ["method=budget_forcing", "seed=2"], {"toy": Bench(TOY_NONE, 70.0, 99.0)})
    rows = {r["method"]: r for r in table(build_report(sweep).markdown, "benchmark")}
    assert rows["CCC"]["Control"] == "n/a"  # seed=2 differs: not CCC's default run


def test_voting_has_no_table3_row_and_one_run_per_kind_has_no_block(tmp_path: Path):
    sweep = tmp_path / "mv"
    write_job(sweep, 0, ["method.n=4"], {"toy": Bench(TOY_NONE, 50.0)}, "majority_voting")
    write_job(sweep, 1, ["method.n=16"], {"toy": Bench(TOY_WAIT, 60.0)}, "majority_voting")
    report = build_report(sweep)
    assert "Table 3" not in report.markdown and report.tables["table3"][1] == []
    assert not any(name.startswith("scaling_") for name in report.figures)


# --- plots -------------------------------------------------------------------------------------


def test_scaling_plot_has_log2_axis_labels_and_a_line_per_method(tcc_sweep: Path, tmp_path: Path):
    report = build_report(tcc_sweep)
    figure = report.figures["scaling_aime24.png"]
    (axes,) = figure.axes
    assert axes.get_xscale() == "log" and axes.xaxis.get_transform().base == 2
    assert "thinking tokens" in axes.get_xlabel() and "accuracy" in axes.get_ylabel()
    assert "aime24" in axes.get_title()
    lines = {line.get_label(): line for line in axes.get_lines()}
    assert set(lines) == {"TCC", "TCC + BF"}
    assert [t.get_text() for t in axes.get_legend().get_texts()] == ["TCC", "TCC + BF"]
    assert list(lines["TCC + BF"].get_xdata()) == [1024, 2048, 4031, 5664, 6330]
    assert lines["TCC"].get_marker() == "o"
    images = publish(report, tmp_path / "out")
    pixels = matplotlib.image.imread(images["scaling_aime24"])
    assert pixels.shape[:2] == (450, 700) and pixels.std() > 0.05  # drawn, not blank


def test_bars_for_a_categorical_sweep_with_the_papers_series(extrapolation_sweep: Path):
    sheet = load_sheet(ROOT / "sweeps" / "table4_extrapolation.yaml")
    report = build_report(extrapolation_sweep, sheet)
    # every run is budget forcing, so its Table 3 scaling plot comes too
    assert set(report.figures) == {
        f"{k}_{b}.png" for k in ("bars", "scaling") for b in ("toy", "aime24")
    }
    (axes,) = report.figures["bars_aime24.png"].axes
    ours, paper = [c for c in axes.containers if isinstance(c, BarContainer)]
    assert ours.errorbar is not None and paper.errorbar is None  # CIs on this sweep's bars
    assert [round(b.get_height(), 1) for b in ours] == [33.3, 66.7]
    assert [b.get_height() for b in paper] == [50.0, 53.3]
    assert [t.get_text() for t in axes.get_legend().get_texts()] == ["this sweep", "paper (aime24)"]
    (toy_axes,) = report.figures["bars_toy.png"].axes  # the paper has no toy numbers: no series
    assert len([c for c in toy_axes.containers if isinstance(c, BarContainer)]) == 1
    out = extrapolation_sweep / "report"
    images = publish(report, out)
    assert matplotlib.image.imread(images["bars_toy"]).shape[1] >= 600
    assert "![bars_toy.png](bars_toy.png)" in (out / "report.md").read_text()


def test_numeric_sweep_gets_no_bars(tmp_path: Path):
    sweep = tmp_path / "size"
    write_job(sweep, 0, ["selection.size=250"], {"toy": Bench(TOY_NONE, 50.0, 64.0)})
    write_job(sweep, 1, ["selection.size=1000"], {"toy": Bench(TOY_WAIT, 40.0, 64.0)})
    assert set(build_report(sweep).figures) == {"scaling_toy.png"}


def test_a_job_without_metrics_on_a_benchmark_shows_a_dash(extrapolation_sweep: Path):
    results_path = extrapolation_sweep / "1" / "results.json"
    results = json.loads(results_path.read_text())
    results["metrics"]["aime24"] = {}  # e.g. a job that stopped before grading aime24
    results_path.write_text(json.dumps(results))
    report = build_report(extrapolation_sweep)
    assert by_run(report.markdown)["extrapolation=wait"]["aime24"] == "—"
    assert "bars_aime24.png" in report.figures and "scaling_aime24.png" not in report.figures


def test_publish_replaces_an_older_report_in_one_rename(extrapolation_sweep: Path):
    out = extrapolation_sweep / "report"
    report = build_report(extrapolation_sweep)
    publish(report, out)
    (out / "stale.png").write_bytes(b"old")
    publish(report, out)
    assert sorted(p.name for p in out.iterdir()) == sorted([*report.figures, "report.md"])
    assert [p.name for p in extrapolation_sweep.iterdir() if p.name.startswith(".")] == []


# --- the CLI -----------------------------------------------------------------------------------


def test_cli_prints_and_saves_the_report(extrapolation_sweep: Path, tmp_path: Path, capsys):
    args = [str(extrapolation_sweep), "--paper", "sweeps/table4_extrapolation.yaml"]
    assert main([*args, "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    saved = (tmp_path / "r" / "report.md").read_text(encoding="utf-8")
    assert saved in out and "toy Δ vs extrapolation=none" in saved  # the sheet's reference
    assert (tmp_path / "r" / "bars_toy.png").stat().st_size > 1000


def bad_sheet(tmp_path: Path, change: dict) -> str:
    data = yaml.safe_load((ROOT / "sweeps" / "table4_extrapolation.yaml").read_text())
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data | change))
    return str(path)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing dir", "does not exist"),
        ("no finished jobs", "no finished jobs (no */results.json)"),
        ("unknown sheet key", "unknown keys ['colour']"),
        ("row without match", "rows[0]: missing key 'match'"),
        ("missing sheet", "cannot be read"),
        ("bad reference", "write it as KEY=VALUE"),
    ],
)
def test_cli_errors_are_one_line_and_exit_2(
    case: str, expected: str, extrapolation_sweep: Path, tmp_path: Path, capsys
):
    sweep = str(extrapolation_sweep)
    args = {
        "missing dir": lambda: [str(tmp_path / "nowhere")],
        "no finished jobs": lambda: [str(tmp_path)],
        "unknown sheet key": lambda: [sweep, "--paper", bad_sheet(tmp_path, {"colour": "red"})],
        "row without match": lambda: [
            sweep,
            "--paper",
            bad_sheet(tmp_path, {"rows": [{"label": "x", "paper": {"aime24": 1.0}}]}),
        ],
        "missing sheet": lambda: [sweep, "--paper", "sweeps/nope.yaml"],
        "bad reference": lambda: [sweep, "--reference", "selection"],
    }[case]()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("s1exp.report: error: ") and expected in err and "\n" not in err
    assert case == "bad reference" or any(a in err for a in args if a != "--paper")  # the path


def test_module_entry_point_exits_2(tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "s1exp.report", str(tmp_path / "nowhere")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stderr.startswith("s1exp.report: error: ")


# --- the sheets in sweeps/ ---------------------------------------------------------------------

SHEETS = sorted((ROOT / "sweeps").glob("*.yaml"))
EXPECTED_SHEETS = {
    "table2_data",
    "table3_methods",
    "table4_extrapolation",
    "table5_budget_forcing",
    "table8_sequence_length",
    "figure1_4a_budget_scaling",
    "figure4b_majority_voting",
    "figure6_rejection_sampling",
}


def test_every_paper_table_has_a_sheet():
    assert {p.stem for p in SHEETS} == EXPECTED_SHEETS


@pytest.mark.parametrize("path", SHEETS, ids=lambda p: p.stem)
def test_sheet_schema_and_ablations_exist(path: Path):
    sheet = load_sheet(path)  # raises on unknown keys, wrong types, rows without match
    assert sheet.title and "S1_SPEC section" in sheet.source and sheet.rows
    assert sheet.command.startswith("python -m s1exp") and "model=" in sheet.paper_command
    raw = yaml.safe_load(path.read_text())
    named = sheet.ablation + [r["ablation"] for r in raw["rows"] if r.get("ablation")]
    for name in named:
        assert (ROOT / "conf" / "ablation" / f"{name}.yaml").is_file(), name
    if raw["ablation"] is None:  # no ablation yet: the sheet says what would run it
        assert "-m" in sheet.command
    else:
        assert all(f"+ablation={name}" in sheet.command for name in sheet.ablation)
    if sheet.reference:
        assert "=" in sheet.reference


# -- a real toy sweep: two method kinds at two caps, the report and its plots ------------------
@pytest.fixture(scope="module")
def method_sweep(toy_run: Path, s1_env: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """budget forcing and CCC (short prompt) at two caps, on the session's trained toy model."""
    from conftest import FAST, run_s1exp

    cwd = tmp_path_factory.mktemp("method_sweep")
    args = [*FAST, "method=budget_forcing,ccc_short", "budget=toy16,toy64"]
    proc = run_s1exp([*args, "hydra.sweep.dir=sweep", "-m"], cwd, s1_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("## Table 3") == 1  # the report is printed once
    return cwd / "sweep"


def test_report_of_a_real_toy_sweep(method_sweep: Path, tmp_path: Path):
    report = (method_sweep / "report" / "report.md").read_text()
    for label in ("method=budget_forcing budget=toy16", "method=ccc_short budget=toy64"):
        assert f"| {label} |" in report
    table3 = report[report.index("## Table 3") :]
    assert "| toy | budget forcing | 2 | 100% |" in table3  # both runs within their caps
    assert "| toy | CCC | 2 |" in table3  # judged against the plain prompt at the same cap
    figure = build_report(method_sweep).figures["scaling_toy.png"]
    (axes,) = figure.axes
    assert axes.get_xscale() == "log" and axes.xaxis.get_transform().base == 2
    assert axes.get_xlabel() and axes.get_ylabel()
    assert sorted(line.get_label() for line in axes.get_lines()) == ["CCC", "budget forcing"]
    pixels = matplotlib.image.imread(method_sweep / "report" / "scaling_toy.png")
    assert pixels.std() > 0.05
    cli = subprocess.run(
        [sys.executable, "-m", "s1exp.report", str(method_sweep), "--out", str(tmp_path / "r")],
        capture_output=True,
        text=True,
    )
    assert cli.returncode == 0, cli.stderr
    again = (tmp_path / "r" / "report.md").read_text()
    assert again.split("\n", 1)[1] == report.split("\n", 1)[1]  # the title names the dir as given


def sheet_commands() -> list[tuple[str, str]]:
    out = []
    for path in sorted((ROOT / "sweeps").glob("*.yaml")):
        sheet = yaml.safe_load(path.read_text())
        for key in ("command", "paper_command"):
            for line in str(sheet.get(key) or "").splitlines():
                if line.startswith("python -m s1exp "):
                    out.append((f"{path.name}:{key}", line))
    return out


@pytest.mark.parametrize(("where", "command"), sheet_commands())
def test_sheet_commands_compose(where: str, command: str):
    """Every command a sheet prints runs as written: `-m` last (Hydra's parser stops at it) and
    each override composes, with the first value of each swept list."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    args = command.split()[3:]
    assert "-m" not in args[:-1], f"{where}: put -m after the overrides"
    parsed = OverridesParser.create().parse_overrides([a for a in args if a != "-m"])
    first = []
    for override in parsed:
        values = list(override.sweep_iterator()) if override.is_sweep_override() else None
        value = values[0] if values else override.value()
        if isinstance(value, list):
            value = "[" + ",".join(map(str, value)) + "]"
        first.append(f"{override.get_key_element()}={value}")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        ablations = [o for o in first if o.startswith("+ablation=")]
        hydra_cfg = compose("config", overrides=ablations, return_hydra_config=True)
        given = {o.split("=", 1)[0] for o in first}
        swept = hydra_cfg.hydra.sweeper.get("params") or {}  # an ablation's own sweep
        ablation = [f"{k}={str(v).split(',')[0]}" for k, v in swept.items() if k not in given]
        cfg = compose("config", overrides=ablation + first)  # groups first, then their fields
    assert cfg.benchmark, where
