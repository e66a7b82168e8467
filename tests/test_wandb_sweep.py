"""A sweep's W&B runs side by side: every job's runs in one folder of the sweep, one project and
group, each run named after its axis values, with the axes and choices as config columns.

The fast sweeps are real Hydra multiruns of this file's `job` (run as a script: s1exp's configs,
Hydra's own job state and multirun.yaml, track's loggers, made-up metrics, no model); the runs
are read back with wandb's own reader (`wandb leet inspect`) and wandb's own TUI (`wandb leet`).
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import hydra
import pytest
from conftest import FAST, WANDB_CLI, run_s1exp, wandb_inspect, wandb_run_record
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from s1exp import cost, track
from s1exp.__main__ import CONFIG_DIR
from s1exp.report.cost import cost_line

EXTRAPOLATIONS = ("none", "empty", "alternatively", "hmm", "wait")  # conf/ablation/wait_vs_hmm
LOGGED = "logged.json"  # what this file's job logged, for the test to compare with W&B
UPSTREAM = "S1EXP_TEST_UPSTREAM"  # set: job 0 also logs a select and a train run


def job_metrics(cfg: DictConfig, num: int) -> dict[str, dict[str, float]]:
    """Made-up metrics that differ per job (results["metrics"]'s shape: one dict per benchmark)."""
    return {
        name: {"accuracy": 10.0 * num + 1.0, "n": float(b.size), "thinking_tokens": 5.0 + num}
        for name, b in cfg.benchmark.items()
    }


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def job(cfg: DictConfig) -> None:
    """One sweep job as the pipeline logs it: every job evaluates; with UPSTREAM set, job 0 also
    selects and trains (as the job that builds the shared model does)."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    num = HydraConfig.get().job.get("num") or 0
    wandb_dirs = {}
    if num == 0 and os.environ.get(UPSTREAM):
        report = {"funnel": {"pool": 100, "selected": 10}, "plots": {}}
        wandb_dirs["select"] = track.log_selection(cfg, run_dir, report, run_dir, ["t"])
        logger = track.train_logger(cfg, run_dir, ["t"])
        logger.log_metrics({"train/loss": 1.0}, step=0)
        wandb_dirs["train"] = str(Path(logger.experiment.dir).parent)
        track.finish_train_logger(logger)
    metrics = job_metrics(cfg, num)
    samples = [  # no "thinking", "exit", ...: log_eval must tolerate samples without them
        {"benchmark": b, "id": f"q{i}", "question": "1+1?", "gold": "2", "correct": i == 0}
        for b in metrics
        for i in range(2)
    ]
    results = {"metrics": metrics, "timings": {"evaluate": 0.5}}
    wandb_dirs["eval"] = track.log_eval(cfg, run_dir, results, samples, ["t"])
    logged = {"metrics": metrics, "wandb_dirs": wandb_dirs, "choices": track.current_job().choices}
    (run_dir / LOGGED).write_text(json.dumps(logged))


def run_jobs(args: list[str], cwd: Path, upstream: bool = False) -> subprocess.CompletedProcess:
    """Run this file's `job` through Hydra's command line (a multirun with `-m`)."""
    env = os.environ | {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        UPSTREAM: "1" if upstream else "",
    }
    proc = subprocess.run(
        [sys.executable, __file__, "~hydra.callbacks.summary", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def read_run(run_dir: Path) -> dict:
    """A W&B run as wandb's own reader sees it: `wandb leet inspect --summary` (conftest's
    wandb_inspect: name, project, state, config, summary) plus the group and job type of the run
    record that `wandb leet inspect --json` prints first."""
    run = wandb_run_record(run_dir)
    extra = {"group": run.get("run_group"), "job_type": run.get("job_type"), "folder": run_dir}
    return wandb_inspect(run_dir) | extra


def sweep_runs(sweep_dir: Path) -> list[dict]:
    """Every W&B run in the sweep's one W&B folder, read back (a few readers at a time)."""
    folders = sorted(track.sweep_wandb_dir(sweep_dir).glob("offline-run-*"))
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(read_run, folders))


@pytest.fixture(scope="module")
def ablation(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    """`+ablation=wait_vs_hmm -m` (5 jobs, swept by the ablation's sweeper params) with one
    setting shared by all jobs on the command line; then the sweep's report run."""
    cwd = tmp_path_factory.mktemp("ablation")
    args = ["+ablation=wait_vs_hmm", "benchmark.toy.size=8", "hydra.sweep.dir=sweep", "-m"]
    run_jobs(args, cwd, upstream=True)
    sweep_dir = cwd / "sweep"
    plot = sweep_dir / "accuracy.png"
    draw_accuracy(sweep_dir, plot)
    cfg = OmegaConf.load(sweep_dir / "multirun.yaml")  # the config a sweep-end callback gets
    table = (["extrapolation", "acc %"], [["none", 1.0], ["wait", 41.0]])
    out = track.log_sweep(cfg, sweep_dir, {"report/table4": table}, {"report/acc": plot}, {"n": 5})
    assert out is not None and Path(out).parent == sweep_dir / "wandb"
    return sweep_dir, sweep_runs(sweep_dir)


def draw_accuracy(sweep_dir: Path, out: Path) -> None:
    """A real PNG for the report run: accuracy per job, from the jobs' own files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    logged = [json.loads(p.read_text()) for p in sorted(sweep_dir.glob(f"*/{LOGGED}"))]
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.bar(range(len(logged)), [lg["metrics"]["toy"]["accuracy"] for lg in logged])
    fig.savefig(out)
    plt.close(fig)


def by_type(runs: list[dict], job_type: str) -> list[dict]:
    return [r for r in runs if r["job_type"] == job_type]


def test_every_job_of_an_ablation_logs_into_the_sweeps_one_folder_and_group(ablation):
    sweep_dir, runs = ablation
    assert not list(sweep_dir.glob("[0-9]*/wandb")), "no job keeps its W&B runs in its own dir"
    assert sorted(r["job_type"] for r in runs) == ["eval"] * 5 + ["report", "select", "train"]
    assert {r["project"] for r in runs} == {"s1exp"}
    assert {r["group"] for r in runs} == {"wait_vs_hmm"}  # the ablation's logger.group
    assert all(r["state"] == "finished" for r in runs)
    evals = by_type(runs, "eval")
    assert sorted(r["name"] for r in evals) == sorted(f"extrapolation={e}" for e in EXTRAPOLATIONS)
    for run in evals:
        option = run["name"].removeprefix("extrapolation=")
        assert run["config"]["axes"] == {"extrapolation": option}  # not benchmark.toy.size: shared
        assert run["config"]["choices"]["extrapolation"] == option
        assert run["config"]["choices"]["model"] == "tiny"
        assert not any(k.startswith("hydra") or "@" in k for k in run["config"]["choices"])
        assert run["config"]["sweep"]["dir"] == str(sweep_dir.resolve())
        assert run["config"]["benchmark"]["toy"]["size"] == 8  # the whole config is still there


def test_eval_runs_hold_their_jobs_metrics_per_benchmark_and_short(ablation):
    sweep_dir, runs = ablation
    by_dir = {str(r["folder"]): r for r in runs}
    for job_dir in sorted(sweep_dir.glob(f"*/{LOGGED}")):
        logged = json.loads(job_dir.read_text())
        run = by_dir[logged["wandb_dirs"]["eval"]]
        toy = logged["metrics"]["toy"]
        assert run["summary"]["eval/toy/accuracy"] == run["summary"]["eval/accuracy"]
        assert run["summary"]["eval/accuracy"] == toy["accuracy"]
        assert run["summary"]["eval/toy/thinking_tokens"] == toy["thinking_tokens"]
        assert run["summary"]["timing/evaluate"] == 0.5
        assert run["config"]["choices"] == logged["choices"]
        assert "eval/samples" in run["summary"]  # the samples table, with a benchmark column


def test_train_and_select_runs_are_named_after_the_job_that_ran_them(ablation):
    sweep_dir, runs = ablation
    logged = json.loads((sweep_dir / "0" / LOGGED).read_text())
    for job_type in ("train", "select"):
        (run,) = by_type(runs, job_type)
        assert str(run["folder"]) == logged["wandb_dirs"][job_type]
        assert run["name"] == "extrapolation=none"  # job 0 of the sweep
        assert run["config"]["axes"] == {"extrapolation": "none"}
    assert by_type(runs, "train")[0]["summary"]["train/loss"] == 1.0
    assert by_type(runs, "select")[0]["summary"]["select/selected"] == 10


def test_report_run_holds_the_sweeps_tables_and_images(ablation):
    sweep_dir, runs = ablation
    (report,) = by_type(runs, "report")
    assert report["name"] == "report" and report["group"] == "wait_vs_hmm"
    assert report["summary"]["n"] == 5
    assert report["summary"]["report/table4"]["_type"] == "table-file"
    assert report["summary"]["report/acc"]["_type"] == "image-file"
    assert report["config"]["sweep"]["swept"] == ["extrapolation"]
    assert "hydra" not in report["config"]
    media = report["folder"] / "files"
    table = json.loads((media / report["summary"]["report/table4"]["path"]).read_text())
    assert table["columns"] == ["extrapolation", "acc %"]
    assert table["data"] == [["none", 1.0], ["wait", 41.0]]
    png = (media / report["summary"]["report/acc"]["path"]).read_bytes()
    assert png.startswith(b"\x89PNG")


def test_log_sweep_failure_only_warns_and_leaves_no_run(ablation, tmp_path: Path, caplog):
    sweep_dir, _ = ablation
    cfg = OmegaConf.load(sweep_dir / "multirun.yaml")
    missing = {"report/acc": tmp_path / "no.png"}
    with caplog.at_level("WARNING"):
        assert track.log_sweep(cfg, tmp_path, {}, missing, {}) is None
    assert "report of sweep" in caplog.text
    assert not (tmp_path / "wandb").exists()


def test_command_line_sweep_gets_its_own_group_and_its_swept_axes(tmp_path: Path):
    args = ["extrapolation=none,wait", "budget=toy16,toy32", "benchmark.toy.size=8"]
    run_jobs([*args, "hydra.sweep.dir=sweep", "-m"], tmp_path)
    runs = by_type(sweep_runs(tmp_path / "sweep"), "eval")
    assert {r["group"] for r in runs} == {f"adhoc/{tmp_path.name}/sweep"}
    axes = sorted(
        (r["config"]["axes"]["extrapolation"], r["config"]["axes"]["budget"]) for r in runs
    )
    assert axes == [("none", "toy16"), ("none", "toy32"), ("wait", "toy16"), ("wait", "toy32")]
    assert all(set(r["config"]["axes"]) == {"extrapolation", "budget"} for r in runs)
    assert {r["name"] for r in runs} == {
        f"extrapolation={e} budget={b}" for e in ("none", "wait") for b in ("toy16", "toy32")
    }


def test_single_run_keeps_its_runs_in_its_run_dir(tmp_path: Path):
    run_jobs(["extrapolation=wait", "benchmark.toy.size=8", "hydra.run.dir=run"], tmp_path)
    (folder,) = (tmp_path / "run" / "wandb").glob("offline-run-*")
    run = read_run(folder)
    assert run["group"] == "adhoc" and run["job_type"] == "eval" and "sweep" not in run["config"]
    assert run["name"] == "extrapolation=wait benchmark.toy.size=8"
    assert run["config"]["axes"] == {"extrapolation": "wait", "benchmark.toy.size": "8"}


ESCAPES = re.compile(r"\x1b(\[[0-9;<>?=$]*[ -/]*[@-~]|\][^\x07]*\x07|[()][A-Z0-9])")


def leet_screen(wandb_dir: Path, done: Callable[[str], bool], seconds: float = 20.0) -> str:
    """What `wandb leet <wandb_dir>` writes to a 200x50 terminal, escapes stripped, read until
    `done(text)` or `seconds` have passed; the TUI is killed after."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    env = os.environ | {"TERM": "xterm-256color", "WANDB_MODE": "offline"}
    proc = subprocess.Popen(
        [WANDB_CLI, "leet", str(wandb_dir)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    raw, text, end = b"", "", time.monotonic() + seconds
    try:
        while time.monotonic() < end and not done(text):
            if select.select([master], [], [], 0.2)[0]:
                try:
                    raw += os.read(master, 1 << 16)
                except OSError:  # the TUI exited
                    break
                text = ESCAPES.sub("", raw.decode(errors="replace"))
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        os.close(master)
    return text


def test_wandb_leet_on_the_sweeps_folder_lists_every_run(ablation):
    """The TUI draws a first frame before its directory scan returns and then only the cells
    that changed, so the run count and each run's id are looked for anywhere in the output."""
    sweep_dir, runs = ablation

    def lists_all(text: str) -> bool:
        counts = re.findall(r"\[(\d+) items\]", text)
        return counts[-1:] == [str(len(runs))] and all(r["run_id"] in text for r in runs)

    screen = leet_screen(track.sweep_wandb_dir(sweep_dir), lists_all)
    assert lists_all(screen), screen[-3000:]


def test_wandb_sync_of_the_sweeps_folder_takes_every_run(ablation):
    """The README's `wandb sync <sweep dir>/wandb/offline-run-*`, as a dry run (no network)."""
    sweep_dir, runs = ablation
    folders = sorted(str(f) for f in track.sweep_wandb_dir(sweep_dir).glob("offline-run-*"))
    out = subprocess.run(
        [WANDB_CLI, "sync", "--dry-run", *folders],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ | {"WANDB_MODE": "offline"},
    )
    assert out.returncode == 0, out.stderr
    assert f"Would sync {len(runs)} run(s)" in out.stdout + out.stderr
    assert all(f"{r['run_id']}.wandb" in out.stdout + out.stderr for r in runs)


@pytest.mark.slow
def test_cli_sweep_logs_every_job_into_the_sweeps_folder(s1_env: dict, tmp_path: Path):
    """The real pipeline: two jobs, the first selects and trains, then the sweep's report; all
    W&B runs in <sweep>/wandb, in one group."""
    fast = [o for o in FAST if not o.startswith("benchmark.toy.size=")] + ["benchmark.toy.size=8"]
    # a selection no other test makes: this sweep must select and train (the store is shared)
    args = [*fast, "selection.size=290", "extrapolation=none,wait", "hydra.sweep.dir=sweep"]
    proc = run_s1exp([*args, "-m"], tmp_path, s1_env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    runs = sweep_runs(tmp_path / "sweep")
    evals = by_type(runs, "eval")
    assert sorted(r["name"] for r in evals) == ["extrapolation=none", "extrapolation=wait"]
    # report: the sweep-end callback's (SweepSummary.log_to_wandb -> track.log_sweep)
    assert sorted(r["job_type"] for r in runs) == ["eval", "eval", "report", "select", "train"]
    assert {r["group"] for r in runs} == {f"adhoc/{tmp_path.name}/sweep"}
    for run in evals:
        assert run["config"]["axes"] == {
            "extrapolation": run["name"].removeprefix("extrapolation=")
        }
    for job_dir in sorted((tmp_path / "sweep").glob("[0-9]*")):
        results = json.loads((job_dir / "results.json").read_text())
        run = read_run(Path(results["wandb_dir"]))
        assert Path(results["wandb_dir"]).parent == tmp_path / "sweep" / "wandb"
        assert run["summary"]["eval/accuracy"] == results["metrics"]["toy"]["accuracy"]
        assert_cost_logged(results, run["summary"])
    jobs = [json.loads(p.read_text()) for p in sorted((tmp_path / "sweep").glob("*/results.json"))]
    assert [j["cost"]["stages"]["train"]["reused"] for j in jobs] == [False, True]
    line = cost_line(jobs)  # the sweep's cost line, from the jobs' real cost blocks
    assert line.startswith("Cost: 2 jobs, ") and "of wall time (summed over jobs)" in line


def assert_cost_logged(results: dict, summary: dict) -> None:
    """A real job's cost block (s1exp.cost) in results.json and as cost/* in its W&B summary."""
    block = results["cost"]
    devices = cost.held_devices({})  # the job ran here, outside SLURM
    assert (block["device"], block["gpus"]) == (devices.kind, devices.gpus)
    assert block["usd_per_gpu_hour"] == results["config"]["gpu"]["usd_per_gpu_hour"]
    assert block["priced_as"] == results["config"]["gpu"]["name"]
    assert block["gpu_hours"] == pytest.approx(devices.gpus * block["wall_seconds"] / 3600)
    assert block["stages"].keys() == results["stages"].keys()
    # the job's wall time holds every stage's
    assert block["wall_seconds"] >= sum(s["seconds"] for s in results["stages"].values())
    for key in ("wall_seconds", "device", "gpus", "gpu_hours", "usd", "usd_per_gpu_hour"):
        assert summary[f"cost/{key}"] == block[key]
    for stage, spent in block["stages"].items():
        assert spent["wall_seconds"] == results["stages"][stage]["seconds"]
        assert summary[f"cost/{stage}/wall_seconds"] == spent["wall_seconds"]


if __name__ == "__main__":
    job()
