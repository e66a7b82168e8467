"""DeepSpeed ZeRO-3 for Hugging Face models: load already partitioned, export one layer at a time.

Two things go wrong when a Hugging Face model meets plain `deepspeed.zero.Init`: transformers
does not know the parameters it creates are partitioned (shape [0]), so `from_pretrained` raises
on a size mismatch or writes into empty tensors; and gathering every parameter at once to export
needs the whole unsharded model on every GPU (~65 GB for 32B in bf16). Here transformers' own
ZeRO-3 integration loads the checkpoint (an `HfDeepSpeedConfig` alive while `from_pretrained`
runs: it opens `zero.Init` itself and copies each module's weights into its partitions), and the
export gathers one decoder layer (or one other module) at a time.

The pure pieces (`load_partitioned`, `export_units`, `gather_full_state_dict`, `cpu_adam_like`)
work on raw DeepSpeed and are tested without Lightning; `ZeRO3Strategy` plugs them into
Lightning's `DeepSpeedStrategy` through the two optional methods `SFTModule` and the recipe call
(`build_model`, `export_state_dict`).
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from lightning.fabric.utilities.seed import reset_seed
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.strategies import DDPStrategy, DeepSpeedStrategy
from torch.optim.lr_scheduler import LRScheduler

from s1exp.errors import ConfigError
from s1exp.models.loading import causal_lm


@contextmanager
def hf_zero3(ds_config: dict[str, Any]) -> Iterator[None]:
    """Switch transformers' ZeRO-3 integration on for the block, and off again after it.

    transformers finds the DeepSpeed config through a weak reference to a live `HfDeepSpeedConfig`
    (transformers.integrations.deepspeed); it must stay referenced while `from_pretrained` runs.
    Left on afterwards, every later `from_pretrained` in the process (an evaluation engine, a
    reload for a check) would be partitioned too, so the reference is dropped on exit.
    """
    from transformers.integrations.deepspeed import HfDeepSpeedConfig, unset_hf_deepspeed_config

    hf_config = HfDeepSpeedConfig(ds_config)
    if not hf_config.is_zero3():
        raise ConfigError(
            "strategy: the DeepSpeed config must set zero_optimization.stage=3 for ZeRO-3 loading"
        )
    try:
        yield
    finally:
        unset_hf_deepspeed_config()
        del hf_config


def load_partitioned(
    model_path: str, dtype: torch.dtype, ds_config: dict[str, Any], trust_remote_code: bool = False
) -> Any:
    """`from_pretrained` with every parameter partitioned over the ranks as it is created.

    Every rank must call this (it is collective). transformers builds the model inside
    `zero.Init(config_dict_or_path=ds_config)` and loads each module's weights through
    `GatheredParameters(..., modifier_rank=0)`, so peak memory per GPU is one module, not the
    model. ZeRO-3 stores parameters in the config's dtype (bf16 when `bf16.enabled`; its optimizer
    keeps fp32 master copies), so `dtype` only chooses how the checkpoint is read.
    """
    config = copy.deepcopy(ds_config)
    # zero.Init validates the whole config; outside a Trainer no batch size is known yet, and
    # partitioning does not depend on it.
    if "train_batch_size" not in config:
        config.setdefault("train_micro_batch_size_per_gpu", 1)
    with hf_zero3(config):
        model = causal_lm(model_path, dtype=dtype, trust_remote_code=trust_remote_code)
    unpartitioned = [name for name, p in model.named_parameters() if not hasattr(p, "ds_id")]
    if unpartitioned:
        raise RuntimeError(
            f"ZeRO-3 load left {len(unpartitioned)} parameters unpartitioned "
            f"(first: {unpartitioned[0]}); transformers' DeepSpeed integration did not engage"
        )
    return model


def export_units(model: torch.nn.Module) -> list[list[torch.nn.Parameter]]:
    """Parameters grouped into the units the export gathers together, each parameter once.

    A unit is one element of an `nn.ModuleList` (a decoder layer) with all its descendants, or
    the direct parameters of any other module (embeddings, final norm, LM head). Tied parameters
    (embeddings = LM head) appear in the first unit that holds them.
    """
    units: list[list[torch.nn.Parameter]] = []
    seen: set[int] = set()
    inside_block: set[int] = set()

    def take(params: Iterator[torch.nn.Parameter]) -> None:
        unit = [p for p in params if id(p) not in seen]
        seen.update(id(p) for p in unit)
        if unit:
            units.append(unit)

    for module in model.modules():
        if id(module) in inside_block:
            continue
        if isinstance(module, torch.nn.ModuleList):
            for block in module:
                inside_block.update(id(m) for m in block.modules())
                take(block.parameters())
            inside_block.add(id(module))
            continue
        take(module.parameters(recurse=False))
    return units


def gather_full_state_dict(
    model: torch.nn.Module, rank: int, master_weights: bool = False
) -> dict[str, torch.Tensor] | None:
    """The unsharded `model.state_dict()` as CPU tensors on `rank` 0, None on the other ranks.

    Collective: every rank calls it. Each unit of `export_units` is all-gathered, copied to CPU
    by rank 0 and released before the next one, so the extra accelerator memory is one decoder
    layer (or the embedding matrix) rather than the whole model. Keys are exactly those of
    `model.state_dict()`, tied names included. With `master_weights`, trainable parameters come
    from the ZeRO optimizer's fp32 master copies (one parameter at a time) instead of the bf16
    working copies, so a later cast to the export dtype rounds once, from the trained values.
    """
    import deepspeed
    from deepspeed.utils import safe_get_full_fp32_param

    entries = model.state_dict(keep_vars=True)
    keys_of: dict[int, list[str]] = {}
    for key, tensor in entries.items():
        keys_of.setdefault(id(tensor), []).append(key)
    out: dict[str, torch.Tensor] = {}

    def keep(param: torch.Tensor, full: torch.Tensor) -> None:
        if rank == 0:
            cpu = full.detach().to("cpu", copy=True)
            for key in keys_of.get(id(param), []):
                out[key] = cpu

    for unit in export_units(model):
        masters = [p for p in unit if master_weights and _has_master(p)]
        working = [p for p in unit if not (master_weights and _has_master(p))]
        for param in masters:
            keep(param, safe_get_full_fp32_param(param))
        if working:
            with deepspeed.zero.GatheredParameters(working, modifier_rank=None):
                for param in working:
                    keep(param, param)
    if rank != 0:
        return None
    for key, tensor in entries.items():  # buffers: never partitioned by ZeRO-3
        if key not in out:
            out[key] = tensor.detach().to("cpu", copy=True)
    return {key: out[key] for key in entries}


def _has_master(param: torch.nn.Parameter) -> bool:
    """Whether a ZeRO-3 optimizer (set up by deepspeed.initialize) holds an fp32 copy of `param`."""
    return param.requires_grad and hasattr(param, "_z3_optimizer")


def cpu_adam_like(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """DeepSpeed's vectorised CPU Adam(W) sharing `optimizer`'s param-group dicts.

    With the optimizer offloaded to CPU, DeepSpeed refuses a torch optimizer (ZeRORuntimeException,
    unless `zero_force_ds_cpu_optimizer` is false) because torch's Adam is several times slower
    there. The group dicts are shared, not copied, so an LR scheduler built on `optimizer` (the
    module's warmup-cosine) keeps setting the learning rate the new optimizer uses.
    """
    from deepspeed.ops.adam import DeepSpeedCPUAdam

    if not isinstance(optimizer, torch.optim.Adam | torch.optim.AdamW):
        raise ConfigError(
            f"strategy.cpu_adam=true replaces Adam/AdamW, not {type(optimizer).__name__}; "
            "set strategy.cpu_adam=false to keep it (slower with offload_optimizer)"
        )
    if any(group.get("amsgrad") for group in optimizer.param_groups):
        raise ConfigError("strategy.cpu_adam=true: DeepSpeed's CPU Adam has no amsgrad")
    adamw = isinstance(optimizer, torch.optim.AdamW) or optimizer.defaults.get(
        "decoupled_weight_decay", False
    )
    defaults = optimizer.defaults
    return DeepSpeedCPUAdam(
        optimizer.param_groups,
        lr=defaults["lr"],
        betas=defaults["betas"],
        eps=defaults["eps"],
        weight_decay=defaults["weight_decay"],
        adamw_mode=bool(adamw),
    )


class ZeRO3Strategy(DeepSpeedStrategy):
    """Lightning's DeepSpeed strategy at stage 3, with ZeRO-3-aware model loading and export.

    Args:
        offload_optimizer: keep optimizer state (fp32 master weights, Adam moments) in CPU memory.
        offload_parameters: keep parameter partitions in CPU memory between uses.
        pin_memory: page-locked CPU buffers for the offloaded tensors (faster transfers).
        cpu_adam: with `offload_optimizer`, run the module's Adam/AdamW as DeepSpeed's CPU Adam.
        gpu_only: read by s1exp.preflight to refuse the preset on a machine without CUDA; unused
            here (the strategy itself also runs on a CPU accelerator, for tests).
        **deepspeed_kwargs: any other `DeepSpeedStrategy` argument (bucket sizes, logging_level).
    """

    def __init__(
        self,
        offload_optimizer: bool = False,
        offload_parameters: bool = False,
        pin_memory: bool = False,
        cpu_adam: bool = True,
        gpu_only: bool = True,
        **deepspeed_kwargs: Any,
    ) -> None:
        if deepspeed_kwargs.pop("stage", 3) != 3:
            raise ConfigError("strategy.stage: ZeRO3Strategy is stage 3; use another strategy")
        if "config" in deepspeed_kwargs:
            raise ConfigError(
                "strategy.config: ZeRO3Strategy builds its DeepSpeed config from its arguments; "
                "remove `config` or use lightning.pytorch.strategies.DeepSpeedStrategy"
            )
        super().__init__(
            stage=3,
            offload_optimizer=offload_optimizer,
            offload_parameters=offload_parameters,
            pin_memory=pin_memory,
            **deepspeed_kwargs,
        )
        self.cpu_adam = cpu_adam
        self.gpu_only = gpu_only
        if offload_optimizer and not cpu_adam:
            self.config["zero_force_ds_cpu_optimizer"] = False

    # -- the two methods SFTModule and the recipe look for ------------------------------------

    def build_model(
        self, model_path: str, dtype: torch.dtype, trust_remote_code: bool = False
    ) -> torch.nn.Module:
        """The Hugging Face model, loaded straight into this rank's ZeRO-3 partitions."""
        self._init_config_if_needed()
        return load_partitioned(model_path, dtype, self.config, trust_remote_code)

    def export_state_dict(self, model: torch.nn.Module) -> dict[str, torch.Tensor] | None:
        """Full HF state dict on global rank 0 (None elsewhere), gathered layer by layer.

        Trained parameters come from the optimizer's fp32 masters (the working copies are bf16
        under bf16 precision); the recipe casts to its export dtype afterwards.

        Lightning's teardown after `fit` moves the module to CPU; under ZeRO-3 that moves only
        the empty placeholders (the partitions stay where DeepSpeed keeps them), but the gather
        buffers are allocated on the placeholders' device. Moving them back costs nothing and
        keeps the all-gather on the accelerator (NCCL cannot gather into CPU tensors).
        """
        from deepspeed.accelerator import get_accelerator

        model.to(get_accelerator().current_device_name())
        return gather_full_state_dict(model, self.global_rank, master_weights=True)

    # -- Lightning hooks ----------------------------------------------------------------------

    @contextmanager
    def model_sharded_context(self) -> Iterator[None]:
        """No `zero.Init` of its own around `configure_model`: `build_model` opens transformers'.

        Lightning's context would wrap transformers' (nested contexts are counted and only the
        outermost one patches module construction), making Lightning's the one that partitions
        and leaving a plain `from_pretrained` inside it broken. Without it there is a single
        owner; a module that builds its model some other way is still partitioned, later, by
        `deepspeed.initialize`.
        """
        self._init_config_if_needed()
        yield

    def setup_environment(self) -> None:
        """On a CPU accelerator skip Lightning's CUDA-only check (DeepSpeed runs there on gloo)."""
        if isinstance(self.accelerator, CPUAccelerator):
            DDPStrategy.setup_environment(self)
            return
        super().setup_environment()

    def setup_distributed(self) -> None:
        """On CPU skip the GPU index check, which reads `device.index` (None for CPU devices)."""
        if self.root_device.type != "cpu":
            super().setup_distributed()
            return
        reset_seed()
        self.set_world_ranks()
        self._init_deepspeed_distributed()

    def _setup_model_and_optimizer(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer | None,
        lr_scheduler: LRScheduler | None = None,
    ) -> tuple[Any, torch.optim.Optimizer]:
        """`deepspeed.initialize`, with CPU Adam under optimizer offload and a CPU device rank."""
        import deepspeed

        zero = self.config.get("zero_optimization", {})
        if optimizer is not None and self.cpu_adam and "offload_optimizer" in zero:
            optimizer = cpu_adam_like(optimizer)
        index = self.root_device.index
        engine, ds_optimizer, _, _ = deepspeed.initialize(
            args=argparse.Namespace(device_rank=self.local_rank if index is None else index),
            config=self.config,
            model=model,
            model_parameters=[p for p in model.parameters() if p.requires_grad],
            optimizer=optimizer,
            lr_scheduler=lr_scheduler,
            dist_init_required=False,
        )
        return engine, ds_optimizer
