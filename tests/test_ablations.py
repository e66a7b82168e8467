"""The ablation catalog (conf/ablation/): every file's exact job list, the `grids` sweeper that
expands a union of grids, and real toy runs of two grid ablations and a per-table summary."""

from __future__ import annotations

import functools
import json
import shlex
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml
from conftest import FAST, run_s1exp
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

import hydra_plugins.s1exp_sweeper as sweeper_plugin
from hydra_plugins.s1exp_sweeper.grids import PART_KEY, expand_grids
from s1exp.callbacks import SweepSummary, check_parts_have_grids, load_parts
from s1exp.errors import ConfigError
from s1exp.report.__main__ import main as report_cli
from s1exp.report.sheet import load_sheet

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"
ABLATIONS = sorted(p.stem for p in (CONF / "ablation").glob("*.yaml"))

# name -> (jobs per grid in file order, or {None: n} for the basic sweeper; a few jobs' settings)
EXPECTED: dict[str, tuple[dict[str | None, int], list[set[str]]]] = {
    "wait_vs_hmm": ({None: 5}, [{"extrapolation=none"}, {"extrapolation=wait"}]),
    "data_selection": ({None: 5}, [{"selection=s1k"}, {"selection=full"}]),
    "dataset_size": ({None: 4}, [{"selection.size=250"}, {"selection.size=2000"}]),
    "budget_scaling": (
        {"caps": 4, "wait": 4},
        [
            {"budget=toy16", "extrapolation=none", "sweep_part=caps"},
            {"budget=auto", "extrapolation=wait", "extrapolation.ignore=6", "sweep_part=wait"},
        ],
    ),
    "semantics": (
        {"caps": 8, "wait": 8},
        [
            {"budget=toy16", "extrapolation=wait", "extrapolation.ignore=2"}
            | {"method.semantics=paper", "sweep_part=caps"},
            {"budget=auto", "extrapolation=wait", "extrapolation.ignore=6"}
            | {"method.semantics=s1_code", "sweep_part=wait"},
        ],
    ),
    "test_time_methods": (
        {"budget_forcing": 4, "tcc": 8, "scc": 6, "ccc": 3, "rejection_sampling": 3},
        [
            {"method=budget_forcing", "budget=toy128", "sweep_part=budget_forcing"},
            {
                "trace_format=token_conditional",
                "method=tcc_bf",
                "method.tokens=256",
                "sweep_part=tcc",
            },
            {
                "trace_format=step_conditional",
                "trace_format.step_tokens=12",
                "method=scc",
                "method.steps=1",
                "sweep_part=scc",
            },
            {"method=budget_forcing", "sweep_part=ccc"},
            {"method=rejection_sampling", "budget=toy32", "sweep_part=rejection_sampling"},
        ],
    ),
    "rejection_sampling": ({None: 3}, [{"method=rejection_sampling", "budget=toy64"}]),
    "sequential_vs_parallel": (
        {"parallel": 1, "sequential": 4},
        [
            {"train=none", "method=majority_voting", "method.n=16", "sweep_part=parallel"},
            {"budget=toy64", "sweep_part=sequential"},
        ],
    ),
    "sequence_length": ({None: 2}, [{"train.block_size=128"}, {"train.block_size=512"}]),
    "s1_vs_s1.1": (
        {None: 8},
        [{"data=toy_1.1", "extrapolation=wait", "extrapolation.ignore=0"}],
    ),
    "paper": (
        {
            "table4/extrapolation": 5,
            "table2/selection": 5,
            "dataset_size/size": 4,
            "figure1_4a/caps": 4,
            "figure1_4a/wait": 4,
            "table3/budget_forcing": 4,
            "table3/tcc": 8,
            "table3/scc": 6,
            "table3/ccc": 3,
            "table3/rejection_sampling": 3,
            "figure6/caps": 3,
            "figure4b/parallel": 1,
            "figure4b/sequential": 4,
            "table8/block_size": 2,
            "table5/data": 8,
        },
        [{"selection=random", "sweep_part=table2/selection"}],
    ),
}
# +ablation=paper's parts and the ablation each one runs.
PAPER_PARTS = {
    "table4": "wait_vs_hmm",
    "table2": "data_selection",
    "dataset_size": "dataset_size",
    "figure1_4a": "budget_scaling",
    "table3": "test_time_methods",
    "figure6": "rejection_sampling",
    "figure4b": "sequential_vs_parallel",
    "table8": "sequence_length",
    "table5": "s1_vs_s1.1",
}


def hydra_config(overrides: list[str]) -> DictConfig:
    return _hydra_config(tuple(overrides))


@functools.cache
def _hydra_config(overrides: tuple[str, ...]) -> DictConfig:
    """Composed once per override list (read only): the catalog tests compose each file often."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=True)


def plain(node):
    return OmegaConf.to_container(node) if OmegaConf.is_config(node) else node


def expand(cfg: DictConfig, arguments: list[str]) -> list[list[str]]:
    """The jobs the sweeper of `cfg` (as composed, hydra overrides applied) runs for `arguments`."""
    sweeper = cfg.hydra.sweeper
    return expand_grids(plain(sweeper.params), plain(sweeper.get("grids")), arguments)


def ablation_jobs(name: str) -> list[list[str]]:
    return expand(hydra_config([f"+ablation={name}"]), [f"+ablation={name}"])


def settings(job: list[str], drop_part: bool = False) -> frozenset[str]:
    """A job's overrides without `+ablation=` (and its sweep_part with drop_part)."""
    return frozenset(
        o
        for o in job
        if not o.startswith("+ablation=") and not (drop_part and o.startswith(f"{PART_KEY}="))
    )


def grid_of(job: list[str]) -> str | None:
    return next((o.split("=", 1)[1] for o in job if o.startswith(f"{PART_KEY}=")), None)


# --- the catalog -------------------------------------------------------------------------------


def test_every_ablation_file_has_an_entry_here():
    assert set(ABLATIONS) == set(EXPECTED), "add the new ablation's job list to EXPECTED"


@pytest.mark.parametrize("name", ABLATIONS)
def test_ablation_expands_to_its_exact_job_list(name: str):
    jobs = ablation_jobs(name)
    per_grid, samples = EXPECTED[name]
    assert list(Counter(grid_of(j) for j in jobs).items()) == list(per_grid.items())  # in order
    assert all(f"+ablation={name}" in job for job in jobs)
    assert len({settings(j) for j in jobs}) == len(jobs), "two jobs of one sweep are the same"
    for sample in samples:
        assert frozenset(sample) in {settings(j) for j in jobs}, sample


@pytest.mark.parametrize("name", ABLATIONS)
def test_ablation_file_holds_its_sweep_group_tags_and_summary_only(name: str):
    raw = yaml.safe_load((CONF / "ablation" / f"{name}.yaml").read_text())
    assert (CONF / "ablation" / f"{name}.yaml").read_text().startswith("# @package _global_\n")
    assert set(raw) <= {"defaults", "hydra", "logger"} and set(raw["hydra"]) <= {
        "mode",
        "sweeper",
        "callbacks",
    }
    assert set(raw["logger"]) == {"group", "tags"} and raw["logger"]["tags"]
    cfg = hydra_config([f"+ablation={name}"])
    assert cfg.hydra.mode.name == "MULTIRUN" and cfg.logger.group == name
    grids = cfg.hydra.sweeper.get("grids")
    assert cfg.hydra.runtime.choices["hydra/sweeper"] == ("grids" if grids else "basic")
    summary = cfg.hydra.callbacks.summary
    if summary.get("paper"):  # the sheet says which ablation regenerates it
        assert name in load_sheet(summary.paper).ablation
    if summary.get("parts"):
        check_parts_have_grids(load_parts(summary.parts), cfg)


@pytest.mark.parametrize("name", [n for n in ABLATIONS if n != "paper"])
def test_every_job_of_an_ablation_composes(name: str):
    """Each job's overrides compose into a config whose method instantiates (+ablation=paper's
    jobs are these, test_paper_runs_every_ablation_once)."""
    jobs = ablation_jobs(name)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for job in jobs:
            cfg = compose("config", overrides=job)
            instantiate(cfg.method)
            assert cfg[PART_KEY] == grid_of(job)


def test_paper_runs_every_ablation_once():
    """Each part of +ablation=paper runs exactly its ablation's jobs, with its summary
    settings; the parts together are the whole sweep."""
    jobs = ablation_jobs("paper")
    cfg = hydra_config(["+ablation=paper"])
    parts = load_parts(cfg.hydra.callbacks.summary.parts)
    assert list(parts) == list(PAPER_PARTS)
    for part, name in PAPER_PARTS.items():
        mine = {settings(j, drop_part=True) for j in jobs if grid_of(j).split("/")[0] == part}
        theirs = {settings(j, drop_part=True) for j in ablation_jobs(name)}
        assert mine == theirs, part
        summary = hydra_config([f"+ablation={name}"]).hydra.callbacks.summary
        sheet = load_sheet(summary.paper) if summary.get("paper") else None
        assert (parts[part].sheet.path if parts[part].sheet else None) == (
            sheet.path if sheet else None
        )
        reference = summary.get("reference") or (sheet.reference if sheet else None)
        assert (parts[part].reference or (sheet.reference if sheet else None)) == reference
    assert len(jobs) == sum(len(ablation_jobs(n)) for n in PAPER_PARTS.values())


def paper_commands() -> list[tuple[str, str]]:
    out = []
    for path in sorted((ROOT / "sweeps").glob("*.yaml")):
        text = yaml.safe_load(path.read_text())["paper_command"]
        out += [(f"{path.stem}:{i}", line) for i, line in enumerate(text.strip().splitlines())]
    return out


@pytest.mark.parametrize(
    ("where", "command"), paper_commands(), ids=[w for w, _ in paper_commands()]
)
def test_paper_commands_run_the_real_models_on_slurm(where: str, command: str):
    """Each sheet's paper command, expanded as its sweeper would (grid values replaced on the
    command line included): the first and last job of every grid compose with a real model on
    cluster=slurm_h100."""
    args = [a for a in shlex.split(command)[3:] if a != "-m"]
    hydra_args = [a for a in args if a.lstrip("+").startswith("hydra.")]
    ablation = [a for a in args if a.startswith("+ablation=")]
    jobs = expand(hydra_config(ablation + hydra_args), [a for a in args if a not in hydra_args])
    firsts = {}
    for job in jobs:
        firsts.setdefault(grid_of(job), []).append(job)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for grid_jobs in firsts.values():
            for job in {id(j): j for j in (grid_jobs[0], grid_jobs[-1])}.values():
                cfg = compose("config", overrides=job, return_hydra_config=True)
                choices = cfg.hydra.runtime.choices
                assert choices["cluster"] == "slurm_h100", where
                assert choices["model"] != "tiny" and choices["engine"] == "vllm", where
                instantiate(cfg.method)


# --- the grids sweeper -------------------------------------------------------------------------


def test_without_grids_it_is_the_basic_sweeper():
    params, args = {"budget": "toy16,toy32", "seed": 1}, ["extrapolation=none,wait", "+x=1"]
    basic = BasicSweeper.split_arguments(
        OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()] + args),
        None,
    )[0]
    assert expand_grids(params, None, args) == expand_grids(params, {}, args) == basic
    assert len(basic) == 4 and not any(o.startswith(PART_KEY) for j in basic for o in j)


def test_grids_concatenate_in_order_with_shared_params_and_the_command_line_last():
    grids = {
        "b/caps": {"budget": ["toy16", "toy32"], "seed": 2},
        "a/wait": {"extrapolation": {"_choice_": "wait", "ignore": [1, 2]}},
        "a/one": None,
    }
    jobs = expand_grids({"seed": 1, "model": "tiny"}, grids, ["benchmark.toy.size=8,16", "+y=1"])
    assert [grid_of(j) for j in jobs] == ["b/caps"] * 4 + ["a/wait"] * 4 + ["a/one"] * 2
    assert jobs[0] == [
        "seed=2",  # the grid's value beats params'
        "model=tiny",
        "budget=toy16",
        "benchmark.toy.size=8",
        "+y=1",
        "sweep_part=b/caps",
    ]
    assert {"extrapolation=wait", "extrapolation.ignore=2", "seed=1"} <= set(jobs[6])
    cli = expand_grids(None, grids, ["seed=3"])[0]
    assert "seed=3" in cli and "seed=2" not in cli  # the command line wins
    typed = expand_grids(None, {"g": {"flag": True, "n": None, "benchmark": [["a", "b"], "c"]}}, [])
    assert typed == [
        ["flag=True", "n=null", "benchmark=[a,b]", "sweep_part=g"],  # Hydra's spelling of true
        ["flag=True", "n=null", "benchmark=c", "sweep_part=g"],
    ]


@pytest.mark.parametrize(
    ("grids", "expected"),
    [
        ({"caps x": {"budget": "toy16"}}, "hydra.sweeper.grids.caps x: a grid name"),
        ({"a/b/c": {"budget": "toy16"}}, "hydra.sweeper.grids.a/b/c: a grid name"),
        ({"caps": "budget=toy16"}, "hydra.sweeper.grids.caps must be a mapping"),
        ({"caps": {"budget": []}}, "hydra.sweeper.grids.caps.budget is an empty list"),
        ({"caps": {"budget": "interval(1,2)"}}, "hydra.sweeper.grids.caps.budget: BasicSweeper"),
        ({"caps": {"budget": "toy16,"}}, "hydra.sweeper.grids.caps.budget: "),
        ({"caps": {"_choice_": "wait"}}, "hydra.sweeper.grids.caps: _choice_ names"),
        ({"caps": {"method": {}}}, "hydra.sweeper.grids.caps.method is an empty mapping"),
    ],
)
def test_a_bad_grid_is_a_config_error_naming_it(grids: dict, expected: str):
    with pytest.raises(ConfigError) as error:
        expand_grids(None, grids, [])
    assert str(error.value).startswith(expected)


def test_the_sweeper_batches_the_grids_jobs():
    # Through the module: Hydra's plugin scan re-executes it, and BasicSweeper with it.
    sweeper = sweeper_plugin.GridsSweeper(max_batch_size=3, grids={"a": {"seed": [1, 2, 3, 4]}})
    sweeper.jobs = expand_grids(None, sweeper.grids, [])
    assert [len(batch) for batch in sweeper.split_arguments([], 3)] == [3, 1]


def test_a_bad_grid_on_the_command_line_exits_2_with_one_line(tmp_path: Path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "s1exp",
            "+ablation=budget_scaling",
            "hydra.sweeper.grids.caps.budget=[]",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
            "-m",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        "s1exp: error: hydra.sweeper.grids.caps.budget is an empty list; give at least one value"
    )
    assert not list((tmp_path / "sweep").glob("*/results.json"))


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        ({"t4": {"sheet": "x"}}, "hydra.callbacks.summary.parts.t4: unknown keys ['sheet']"),
        ({"t4": "sweeps/table4.yaml"}, "hydra.callbacks.summary.parts.t4 must be a mapping"),
    ],
)
def test_bad_summary_parts_exit_2(parts: dict, expected: str, capsys):
    with pytest.raises(SystemExit) as exit_info:
        SweepSummary(parts=parts)
    assert exit_info.value.code == 2 and expected in capsys.readouterr().err


def test_a_part_without_a_grid_is_refused():
    cfg = hydra_config(["+ablation=budget_scaling"])
    with pytest.raises(ConfigError, match=r"names \['table9'\].*grid parts: \['caps', 'wait'\]"):
        check_parts_have_grids(load_parts({"table9": {}, "caps": {}}), cfg)


def test_summary_parts_report_each_table_on_its_own(tmp_path: Path, capsys):
    """SweepSummary with `parts` over written job dirs: one report per part in the parts'
    order, labelled within the part, with the part's reference and sheet."""
    from test_report import Bench, write_job

    sweep = tmp_path / "sweep"
    jobs = [
        ["budget=toy16", "sweep_part=fig/caps"],
        ["budget=toy64", "sweep_part=fig/caps"],
        ["extrapolation=none", "sweep_part=t4/strings"],
        ["extrapolation=wait", "sweep_part=t4/strings"],
        ["budget=toy16", "sweep_part=fig/again"],
    ]
    for num, overrides in enumerate(jobs):
        write_job(sweep, num, overrides, {"toy": Bench([True, num % 2 == 0, False], 10.0 + num)})
    parts = {
        "t4": {"reference": "extrapolation=none"},
        "fig": {"paper": "sweeps/figure1_4a_budget_scaling.yaml"},
        "t9": None,
    }
    SweepSummary(parts=parts).on_multirun_end(
        OmegaConf.create({"hydra": {"sweep": {"dir": sweep}}})
    )
    t4 = (sweep / "report" / "t4" / "report.md").read_text()
    fig = (sweep / "report" / "fig" / "report.md").read_text()
    assert t4.startswith(f"# Sweep report: {sweep}, part t4\n") and "2 finished jobs" in t4
    assert "| extrapolation=wait | " in t4 and "Δ vs extrapolation=none" in t4
    assert "Paper: Figure 1 / 4a" in fig and "Δ vs" not in fig and "3 finished jobs" in fig
    for label in ("budget=toy16 [fig/caps]", "budget=toy16 [fig/again]", "budget=toy64"):
        assert f"| {label} |" in fig, label  # equal settings in two grids: the grid tells them
    assert "sweep_part" not in t4 + fig
    summary = (sweep / "summary.txt").read_text()
    assert summary.index("part t4") < summary.index("part fig") < summary.index("Part t9: no")
    assert capsys.readouterr().out.count("# Sweep report: ") == 2
    assert not (sweep / "report" / "report.md").exists()


# --- real toy sweeps ---------------------------------------------------------------------------
# Trimmed through the sweeper's own command line (each grid kept, fewer values) to stay fast.
BUDGET_TRIM = [
    "hydra.sweeper.grids.caps.budget=[toy16,toy64]",
    "hydra.sweeper.grids.wait.budget=toy32",
    "hydra.sweeper.grids.wait.extrapolation.ignore=[1,2]",
]
METHODS_TRIM = [
    "hydra.sweeper.grids.budget_forcing.budget=[toy16,toy64]",
    "hydra.sweeper.grids.tcc.method.tokens=[32]",  # TCC without the cap thinks longest
    "hydra.sweeper.grids.scc.method.steps=[1,2]",
    "hydra.sweeper.grids.ccc.method=[ccc_short,budget_forcing]",
    "hydra.sweeper.grids.rejection_sampling.budget._choice_=[toy32]",
]


def results(sweep: Path) -> list[dict]:
    paths = sorted(sweep.glob("*/results.json"), key=lambda p: int(p.parent.name))
    return [json.loads(p.read_text()) for p in paths]


def run_sweep(args: list[str], cwd: Path, env: dict, flags: tuple[str, ...] = ()) -> Path:
    """`python -m s1exp [flags] FAST... args... -m` into cwd/sweep (flags before overrides)."""
    proc = run_s1exp([*flags, *FAST, *args, "hydra.sweep.dir=sweep", "-m"], cwd, env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return cwd / "sweep"


def assert_trained_once(runs: list[dict]) -> set[str]:
    """Each distinct model was built by at most one job of the sweep (none if an earlier sweep
    of the session built it) and every other job reused it; returns the model keys."""
    built = Counter(r["stages"]["train"]["key"] for r in runs if not r["stages"]["train"]["reused"])
    assert all(n == 1 for n in built.values()), built
    return {r["stages"]["train"]["key"] for r in runs}


@pytest.fixture(scope="module")
def ablation_env(s1_env: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The session's base-model cache with this module's own store: the sweeps here train their
    models themselves and leave the session store (whose first toy run must train) untouched."""
    return s1_env | {"S1EXP_STORE": str(tmp_path_factory.mktemp("ablation_store"))}


@pytest.fixture(scope="module")
def budget_sweep(ablation_env: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("budget_scaling")
    return run_sweep(["+ablation=budget_scaling", *BUDGET_TRIM], cwd, ablation_env)


@pytest.fixture(scope="module")
def methods_sweep(ablation_env: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("test_time_methods")
    return run_sweep(["+ablation=test_time_methods", *METHODS_TRIM], cwd, ablation_env)


def test_budget_scaling_runs_both_grids_on_one_model(budget_sweep: Path):
    runs = results(budget_sweep)
    assert [(r["config"][PART_KEY], r["config"]["budget"]["cap"]) for r in runs] == [
        ("caps", 16),
        ("caps", 64),
        ("wait", 32),
        ("wait", 32),
    ]
    assert [r["config"]["method"]["ignore"] for r in runs] == [0, 0, 1, 2]
    assert all(r["metrics"]["toy"]["n"] == 24 for r in runs)
    assert len(assert_trained_once(runs)) == 1
    report = (budget_sweep / "report" / "report.md").read_text()
    assert "| budget=toy16 extrapolation=none |" in report  # sweep_part is not a label
    assert "| budget=toy32 extrapolation=wait extrapolation.ignore=2 |" in report
    assert "| toy | budget forcing | 4 |" in report  # Table 3's row over both grids


def test_test_time_methods_trains_one_model_per_trace_format(methods_sweep: Path):
    runs = results(methods_sweep)
    grids = Counter(r["config"][PART_KEY] for r in runs)
    assert list(grids.items()) == [
        ("budget_forcing", 2),
        ("tcc", 2),
        ("scc", 4),
        ("ccc", 2),
        ("rejection_sampling", 1),
    ]
    assert all(r["metrics"]["toy"]["n"] == 24 for r in runs)
    keys = assert_trained_once(runs)
    by_format = {r["config"]["trace_format"]["_target_"]: r["stages"]["train"]["key"] for r in runs}
    assert len(keys) == len(by_format) == 3  # plain, token- and step-conditional traces
    table3 = (methods_sweep / "report" / "report.md").read_text().split("## Table 3")[1]
    for kind in ("budget forcing", "TCC", "TCC + BF", "SCC", "SCC + BF", "CCC", "RS"):
        assert f"| toy | {kind} |" in table3, kind


MINI_PAPER = """\
# @package _global_
defaults:
  - override /hydra/sweeper: grids
hydra:
  mode: MULTIRUN
  sweeper:
    grids:
      figure1_4a/caps: {budget: [toy16, toy64], extrapolation: none}
      figure1_4a/wait: {budget: toy32, extrapolation: {_choice_: wait, ignore: [1, 2]}}
      table3/budget_forcing: {method: budget_forcing, budget: [toy16, toy64]}
      table3/ccc: {method: [ccc_short, budget_forcing]}
      table3/tcc:
        trace_format: token_conditional
        method: {_choice_: [tcc, tcc_bf], tokens: [32]}
  callbacks:
    summary:
      parts:
        table3: {paper: sweeps/table3_methods.yaml}
        figure1_4a: {paper: sweeps/figure1_4a_budget_scaling.yaml}
logger:
  group: mini_paper
  tags: [test]
"""


def test_a_paper_like_sweep_reuses_every_evaluation_and_reports_per_table(
    budget_sweep: Path, methods_sweep: Path, ablation_env: dict, tmp_path: Path, capsys, monkeypatch
):
    """A trimmed +ablation=paper (from a user config dir) over runs the two sweeps above made:
    nothing trains or evaluates again, and each table gets its own report."""
    (tmp_path / "conf" / "ablation").mkdir(parents=True)
    (tmp_path / "conf" / "ablation" / "mini_paper.yaml").write_text(MINI_PAPER)
    flags = ("--config-dir", str(tmp_path / "conf"))
    sweep = run_sweep(["+ablation=mini_paper"], tmp_path, ablation_env, flags)
    runs = results(sweep)
    assert len(runs) == 10
    assert all(r["stages"]["train"]["reused"] and r["stages"]["evaluate"]["reused"] for r in runs)
    earlier = {
        r["stages"]["train"]["key"] for s in (budget_sweep, methods_sweep) for r in results(s)
    }
    assert {r["stages"]["train"]["key"] for r in runs} <= earlier
    table3 = (sweep / "report" / "table3" / "report.md").read_text()
    figure = (sweep / "report" / "figure1_4a" / "report.md").read_text()
    assert table3.startswith("# Sweep report: sweep, part table3\n")
    assert "6 finished jobs" in table3 and "4 finished jobs" in figure
    assert "Paper: Table 3" in table3 and "Paper: Figure 1 / 4a" in figure
    assert "| toy | TCC | 1 |" in table3 and "TCC" not in figure.split("## Table 3")[1]
    assert "| budget=toy16 extrapolation=none |" in figure  # labelled within its part
    summary = (sweep / "summary.txt").read_text()
    assert summary.index("part table3") < summary.index("part figure1_4a")  # parts' order
    assert summary.count("# Sweep report: sweep, part ") == 2 and "![" not in summary
    assert (sweep / "report" / "figure1_4a" / "scaling_toy.png").is_file()
    assert not (sweep / "report" / "report.md").exists()

    # `python -m s1exp.report <sweep>` afterwards splits it into the same parts; with --paper,
    # one report over every job.
    monkeypatch.chdir(sweep.parent)
    capsys.readouterr()
    assert report_cli([sweep.name, "--out", "again"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(summary) and "again/table3/report.md" in printed
    assert (tmp_path / "again" / "table3" / "report.md").read_text() == table3
    assert (tmp_path / "again" / "figure1_4a" / "report.md").read_text() == figure
    assert report_cli([sweep.name, "--paper", "sweeps/table3_methods.yaml", "--out", "one"]) == 0
    one = (tmp_path / "one" / "report.md").read_text()
    assert "10 finished jobs" in one and not (tmp_path / "one" / "table3").exists()
