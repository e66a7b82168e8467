"""Shared fixtures: one small toy world per test session, run through the real CLI.

The session builds a small toy base model (cached under the session's cache dir), selects,
trains and evaluates once; tests that need a trained model or a finished run use its outputs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# A scaled-down toy world: same code paths, seconds instead of minutes.
FAST = [
    "data.pool.size=2500",
    "selection.size=300",
    "model.base.pretrain.examples=1500",
    "train.epochs=2",
    "benchmark.toy.size=24",
]


# The venv's own wandb CLI: CI runs `.venv/bin/python -m pytest` without activating the venv.
WANDB_CLI = str(Path(sys.executable).parent / "wandb")


def wandb_inspect(run_dir: Path) -> dict:
    """An offline W&B run as `wandb leet inspect` reads it: state, summary, config, tags."""
    out = subprocess.run(
        [WANDB_CLI, "leet", "inspect", "--summary", "--json", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def wandb_run_record(run_dir: Path) -> dict:
    """The run record (group, job type, ...) of an offline run, as `wandb leet inspect --json`
    prints it among its records."""
    out = subprocess.run(
        [WANDB_CLI, "leet", "inspect", "--json", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    records = map(json.loads, out.stdout.splitlines())
    return next(r["run"] for r in records if r["type"] == "run")


def run_s1exp(args: list[str], cwd: Path, env: dict[str, str], timeout: int = 900):
    """Run `python -m s1exp` as a user would; fail with its output if it exits non-zero."""
    proc = subprocess.run(
        [sys.executable, "-m", "s1exp", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc


def start_s1exp(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    """Start `python -m s1exp` in its own process group (kill9 then reaches its children),
    stdout and stderr together."""
    return subprocess.Popen(
        [sys.executable, "-m", "s1exp", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def kill9(proc: subprocess.Popen) -> str:
    """kill -9 of a started run and every process it started (an isolated evaluation, ranks);
    returns what it printed."""
    os.killpg(proc.pid, signal.SIGKILL)
    out, _ = proc.communicate(timeout=60)
    return out


@pytest.fixture(scope="session")
def one_layer_base(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A one-layer Qwen2 checkpoint (66K parameters): real optimizer steps in milliseconds."""
    from s1exp.models import tiny, toy_base

    tok = toy_base.pretrain_tokenizer(size=64)
    model = tiny.build_model(
        tok, hidden_size=64, num_layers=1, num_heads=1, num_kv_heads=1, intermediate_size=128
    )
    out = tmp_path_factory.mktemp("one_layer") / "base"
    tiny.save(model, tok, out)
    return str(out)


@pytest.fixture(scope="session")
def two_layer_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-layer tiny Qwen2 checkpoint, the base of the multi-process fits (FSDP2, resume)."""
    from s1exp.models import tiny, toy_base

    folder = tmp_path_factory.mktemp("two_layer") / "base"
    tok = toy_base.pretrain_tokenizer(size=64)
    tiny.save(tiny.build_model(tok, num_layers=2, max_position_embeddings=256), tok, folder)
    return folder


@pytest.fixture(scope="session")
def s1_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment with a session-wide store and base-model cache, W&B offline."""
    root = tmp_path_factory.mktemp("s1exp")
    env = dict(os.environ)
    env.update(
        {
            "S1EXP_STORE": str(root / "store"),
            "S1EXP_CACHE": os.environ.get("S1EXP_TEST_CACHE", str(root / "cache")),
            "WANDB_MODE": "offline",
            "WANDB_SILENT": "true",
            "TOKENIZERS_PARALLELISM": "false",
        }
    )
    return env


@pytest.fixture(scope="session")
def toy_run(s1_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One full toy pipeline run (select -> train -> evaluate); returns its run dir."""
    cwd = tmp_path_factory.mktemp("toy_run")
    proc = run_s1exp([*FAST, "hydra.run.dir=run"], cwd, s1_env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return cwd / "run"


@pytest.fixture(scope="session")
def trained_model(toy_run: Path) -> str:
    """Path of the model the toy run trained (an artifact in the session store)."""
    results = json.loads((toy_run / "results.json").read_text())
    return results["stages"]["train"]["path"]
