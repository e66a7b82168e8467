"""The faults a sweep meets on a shared cluster (README "Faults"), each on the real code path.

kill -9 of a build, a training and an evaluation; a stale lock; a corrupted artifact; a disk that
refuses writes; W&B without network. Every test checks that the fault is survived and that no
result is lost or counted twice.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FAST, kill9, run_s1exp, start_s1exp
from safetensors.torch import load_file

from s1exp.store import COMPLETE_MARKER, ArtifactStore

WORKER = Path(__file__).resolve().parent / "sft_worker.py"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def published(store: Path, kind: str) -> list[Path]:
    folder = store / kind
    return sorted(p.parent for p in folder.glob(f"*/{COMPLETE_MARKER}")) if folder.is_dir() else []


def leftovers(store: Path) -> list[str]:
    """Folders a killed build leaves (`.tmp-*`) or keeps to resume (`.resume-*`)."""
    return sorted(p.name for p in store.glob("*/.*") if p.is_dir())


def wait_for(predicate, timeout: float, proc: subprocess.Popen, what: str) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert proc.poll() is None, f"the run ended before {what}: {proc.stdout.read()[-3000:]}"
        assert time.time() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.2)


# -- training: resume points -----------------------------------------------------------------
@pytest.fixture(scope="module")
def base(two_layer_base: Path) -> Path:
    return two_layer_base


FIT = ["--examples", "32", "--micro-batch", "8", "--global-batch", "16", "--epochs", "3"]


def fit(base: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(WORKER), str(base), str(out), *FIT, *args],
        capture_output=True,
        text=True,
        timeout=600,
        start_new_session=True,  # --kill-at-epoch kills its own process group, not pytest
    )


STRATEGIES = [["--strategy", "single"], ["--strategy", "fsdp", "--devices", "2"]]


@pytest.mark.parametrize("strategy", STRATEGIES, ids=["single", "fsdp2"])
def test_killed_training_resumes_to_the_same_weights(base: Path, tmp_path: Path, strategy):
    """kill -9 of every rank as epoch 3 of 3 starts, then the same fit again: it goes on from the
    point saved after epoch 2 (4 of 6 optimizer steps, with gradient accumulation 2) and ends with
    exactly the weights of a fit that was never interrupted, FSDP2 shards included."""
    full = fit(base, tmp_path / "full", *strategy)
    assert full.returncode == 0, full.stderr[-3000:]
    resume_dir = tmp_path / "points"
    killed = fit(base, tmp_path / "killed", *strategy, "--resume-dir", str(resume_dir),
                 "--kill-at-epoch", "2")  # fmt: skip
    assert killed.returncode == -signal.SIGKILL
    assert (resume_dir / "last.ckpt").exists() and not (
        tmp_path / "killed" / "metrics.json"
    ).exists()
    again = fit(base, tmp_path / "killed", *strategy, "--resume-dir", str(resume_dir))
    assert again.returncode == 0, again.stderr[-3000:]
    metrics = json.loads((tmp_path / "killed" / "metrics.json").read_text())
    assert metrics["train/resumed_at_step"] == 4 and metrics["train/optimizer_steps"] == 6
    a = load_file(str(tmp_path / "full" / "model.safetensors"))
    b = load_file(str(tmp_path / "killed" / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all((a[k] == b[k]).all() for k in a), "the resumed fit ended with other weights"


# -- the store: killed builders, stale locks, waiting, corruption ------------------------------
def _build_then_hang(root: str, ready: str) -> None:
    def build(out: Path) -> None:
        (out / "half.jsonl").write_text('{"row": 1}\n')
        Path(ready).write_text("building")
        time.sleep(600)  # killed here

    ArtifactStore(root).get_or_build("selection", "k1", build)


def _build_slowly(root: str, ready: str) -> None:
    def build(out: Path) -> None:
        Path(ready).write_text("building")
        time.sleep(3)
        (out / "x").write_text("from the first job")

    ArtifactStore(root).get_or_build("selection", "k2", build)


def test_a_builder_killed_mid_build_blocks_nobody_and_its_folder_is_removed(tmp_path: Path):
    """kill -9 of a process holding the build lock: the kernel drops the lock with it, the next
    builder starts at once, removes the half-written folder and publishes a whole artifact."""
    ready = tmp_path / "ready"
    proc = mp.get_context("spawn").Process(
        target=_build_then_hang, args=(str(tmp_path), str(ready))
    )
    proc.start()
    deadline = time.time() + 60
    while not ready.exists():
        assert time.time() < deadline and proc.is_alive()
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(30)
    assert [p.name.startswith(".tmp-k1-") for p in (tmp_path / "selection").iterdir()
            if p.is_dir()] == [True]  # fmt: skip
    start = time.perf_counter()
    artifact = ArtifactStore(tmp_path).get_or_build(
        "selection", "k1", lambda out: (out / "rows.jsonl").write_text('{"row": 1}\n')
    )
    assert time.perf_counter() - start < 5  # the dead builder's lock did not hold us
    assert artifact.built and (artifact.path / "rows.jsonl").is_file()
    assert not (artifact.path / "half.jsonl").exists()
    assert [p.name for p in (tmp_path / "selection").iterdir() if p.is_dir()] == ["k1"]


def test_a_job_waiting_for_another_says_who_builds_and_reuses_it(tmp_path: Path, caplog):
    """Two real processes want one artifact: the second says it waits (for which pid) and then
    reuses what the first built instead of building it again."""
    ready = tmp_path / "ready"
    proc = mp.get_context("spawn").Process(target=_build_slowly, args=(str(tmp_path), str(ready)))
    proc.start()
    while not ready.exists():
        time.sleep(0.05)
    caplog.set_level("INFO", logger="s1exp.store")
    artifact = ArtifactStore(tmp_path).get_or_build("selection", "k2", lambda out: None)
    proc.join(30)
    assert proc.exitcode == 0 and not artifact.built
    assert (artifact.path / "x").read_text() == "from the first job"
    assert f"being built by pid {proc.pid}" in caplog.text


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_corrupted_artifact_is_detected_and_rebuilt(tmp_path: Path, caplog, damage: str):
    """A file changed after publication (a truncated copy, one flipped byte of the same size)
    fails its recorded sha256: the artifact is rebuilt, not handed to the next stage."""
    store = ArtifactStore(tmp_path)
    builds = []

    def build(out: Path) -> None:
        builds.append(out)
        (out / "model.safetensors").write_bytes(bytes(range(256)) * 64)

    first = store.get_or_build("model", "m", build)
    weights = first.path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    if damage == "truncate":
        weights.write_bytes(data[:100])
    else:
        data[5000] ^= 0xFF
        weights.write_bytes(data)
    caplog.set_level("WARNING", logger="s1exp.store")
    again = ArtifactStore(tmp_path).get_or_build("model", "m", build)
    assert again.built and len(builds) == 2
    assert weights.read_bytes() == bytes(range(256)) * 64
    assert "model/m is corrupted" in caplog.text


# -- the pipeline, through the CLI ----------------------------------------------------------
def test_pipeline_killed_in_training_and_in_evaluation_loses_nothing(
    toy_run: Path, s1_env: dict, tmp_path: Path
):
    """kill -9 of `python -m s1exp` during training, then (same command) during evaluation,
    then the same command to the end: training went on from its resume point, evaluation from
    the samples it had saved, and the model and every sample equal those of the uninterrupted
    session run (toy_run, same settings). No build folder is left in the store. A model file
    truncated afterwards is caught by its checksum and the model retrained to the same bytes."""
    env = s1_env | {"S1EXP_STORE": str(tmp_path / "store")}  # the session's cached base model
    store = tmp_path / "store"
    args = [*FAST, "evaluate.questions_per_save=4", "logger=none", "hydra.run.dir=run"]

    first = start_s1exp(args, tmp_path, env)
    wait_for(lambda: any(store.glob("model/.resume-*/last.ckpt")), 600, first, "resume point")
    kill9(first)
    assert published(store, "model") == []

    second = start_s1exp(args, tmp_path, env)
    wait_for(lambda: any(p.stat().st_size for p in store.glob("eval/.resume-*/records.jsonl")),
             600, second, "saved samples")  # fmt: skip
    out = kill9(second)
    assert "resumed after epoch 1" in out
    assert len(published(store, "model")) == 1 and published(store, "eval") == []

    third = run_s1exp(args, tmp_path, env)
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
    assert "questions were done by a killed run" in third.stdout + third.stderr
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert 0 < results["metrics"]["toy"]["resumed_questions"] < 24
    assert leftovers(store) == []

    reference = json.loads((toy_run / "results.json").read_text())
    model = Path(results["stages"]["train"]["path"])
    reference_model = Path(reference["stages"]["train"]["path"])
    assert sha256(model / "model.safetensors") == sha256(reference_model / "model.safetensors")
    samples = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").open()]
    expected = [json.loads(line) for line in (toy_run / "samples.jsonl").open()]
    assert [s["id"] for s in samples] == [s["id"] for s in expected]  # once each, in order
    assert [s["token_ids"] for s in samples] == [s["token_ids"] for s in expected]

    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    fourth = run_s1exp([*args[:-1], "hydra.run.dir=run4"], tmp_path, env)
    assert fourth.returncode == 0, fourth.stdout[-3000:] + fourth.stderr[-3000:]
    assert "is corrupted (model.safetensors has" in fourth.stdout + fourth.stderr
    assert sha256(weights) == sha256(reference_model / "model.safetensors")


def _limit_file_size(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.parametrize(
    ("resume_points", "failing"),
    [(1, "a resume point"), (0, "File too large")],
    ids=["resume-point", "model-export"],
)
def test_a_disk_that_refuses_writes_fails_cleanly_and_publishes_nothing(
    toy_run: Path, s1_env: dict, tmp_path: Path, resume_points: int, failing: str
):
    """Files beyond 2 MB refused (RLIMIT_FSIZE: EFBIG, as a full disk or quota refuses with
    ENOSPC/EDQUOT): the pool's features (1.3 MB) fit, the first resume point (~11 MB) or, without
    resume points, the model's export (3.6 MB) does not. One line naming paths.store and the
    file, exit 2, no traceback, no model published and no build folder left; the same command
    with room completes."""
    env = s1_env | {"S1EXP_STORE": str(tmp_path / "store")}
    args = [*FAST, f"train.resume_every_n_epochs={resume_points}", "logger=none",
            "hydra.run.dir=run"]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "s1exp", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        preexec_fn=_limit_file_size(2_000_000),
    )
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("s1exp: error:")]
    assert len(errors) == 1 and "paths.store" in errors[0] and failing in errors[0], errors
    assert "Traceback" not in proc.stderr
    store = tmp_path / "store"
    assert published(store, "model") == [] and not (tmp_path / "run" / "results.json").exists()
    assert [n for n in leftovers(store) if n.startswith(".tmp-")] == []
    again = run_s1exp(args, tmp_path, env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(published(store, "model")) == 1


def test_an_unwritable_store_is_refused_before_any_stage(s1_env: dict, tmp_path: Path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    env = s1_env | {"S1EXP_STORE": str(blocker / "store")}
    proc = run_s1exp([*FAST, "logger=none", "hydra.run.dir=run"], tmp_path, env, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith(f"s1exp: error: paths.store={blocker}")
    assert "Traceback" not in proc.stderr


def test_wandb_without_network_logs_offline_and_keeps_the_results(
    toy_run: Path, s1_env: dict, tmp_path: Path
):
    """W&B online with its server unreachable: the job finishes, warns once how to upload the
    run later, and its W&B run is written offline."""
    env = s1_env | {
        "WANDB_MODE": "online",
        "WANDB_BASE_URL": "http://127.0.0.1:9",  # nothing listens: connection refused
        "WANDB_API_KEY": "f" * 40,
        "WANDB_INIT_TIMEOUT": "20",
    }
    proc = run_s1exp([*FAST, "hydra.run.dir=run"], tmp_path, env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (tmp_path / "run" / "results.json").is_file()
    assert (proc.stdout + proc.stderr).count("W&B: cannot log online") == 1
    assert len(list((tmp_path / "run" / "wandb").glob("offline-run-*"))) == 1


def test_rerunning_an_interrupted_sweep_runs_only_what_is_missing(
    toy_run: Path, s1_env: dict, tmp_path: Path
):
    """A 2-job sweep whose second job was killed before it wrote its results, run again into
    its folder: the first job is skipped with its result kept as it was, the second runs, the
    report counts each job once, and W&B holds one run per job and stage (the re-run job
    resumed its run by id instead of adding one)."""
    sweep = tmp_path / "sweep"
    args = [*FAST, "extrapolation=none,wait", f"hydra.sweep.dir={sweep}", "-m"]
    first = run_s1exp(args, tmp_path, s1_env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    kept = (sweep / "0" / "results.json").read_text()
    (sweep / "1" / "results.json").unlink()  # as if job 2 was killed before it finished
    runs_before = {p.name.rsplit("-", 1)[-1] for p in (sweep / "wandb").glob("offline-run-*")}

    again = run_s1exp(args, tmp_path, s1_env)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    out = again.stdout + again.stderr
    assert "sweep: job 1/2 finished in an earlier run, result kept" in out
    assert "sweep: job 2/2: " in out and "sweep: 2/2 jobs done" in out
    assert (sweep / "0" / "results.json").read_text() == kept  # not run again
    assert (sweep / "1" / "results.json").is_file()
    assert "2 finished jobs" in (sweep / "summary.txt").read_text()
    runs_after = {p.name.rsplit("-", 1)[-1] for p in (sweep / "wandb").glob("offline-run-*")}
    assert runs_after == runs_before  # eval runs of both jobs and the report run, once each
