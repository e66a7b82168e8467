"""The store keys of the selection and the trained model: one definition for every caller.

The pipeline addresses artifacts with them, and SLURM sizing (s1exp.resolvers) asks whether a
job's model already exists; both must hash exactly the same config. Model settings that only
concern evaluation (vLLM's tensor-parallel size) or describe the checkpoint for the memory
planner (`architecture`) do not change the trained weights and stay out of the model key.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from s1exp.store import config_key

EVAL_ONLY_MODEL_KEYS = ("tensor_parallel_size", "architecture")

# Engine settings that change speed but not outputs stay out of the eval key. The tensor-parallel
# size is not one of them: on GPUs it changes the reduction order, hence the tokens.
SPEED_ONLY_ENGINE_KEYS = frozenset(
    {
        "batch_size",
        "device",
        "gpu_memory_utilization",
        "enforce_eager",
        "enable_prefix_caching",
        "kv_cache_space",
        "block_size",
    }
)

# Featurize settings that change where and how fast, not which features come out.
SPEED_ONLY_FEATURIZE_KEYS = frozenset({"isolate", "batch_rows"})


def engine_output_settings(engine_cfg: DictConfig) -> dict:
    """The engine settings that change its tokens, as it will run them on this machine (`auto`
    resolved): the part of an engine config that evaluation and featurize keys hold."""
    from s1exp.infer.vllm_engine import resolve_engine_settings  # vLLM itself is not imported

    settings = resolve_engine_settings(engine_cfg)
    return {k: v for k, v in settings.items() if k not in SPEED_ONLY_ENGINE_KEYS}


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
        cfg.train,
        cfg.trace_format,
        cfg.strategy,
    )


def base_model_key(cfg: DictConfig) -> str:
    """train=none: the base model itself is evaluated."""
    return config_key("model", trained_model_settings(cfg))
