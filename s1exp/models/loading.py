"""Hugging Face loads that run neither pickles nor downloaded code unless a model config says so.

A checkpoint's `pytorch_model.bin` is a pickle: unpickling it can run anything, so weights are
read from safetensors only (`use_safetensors=True`; a local folder without them is refused with
a ConfigError before anything is read). A hub repo or folder whose config.json maps to its own
Python code (`auto_map`) runs that code only with `trust_remote_code: true` in its model config
(conf/model/*.yaml, false in all of them); it is passed as False otherwise, never left unset
(unset, transformers asks on an interactive terminal). The model, its tokenizer and its config
are loaded through the three functions below; vLLM gets the same two settings
(s1exp.infer.vllm_engine).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from s1exp.errors import ConfigError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def trusts_remote_code(model_cfg: Mapping[str, Any] | Any) -> bool:
    """A model config's `trust_remote_code` (false when the config predates the field)."""
    return bool(model_cfg.get("trust_remote_code", False))


def require_safetensors(model_path: str) -> None:
    """Refuse a local checkpoint folder whose weights are pickles only; hub ids are left to
    `use_safetensors=True`, which refuses a repo without safetensors the same way."""
    folder = Path(model_path)
    if not folder.is_dir() or any(folder.glob("*.safetensors")):
        return
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise ConfigError(
            f"{model_path}: weights only as pickles ({', '.join(pickles)}), which can run code "
            "when loaded; s1exp loads safetensors only: convert the checkpoint (load it once "
            "where you trust it and save_pretrained(..., safe_serialization=True)) or pick "
            "another model"
        )


def causal_lm(model_path: str, *, trust_remote_code: bool = False, **kwargs: Any) -> Any:
    """AutoModelForCausalLM.from_pretrained from safetensors only; kwargs (dtype, ...) as its."""
    from transformers import AutoModelForCausalLM

    require_safetensors(model_path)
    return AutoModelForCausalLM.from_pretrained(
        model_path, use_safetensors=True, trust_remote_code=trust_remote_code, **kwargs
    )


def tokenizer(model_path: str, *, trust_remote_code: bool = False) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_path, trust_remote_code=trust_remote_code)


def model_config(model_path: str, *, trust_remote_code: bool = False) -> Any:
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(model_path, trust_remote_code=trust_remote_code)
