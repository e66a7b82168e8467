"""Evaluation in a fresh process, for jobs that just trained in their own.

A trainer leaves its process holding memory (the CUDA caching allocator, NCCL buffers, the process
group), so vLLM's start-up memory check fails and a second model copy lands next to the first. A
child process starts clean and hands every byte back when it exits. It gets the resolved config in a
file and writes into the same artifact folder as an in-process evaluation would.

    python -m s1exp.evaluate.isolated CONFIG.yaml MODEL_PATH OUT_DIR
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import tempfile
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


def evaluate_in_subprocess(cfg: DictConfig, model_path: str, out_dir: Path) -> None:
    """Run the evaluate stage in a child process; its output goes to this terminal."""
    release_training_memory()
    env = {k: v for k, v in os.environ.items() if k not in DISTRIBUTED_VARIABLES}
    with tempfile.TemporaryDirectory(prefix="s1exp-eval-") as tmp:
        config = Path(tmp) / "config.yaml"
        OmegaConf.save(cfg, config, resolve=True)
        command = [sys.executable, "-m", "s1exp.evaluate.isolated", str(config), model_path]
        code = subprocess.run([*command, str(out_dir)], env=env).returncode
    if code == CONFIG_ERROR_EXIT:  # it printed the one-line reason already
        raise ConfigError("the evaluation process refused its settings (see the error above)")
    if code:
        raise RuntimeError(f"the evaluation process failed (exit code {code}); its log is above")


def main() -> None:
    config, model_path, out_dir = sys.argv[1:4]
    from s1exp.evaluate.run import evaluate

    with exiting_on_config_error():
        evaluate(OmegaConf.load(config), model_path, Path(out_dir))


if __name__ == "__main__":
    main()
