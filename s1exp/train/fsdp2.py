"""FSDP2 (`fully_shard`) as the s1 recipe's FSDP: fp32 master weights, bf16 compute, real clipping.

The s1 reference trains with FSDP full_shard, one wrap unit per decoder layer, bf16 compute over
fp32 parameters. FSDP2 gives exactly that through Lightning's ModelParallelStrategy, and unlike
FSDP1 (Lightning's FSDPStrategy) it runs on a CPU device mesh with gloo, so CI runs the recipe's
real sharding, precision and clipping code. Norm clipping works on its DTensor gradients
(Lightning's FSDP1 precision plugin refuses it).

Loading never materialises the full model on every rank: the model is built with parameters on the
meta device, sharded, given empty local shards, and filled from rank 0's read of the checkpoint
(one broadcast per tensor). Export gathers one parameter at a time into rank 0's CPU memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.strategies import ModelParallelStrategy
from torch import nn

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def decoder_layers(model: nn.Module) -> list[nn.Module]:
    """The transformer blocks of a Hugging Face causal LM (the paper's wrap units)."""
    names = getattr(model, "_no_split_modules", None) or []
    layers = [m for m in model.modules() if type(m).__name__ in names]
    if not layers:
        raise ValueError(
            f"{type(model).__name__} names no decoder layer class (_no_split_modules); "
            "FSDP2 needs one wrap unit per layer"
        )
    return layers


def shard_model(
    model: nn.Module,
    mesh: Any,
    param_dtype: torch.dtype | None = torch.bfloat16,
    reduce_dtype: torch.dtype | None = torch.float32,
) -> nn.Module:
    """fully_shard each decoder layer, then the root (embeddings, final norm, head).

    Parameters stay in their own dtype (fp32 masters); with `param_dtype` set, FSDP2 all-gathers
    and computes in that dtype and reduces gradients in `reduce_dtype`.
    """
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    policy = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=reduce_dtype)
    for layer in decoder_layers(model):
        fully_shard(layer, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    return model


def checkpoint_files(model_path: str) -> list[Path]:
    """The safetensors files of a local checkpoint folder or a hub id (from the local HF cache
    when offline)."""
    folder = Path(model_path)
    if not folder.is_dir():
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(model_path, allow_patterns=["*.safetensors", "*.json"]))
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors files in {folder}")
    return files


def read_full_state_dict(model_path: str, model: nn.Module, dtype: torch.dtype) -> dict:
    """The checkpoint's tensors keyed like `model.state_dict()`, cast to the master dtype.

    A tied output head has no tensor of its own in the file: it gets the embedding's.
    """
    from safetensors.torch import load_file

    state: dict[str, torch.Tensor] = {}
    for file in checkpoint_files(model_path):
        state |= {k: v.to(dtype) for k, v in load_file(str(file)).items()}
    expected = model.state_dict().keys()
    params = dict(model.named_parameters(remove_duplicate=False))
    for key in expected - state.keys():
        source = next((k for k in state if key in params and params.get(k) is params[key]), None)
        if source is None:
            raise KeyError(f"{model_path}: the checkpoint has no tensor for {key}")
        state[key] = state[source]
    return {k: state[k] for k in expected}


def build_sharded(
    model_path: str,
    mesh: Any,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    param_dtype: torch.dtype | None = torch.bfloat16,
    reduce_dtype: torch.dtype | None = torch.float32,
    trust_remote_code: bool = False,
) -> nn.Module:
    """A sharded model whose weights were read from disk (safetensors) by global rank 0 only."""
    import torch.distributed as dist
    from accelerate import init_empty_weights
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict
    from transformers import AutoModelForCausalLM

    from s1exp.models.loading import model_config

    config = model_config(model_path, trust_remote_code=trust_remote_code)
    with init_empty_weights(include_buffers=False):  # parameters on meta, buffers (RoPE) real
        model = AutoModelForCausalLM.from_config(
            config, dtype=dtype, trust_remote_code=trust_remote_code
        )
    model.tie_weights()  # the meta patch gives each module its own parameter: share them again
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    full = read_full_state_dict(model_path, model, dtype) if dist.get_rank() == 0 else {}
    shard_model(model, mesh, param_dtype, reduce_dtype)
    model.to_empty(device=device)
    with torch.no_grad():  # to_empty gave buffers garbage: non-persistent ones are not on disk
        for name, value in buffers.items():
            model.get_buffer(name).copy_(value)
    set_model_state_dict(
        model, full, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)
    )
    return model


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor] | None:
    """Unsharded CPU weights on global rank 0 (gathered one tensor at a time), None elsewhere."""
    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(
        model, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
    )
    return state if dist.get_rank() == 0 else None


class FSDP2Strategy(ModelParallelStrategy):
    """Lightning's ModelParallelStrategy as pure FSDP (every rank one data-parallel shard).

    Mixed precision follows the trainer: with `precision="bf16-mixed"` parameters are gathered and
    used in bf16 and gradients reduced in fp32 over fp32 masters; with "32-true" all stays fp32.
    The SFT module calls `build_model` from `configure_model` and the recipe `export_state_dict`.
    """

    def __init__(self, reduce_dtype: str = "float32", **kwargs: Any) -> None:
        super().__init__(save_distributed_checkpoint=False, **kwargs)
        self.reduce_dtype = DTYPES[reduce_dtype]

    def setup_environment(self) -> None:
        # One mesh dimension of all ranks: data parallel = world size, no tensor parallelism.
        self._data_parallel_size = self.num_processes * self.num_nodes
        self._tensor_parallel_size = 1
        super().setup_environment()

    @property
    def param_dtype(self) -> torch.dtype | None:
        return torch.bfloat16 if "bf16" in str(self.precision_plugin.precision) else None

    def build_model(
        self, model_path: str, dtype: torch.dtype, trust_remote_code: bool = False
    ) -> nn.Module:
        param_dtype = self.param_dtype
        return build_sharded(
            model_path,
            self.device_mesh["data_parallel"],
            self.root_device,
            dtype,
            param_dtype,
            self.reduce_dtype if param_dtype is not None else None,
            trust_remote_code,
        )

    def export_state_dict(self, model: nn.Module) -> dict[str, torch.Tensor] | None:
        return full_state_dict(model)
