"""A sweep through a real SLURM cluster (scripts/slurm_localhost.sh: slurm-wlm + munge on this
machine) with hydra-submitit-launcher: each job is a SLURM job whose two tasks are the two DDP
ranks of the fit; the second job reuses the first one's model."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import FAST, ROOT, kill9, run_s1exp, start_s1exp
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from s1exp import keys, resolvers


def slurm_up() -> bool:
    if shutil.which("sinfo") is None:
        return False
    out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=30)
    return out.returncode == 0 and any(state in out.stdout for state in ("idle", "mix", "alloc"))


pytestmark = pytest.mark.skipif(
    not slurm_up(), reason="no SLURM node up (run scripts/slurm_localhost.sh as root)"
)


def test_sweep_runs_as_slurm_jobs_with_ddp_ranks(toy_run: Path, s1_env: dict, tmp_path: Path):
    env = s1_env | {"S1EXP_STORE": str(tmp_path / "store")}  # fresh store: the first job trains
    args = [
        *FAST,
        "benchmark.toy.size=8",
        "cluster=slurm_local",
        "strategy=ddp",
        "train.devices=2",
        "train.micro_batch_size=8",
        "extrapolation=none,wait",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "-m",
    ]
    proc = run_s1exp(args, tmp_path, env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = [
        json.loads(p.read_text()) for p in sorted((tmp_path / "sweep").glob("*/results.json"))
    ]
    assert len(results) == 2
    assert sorted(r["stages"]["train"]["reused"] for r in results) == [False, True]
    model_dir = Path(results[0]["stages"]["train"]["path"])
    steps = json.loads((model_dir / "train_metrics.json").read_text())["train/optimizer_steps"]
    assert steps == 38  # 300 examples, 2 ranks x micro-batch 8 = global batch 16, 2 epochs
    logs = "".join(p.read_text() for p in (tmp_path / "sweep" / ".submitit").glob("*/*_log.out"))
    assert "global_rank=1(2)" in logs  # a second SLURM task ran as rank 1
    assert "Sweep report (" in proc.stdout  # the sweep-end callback ran on the submitting host
    assert (tmp_path / "sweep" / "report" / "report.md").is_file()
    # The launcher sizes a later job of the same model as evaluation-only (s1exp.resolvers):
    # its model key must be the one the pipeline stored the model under.
    overrides = [a for a in args if a != "-m" and not a.startswith(("hydra.", "extrapolation"))]
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[*overrides, f"paths.store={env['S1EXP_STORE']}"])
    assert keys.model_key(cfg) == results[0]["stages"]["train"]["key"]
    assert resolvers.job_shape(cfg) == resolvers.JobShape(1, 1, 1)


def test_requeued_training_job_resumes_from_its_last_epoch(
    toy_run: Path, s1_env: dict, tmp_path: Path
):
    """`scontrol requeue` of a SLURM job while it trains (what preemption does): SLURM kills it
    and starts it again; the job finds its resume point in the store and goes on from epoch 2,
    and the sweep finishes with the model of an uninterrupted run (toy_run, same settings).
    Requeueing has one owner, submitit: Lightning's own SIGUSR1 requeue is off
    (s1exp.train.recipe), so the job is requeued once, not twice."""
    import time

    env = s1_env | {"S1EXP_STORE": str(tmp_path / "store")}
    sweep = tmp_path / "sweep"
    args = [*FAST, "benchmark.toy.size=8", "cluster=slurm_local", "logger=none",
            f"hydra.sweep.dir={sweep}", "-m"]  # fmt: skip
    proc = start_s1exp(args, tmp_path, env)
    try:
        deadline = time.time() + 600
        while not any((tmp_path / "store").glob("model/.resume-*/last.ckpt")):
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            assert time.time() < deadline, "no resume point within 600 s"
            time.sleep(0.5)
        job_ids = sorted(p.name for p in (sweep / ".submitit").iterdir() if p.name.isdigit())
        assert len(job_ids) == 1
        subprocess.run(["scontrol", "requeue", job_ids[0]], check=True, timeout=60)
        out, _ = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            kill9(proc)
    assert proc.returncode == 0, out[-3000:]
    shown = subprocess.run(["scontrol", "show", "job", job_ids[0]], capture_output=True, text=True)
    assert "Restarts=1" in shown.stdout, shown.stdout + shown.stderr
    results = json.loads((sweep / "0" / "results.json").read_text())
    model = Path(results["stages"]["train"]["path"])
    metrics = json.loads((model / "train_metrics.json").read_text())
    assert metrics["train/resumed_at_step"] == 19  # 300 examples / 16 per step, 1 of 2 epochs
    reference = json.loads((toy_run / "results.json").read_text())["stages"]["train"]["path"]
    same = (model / "model.safetensors").read_bytes() == (
        Path(reference) / "model.safetensors"
    ).read_bytes()
    assert same, "the requeued job ended with other weights than an uninterrupted run"
