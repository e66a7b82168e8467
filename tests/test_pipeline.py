"""End to end on the toy world through the real CLI: results, reuse, W&B files, sweeps, errors."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import FAST, run_s1exp, wandb_inspect

SAMPLE_FIELDS = {
    "id",
    "question",
    "gold",
    "prompt",
    "thinking",
    "answer_text",
    "predicted",
    "correct",
    "thinking_tokens",
    "ignores_used",
    "finish_reasons",
    "exit",
}


def test_toy_run_writes_results_and_samples(toy_run: Path):
    results = json.loads((toy_run / "results.json").read_text())
    metrics = results["metrics"]["toy"]
    samples = [json.loads(line) for line in (toy_run / "samples.jsonl").open()]
    assert len(samples) == metrics["n"] == 24
    assert SAMPLE_FIELDS <= set(samples[0])
    assert 0.0 <= metrics["accuracy"] <= 100.0
    assert metrics["accuracy"] == 100 * sum(s["correct"] for s in samples) / len(samples)
    assert metrics["thinking_tokens"] > 0
    assert not results["stages"]["train"]["reused"]  # the first run trained
    assert results["config"]["selection"]["size"] == 300
    funnel = json.loads((Path(results["stages"]["select"]["path"]) / "funnel.json").read_text())
    assert funnel["selected"] == 300 and funnel["pool"] == 2500


def test_second_run_reuses_every_artifact(toy_run: Path, s1_env: dict, tmp_path: Path):
    first = json.loads((toy_run / "results.json").read_text())
    model_dir = Path(first["stages"]["train"]["path"])
    before = (model_dir / "model.safetensors").stat().st_mtime_ns
    proc = run_s1exp([*FAST, "hydra.run.dir=again"], tmp_path, s1_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = json.loads((tmp_path / "again" / "results.json").read_text())
    assert all(again["stages"][s]["reused"] for s in ("featurize", "select", "train", "evaluate"))
    assert (model_dir / "model.safetensors").stat().st_mtime_ns == before
    assert "Trainer.fit" not in proc.stdout + proc.stderr
    assert again["metrics"] == first["metrics"]


def test_wandb_offline_run_holds_metrics_and_config(toy_run: Path):
    results = json.loads((toy_run / "results.json").read_text())
    run = wandb_inspect(Path(results["wandb_dir"]))
    assert run["state"] == "finished"
    metrics = results["metrics"]["toy"]
    assert run["summary"]["eval/toy/accuracy"] == run["summary"]["eval/accuracy"]
    assert run["summary"]["eval/accuracy"] == metrics["accuracy"]
    assert run["summary"]["eval/thinking_tokens"] == metrics["thinking_tokens"]
    assert run["config"]["selection"]["size"] == 300
    assert run["config"]["method"]["_target_"].endswith("BudgetForcing")
    assert "extrapolation=none" in run["tags"]


def test_wandb_train_run_logs_loss_lr_and_grad_norm(toy_run: Path):
    runs = [wandb_inspect(d) for d in sorted((toy_run / "wandb").glob("offline-run-*"))]
    train = [r for r in runs if "train/loss" in r["summary"]]
    select = [r for r in runs if "select/selected" in r["summary"]]
    assert len(train) == 1 and len(select) == 1 and len(runs) == 3  # + one eval run
    report = json.loads((toy_run / "results.json").read_text())["stages"]["select"]["report"]
    assert select[0]["summary"]["select/selected"] == report["funnel"]["selected"] == 300
    assert select[0]["summary"]["select/difficulty"] == report["funnel"]["difficulty"]
    summary = train[0]["summary"]
    assert {"train/lr", "train/grad_norm"} <= set(summary)
    assert summary["train/grad_norm"] > 0 and summary["train/loss"] > 0
    assert train[0]["config"]["train"]["epochs"] == 2


def test_ablation_sweep_trains_once_and_prints_table(s1_env: dict, tmp_path: Path):
    env = s1_env | {"S1EXP_STORE": str(tmp_path / "store")}  # fresh store: must train here
    proc = run_s1exp([*FAST, "+ablation=wait_vs_hmm", "hydra.sweep.dir=sweep"], tmp_path, env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted((tmp_path / "sweep").glob("*/results.json"))
    assert len(jobs) == 5
    results = [json.loads(p.read_text()) for p in jobs]
    trained = [not r["stages"]["train"]["reused"] for r in results]
    assert sum(trained) == 1, "the model must be trained once and reused by the other jobs"
    assert len({r["stages"]["train"]["path"] for r in results}) == 1
    assert len({r["stages"]["evaluate"]["benchmarks"]["toy"]["key"] for r in results}) == 5
    table = (tmp_path / "sweep" / "summary.txt").read_text()
    for option in ("none", "empty", "alternatively", "hmm", "wait"):
        assert f"extrapolation={option}" in table and f"extrapolation={option}" in proc.stdout
    by_option = {r["choices"]["extrapolation"]: r["metrics"]["toy"] for r in results}
    assert by_option["none"]["ignores_used"] == 0
    assert by_option["wait"]["ignores_used"] > 0


def test_bad_budget_fails_clearly_and_writes_nothing(s1_env: dict, tmp_path: Path):
    proc = run_s1exp([*FAST, "budget.cap=0", "hydra.run.dir=bad"], tmp_path, s1_env)
    assert proc.returncode != 0
    assert "budget.cap" in proc.stderr
    assert not (tmp_path / "bad" / "results.json").exists()


def test_ddp_trains_with_two_cpu_processes(toy_run: Path, s1_env: dict, tmp_path: Path):
    """strategy=ddp with 2 gloo processes on CPU: Lightning re-runs the command for rank 1, which
    trains alongside rank 0 without touching the store (no deadlock on the model's lock)."""
    env = s1_env | {"S1EXP_STORE": str(tmp_path / "store")}  # fresh store: must train here
    args = [*FAST, "strategy=ddp", "train.devices=2", "train.micro_batch_size=8"]
    proc = run_s1exp([*args, "benchmark.toy.size=8", "hydra.run.dir=ddp"], tmp_path, env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "ddp" / "results.json").read_text())
    assert not results["stages"]["train"]["reused"]
    model_dir = Path(results["stages"]["train"]["path"])
    metrics = json.loads((model_dir / "train_metrics.json").read_text())
    # 300 examples, global batch 16 = 2 ranks x micro-batch 8: 19 steps per epoch, 2 epochs
    # (one process alone would take 38 micro-batches of 8 per epoch: 76 steps)
    assert metrics["train/optimizer_steps"] == 38
    assert sorted(p.name for p in (tmp_path / "store" / "model").iterdir() if p.is_dir()) == [
        model_dir.name
    ]  # one model artifact: rank 1 published nothing
