"""Stages in a fresh process: evaluation after training, featurization before it (on GPUs).

A trainer leaves its process holding memory (the CUDA caching allocator, NCCL buffers, the process
group), so vLLM's start-up memory check fails and a second model copy lands next to the first; and
a vLLM engine that featurized the pool leaves memory the trainer then lacks. A child process starts
clean and hands every byte back when it exits. It gets the resolved config in a file and writes
into the same artifact folder as the in-process stage would.

    python -m s1exp.isolated evaluate CONFIG.yaml MODEL_PATH '{"BENCHMARK": [OUT_DIR, JOURNAL]}'

    python -m s1exp.isolated features CONFIG.yaml OUT_DIR PROGRESS_FILE
"""

from __future__ import annotations

import gc
import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from s1exp.errors import CONFIG_ERROR_EXIT, ConfigError, exiting_on_config_error

# Set by Lightning / torchrun for the training ranks; an engine started with them would try to join
# the finished training process group.
DISTRIBUTED_VARIABLES = (
    "RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "NODE_RANK",
    "GROUP_RANK",
    "MASTER_ADDR",
    "MASTER_PORT",
)


def release_training_memory() -> None:
    """Drop what the finished fit left in this process before a child needs the devices."""
    import torch

    gc.collect()
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def isolate(setting: bool | str) -> bool:
    """`auto`: a child process where a GPU is (the memory matters), in-process on CPUs."""
    if setting == "auto":
        import torch

        return torch.cuda.is_available()
    return bool(setting)


def run_in_subprocess(stage: str, cfg: DictConfig, *args: str) -> None:
    """Run `stage` (a key of STAGES) in a child process; its output goes to this terminal."""
    release_training_memory()
    env = {k: v for k, v in os.environ.items() if k not in DISTRIBUTED_VARIABLES}
    with tempfile.TemporaryDirectory(prefix=f"s1exp-{stage}-") as tmp:
        config = Path(tmp) / "config.yaml"
        OmegaConf.save(cfg, config, resolve=True)
        command = [sys.executable, "-m", "s1exp.isolated", stage, str(config), *args]
        code = subprocess.run(command, env=env).returncode
    if code == CONFIG_ERROR_EXIT:  # it printed the one-line reason already
        raise ConfigError(f"the {stage} process refused its settings (see the error above)")
    if code:
        raise RuntimeError(f"the {stage} process failed (exit code {code}); its log is above")


def evaluate_in_subprocess(
    cfg: DictConfig, model_path: str, outs: dict[str, Path], journals: dict[str, Path]
) -> None:
    folders = {name: [str(out), str(journals[name])] for name, out in outs.items()}
    run_in_subprocess("evaluate", cfg, model_path, json.dumps(folders))


def features_in_subprocess(cfg: DictConfig, out_dir: Path, progress: Path) -> None:
    run_in_subprocess("features", cfg, str(out_dir), str(progress))


def _evaluate(cfg: DictConfig, model_path: str, folders: str) -> None:
    from s1exp.evaluate.run import evaluate

    pairs = json.loads(folders)
    evaluate(
        cfg,
        model_path,
        {name: Path(out) for name, (out, _) in pairs.items()},
        {name: Path(journal) for name, (_, journal) in pairs.items()},
    )


def _features(cfg: DictConfig, out_dir: str, progress: str) -> None:
    from s1exp.data.curate import build_features

    build_features(cfg, Path(out_dir), Path(progress))


STAGES: dict[str, Callable[..., None]] = {"evaluate": _evaluate, "features": _features}


def main() -> None:
    from s1exp import quiet, secrets

    logging.basicConfig(format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s",
                        level=logging.INFO)  # fmt: skip
    quiet.configure()
    secrets.redact_log_records()  # as in the parent job (s1exp.hydra_redact)
    stage, config, *args = sys.argv[1:]
    with exiting_on_config_error():
        STAGES[stage](OmegaConf.load(config), *args)


if __name__ == "__main__":
    main()
