"""The store keys of the selection and the trained model: one definition for every caller.

The pipeline addresses artifacts with them, and SLURM sizing (s1exp.resolvers) asks whether a
job's model already exists; both must hash exactly the same config. Model settings that only
concern evaluation (vLLM's tensor-parallel size) or describe the checkpoint for the memory
planner (`architecture`) do not change the trained weights and stay out of the model key.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from s1exp.infer.vllm_engine import resolve_engine_settings  # vLLM itself is not imported
from s1exp.store import config_key

EVAL_ONLY_MODEL_KEYS = ("tensor_parallel_size", "architecture")
# Recipe settings that change how a fit survives faults, not the weights it ends with.
RESUME_ONLY_TRAIN_KEYS = ("resume_every_n_epochs",)

# Engine settings that change speed but not outputs stay out of the eval key. The tensor-parallel
# size is not one of them: on GPUs it changes the reduction order, hence the tokens.
SPEED_ONLY_ENGINE_KEYS = frozenset(
    {
        "batch_size",
        "max_num_seqs",
        "device",
        "gpu_memory_utilization",
        "enforce_eager",
        "enable_prefix_caching",
        "kv_cache_space",
        "block_size",
    }
)
# ...except where the batch shape changes the numerics: it picks the matmul kernels and their
# reduction order (and CUDA graphs pad batches to captured sizes), so greedy tokens can change with
# it on CUDA and in bf16 on CPUs too (bench/batch_numerics.py; docs/gpu.md has the numbers). Only
# fp32 on CPUs gave the same tokens at every batch size, so only there are these speed-only.
BATCH_NUMERICS_KEYS = frozenset({"batch_size", "max_num_seqs", "enforce_eager"})

# Featurize settings that change where and how fast, not which features come out.
SPEED_ONLY_FEATURIZE_KEYS = frozenset({"isolate", "batch_rows"})


def engine_output_settings(engine_cfg: DictConfig) -> dict:
    """The engine settings that change its tokens, as it will run them on this machine (`auto`
    resolved): the part of an engine config that evaluation and featurize keys hold."""
    return output_settings(resolve_engine_settings(engine_cfg))


def output_settings(settings: dict) -> dict:
    """The resolved engine settings without those that change only speed here."""
    speed_only = SPEED_ONLY_ENGINE_KEYS - (
        BATCH_NUMERICS_KEYS if batch_shapes_tokens(settings) else set()
    )
    return {k: v for k, v in settings.items() if k not in speed_only}


def batch_shapes_tokens(settings: dict) -> bool:
    """Whether an engine with these settings can give other tokens for another batch shape."""
    return settings.get("dtype") != "float32" or runs_on_cuda(settings)


def runs_on_cuda(settings: dict) -> bool:
    """Whether an engine with these settings generates on a CUDA device on this machine."""
    device = str(settings.get("device") or "auto")
    if device == "auto":
        import torch

        return torch.cuda.is_available()
    return device.startswith("cuda")


def eval_key(cfg: DictConfig, model_key: str, benchmark: str) -> str:
    """One benchmark's evaluation: the model, the benchmark's config, the method and the engine
    as it will run here (`auto` resolved; batch settings where they change tokens)."""
    settings = resolve_engine_settings(cfg.engine)
    engine = output_settings(settings)
    parts = ["eval", model_key, {benchmark: cfg.benchmark[benchmark]}, cfg.method, engine]
    if batch_shapes_tokens(settings):  # groups of questions are batches there
        parts.append({"questions_per_save": cfg.evaluate.questions_per_save})
    return config_key(*parts)


def features_key(cfg: DictConfig) -> str:
    """The decontaminated, featurized pool: the data source and how features are computed."""
    featurize = OmegaConf.to_container(cfg.featurize, resolve=True)
    featurize = {k: v for k, v in featurize.items() if k not in SPEED_ONLY_FEATURIZE_KEYS}
    featurize["engine"] = engine_output_settings(cfg.featurize.engine)
    return config_key("features", cfg.data, featurize)


def selection_key(cfg: DictConfig) -> str:
    return config_key("selection", features_key(cfg), cfg.selection)


def trained_model_settings(cfg: DictConfig) -> dict:
    model = OmegaConf.to_container(cfg.model, resolve=True)
    return {k: v for k, v in model.items() if k not in EVAL_ONLY_MODEL_KEYS}


def model_key(cfg: DictConfig) -> str:
    """The model a config trains: its data, selection, base model, recipe, traces, strategy."""
    return config_key(
        "model",
        selection_key(cfg),
        trained_model_settings(cfg),
        {k: v for k, v in cfg.train.items() if k not in RESUME_ONLY_TRAIN_KEYS},
        cfg.trace_format,
        cfg.strategy,
    )


def base_model_key(cfg: DictConfig) -> str:
    """train=none: the base model itself is evaluated."""
    return config_key("model", trained_model_settings(cfg))
