"""The planner's inputs from a composed config: the model's architecture, the training run and
the vLLM engine it describes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf

from s1exp.planning.memory import Architecture, EngineSetup, TrainSetup

PRECISIONS = {"bf16": "bfloat16", "16": "float16"}


def architecture(cfg: DictConfig) -> Architecture | None:
    """model.architecture (hub models), or the toy model's build settings (its vocabulary is an
    upper bound: the tokenizer may learn fewer tokens; plan a built one with
    architecture_from_checkpoint); None if neither is there."""
    arch = OmegaConf.select(cfg, "model.architecture")
    if arch is not None:
        return Architecture(**OmegaConf.to_container(arch, resolve=True))
    base = OmegaConf.select(cfg, "model.base")
    if base is None or "architecture" not in base:
        return None
    a = base.architecture  # s1exp.models.tiny.build_model's names; vocabulary padded to 64
    return Architecture(
        hidden_size=a.hidden_size,
        num_hidden_layers=a.num_layers,
        num_attention_heads=a.num_heads,
        num_key_value_heads=a.num_kv_heads,
        intermediate_size=a.intermediate_size,
        vocab_size=-(-int(base.get("vocab_size", 1024)) // 64) * 64,
        tie_word_embeddings=True,
        max_position_embeddings=a.max_position_embeddings,
    )


def architecture_from_checkpoint(path: str | Path) -> Architecture:
    """The same fields from a checkpoint folder's config.json (a built toy or SmolLM2 model)."""
    return architecture_from_hf_config(json.loads((Path(path) / "config.json").read_text()))


def architecture_from_hf_config(c: dict[str, Any]) -> Architecture:
    """The fields from a Hugging Face config (config.json's contents, or `config.to_dict()`)."""
    c = c.get("text_config") or c
    return Architecture(
        hidden_size=c["hidden_size"],
        num_hidden_layers=c["num_hidden_layers"],
        num_attention_heads=c["num_attention_heads"],
        num_key_value_heads=c.get("num_key_value_heads") or c["num_attention_heads"],
        intermediate_size=c["intermediate_size"],
        vocab_size=c["vocab_size"],
        tie_word_embeddings=bool(c.get("tie_word_embeddings", False)),
        max_position_embeddings=c["max_position_embeddings"],
        attention_bias=c.get("attention_bias", c.get("model_type") == "qwen2"),
        head_dim=c.get("head_dim"),
    )


def trains_on_gpu(cfg: DictConfig, cuda: bool) -> bool:
    accelerator = OmegaConf.select(cfg, "train.accelerator", default=None)
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and cuda)


def strategy_kind(strategy: DictConfig, gpus: int) -> str:
    """How a strategy holds training state, from its class (Lightning's auto: single or DDP)."""
    from lightning.pytorch.strategies import DDPStrategy, DeepSpeedStrategy, ModelParallelStrategy

    target = strategy.get("_target_")
    cls = get_object(target) if target else None  # a class, or a factory like strategies.auto
    kinds = {
        DeepSpeedStrategy: "deepspeed_zero3",
        ModelParallelStrategy: "fsdp",
        DDPStrategy: "ddp",
    }
    kind = next(
        (k for base, k in kinds.items() if isinstance(cls, type) and issubclass(cls, base)), None
    )
    return kind or ("ddp" if gpus > 1 else "single")


def train_setup(cfg: DictConfig) -> TrainSetup | None:
    """The training run the config describes; None for train=none. DDP-like when Lightning's
    `auto` strategy gets several devices."""
    train = cfg.train
    if "block_size" not in train:
        return None
    devices, nodes = int(train.get("devices", 1)), int(train.get("num_nodes", 1))
    gpus = devices * nodes
    strategy = strategy_kind(cfg.strategy, gpus)
    sharding = str(cfg.strategy.get("sharding_strategy", "FULL_SHARD")).upper()
    shards = {"FULL_SHARD": gpus, "HYBRID_SHARD": devices, "NO_SHARD": 1}.get(sharding, gpus)
    precision = str(train.get("precision", "32-true"))
    kind, _, mode = precision.partition("-")
    master = str(train.get("dtype", "float32"))
    compute = PRECISIONS.get(kind, master)
    if mode == "true":
        master = compute  # Lightning converts the weights themselves
    checkpointing = bool(
        train.get("activation_checkpointing", cfg.strategy.get("activation_checkpointing", False))
    )
    return TrainSetup(
        strategy=strategy,
        gpus=gpus,
        nodes=nodes,
        shards=shards if strategy in ("fsdp", "deepspeed_zero3") else 1,
        master=master,
        compute=compute,
        autocast=strategy in ("single", "ddp") and compute != master,
        micro_batch_size=int(train.micro_batch_size),
        block_size=int(train.block_size),
        checkpointing=checkpointing,
        offload_optimizer=bool(cfg.strategy.get("offload_optimizer", False)),
        offload_parameters=bool(cfg.strategy.get("offload_parameters", False)),
    )


def engine_tensor_parallel(cfg: DictConfig) -> int:
    """GPUs one engine replica spans: its tensor-parallel size (1 for engines without one)."""
    return int(OmegaConf.select(cfg, "engine.tensor_parallel_size", default=None) or 1)


def is_vllm(cfg: DictConfig) -> bool:
    return str(cfg.engine.get("_target_", "")).endswith("VLLMEngine")


def engine_setup(cfg: DictConfig, cuda: bool = True, tp: int | None = None) -> EngineSetup:
    """The vLLM engine the config asks for, on a GPU (`auto` resolved as on CUDA) or not."""
    from s1exp.infer.vllm_engine import resolve_engine_settings

    engine = resolve_engine_settings(cfg.engine, cuda=cuda)
    large = cfg.gpu.memory_gib >= 70 and "a100" not in str(cfg.gpu.name).lower()
    return EngineSetup(  # max_num_batched_tokens / max_num_seqs: vLLM 0.32's offline defaults
        dtype=engine.get("dtype", "bfloat16"),
        tensor_parallel_size=tp or int(engine.get("tensor_parallel_size") or 1),
        max_model_len=int(engine.get("max_model_len") or cfg.model.max_length),
        gpu_memory_utilization=float(engine.get("gpu_memory_utilization", 0.9)),
        max_num_batched_tokens=16384 if large else 8192,
        max_num_seqs=1024 if large else 256,
    )
