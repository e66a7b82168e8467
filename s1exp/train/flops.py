"""Training FLOPs per token and model FLOPs utilisation (MFU) for decoder-only transformers.

Convention (PaLM, Chowdhery et al. 2022, appendix B), per trained token:

    dense     = 6 x N          N = non-embedding parameters + the lm_head projection
    attention = 3 x 4 x L x s_eff x (n_heads x d_head)

- 6 x N: a forward multiply-add per weight (2 FLOPs) and twice that backward. The input embedding
  is a lookup, not a matmul, so it is left out; the lm_head matmul is counted even when its weight
  is tied to the embedding. Norms and biases stay in N (under 0.1%).
- attention: per layer and token, forward QK^T and AV cost 2 x s_eff x d_head FLOPs each per
  query head, x3 for forward + backward. PaLM counts the full s_eff = s; with `causal=True`
  (s1exp's default) s_eff = s/2, the mean context a causally masked token attends to, which is
  all the work a causal kernel (FlashAttention, SDPA) has to do.
- Activation recomputation (checkpointing) is NOT counted: MFU measures the model's FLOPs, not
  the hardware's (PaLM's definition), so checkpointing lowers MFU rather than inflating it.

MFU = tokens/s x FLOPs per token / the device's dense bf16 peak (`device_peak_flops`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch

# Dense (no sparsity) bf16 tensor-core peaks from NVIDIA's datasheets, most specific name first:
# torch.cuda.get_device_name() says e.g. "NVIDIA H100 80GB HBM3" (SXM), "NVIDIA H100 PCIe",
# "NVIDIA H100 NVL", "NVIDIA H200", "NVIDIA A100-SXM4-80GB".
PEAK_BF16_FLOPS: tuple[tuple[str, float], ...] = (
    (r"H100.*NVL", 835e12),
    (r"H100.*PCIe", 756e12),
    (r"H200.*NVL", 835e12),
    (r"H200", 989.4e12),
    (r"H100", 989.4e12),  # SXM5 ("H100 80GB HBM3", "H100 SXM5 80GB")
    (r"A100", 312e12),  # SXM4 and PCIe have the same tensor-core peak
)


@dataclass(frozen=True)
class TrainingFlops:
    """FLOPs to train on one token at a given sequence length (forward + backward)."""

    dense: float  # 6 x (non-embedding params + lm_head)
    attention: float  # the attention-score and attention-value matmuls

    @property
    def total(self) -> float:
        return self.dense + self.attention

    @property
    def attention_share(self) -> float:
        """Fraction of the total that a 6N-only count leaves out."""
        return self.attention / self.total


def _meta_model(config: Any) -> torch.nn.Module:
    """The model of `config` on the meta device: shapes only, no memory, any architecture."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def dense_params(config: Any) -> int:
    """N of the 6N term: every parameter but the input embeddings, plus the lm_head matmul.

    A tied lm_head shares the embedding's weight; it is counted once, as the lm_head.
    """
    model = _meta_model(config)
    output = model.get_output_embeddings()
    head = output.weight if output is not None else None
    lookups = [
        m.weight
        for m in model.modules()
        if isinstance(m, torch.nn.Embedding) and m.weight is not head
    ]
    lookup_ids = {id(w) for w in lookups}
    return sum(p.numel() for p in model.parameters() if id(p) not in lookup_ids)


def attention_width(config: Any) -> int:
    """n_heads x d_head of the queries (grouped KV heads do not shrink the score matmuls)."""
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return heads * head_dim


def training_flops_per_token(config: Any, seq_len: int, causal: bool = True) -> TrainingFlops:
    """FLOPs per trained token for a decoder-only HF model config at sequence length `seq_len`."""
    if seq_len <= 0:
        raise ValueError(f"seq_len={seq_len}: must be positive")
    context = seq_len / 2 if causal else seq_len
    attention = 3 * 4 * config.num_hidden_layers * context * attention_width(config)
    return TrainingFlops(dense=6.0 * dense_params(config), attention=float(attention))


def device_peak_flops(name: str) -> float:
    """Dense bf16 peak FLOP/s of a GPU from its torch.cuda.get_device_name()."""
    for pattern, peak in PEAK_BF16_FLOPS:
        if re.search(pattern, name, flags=re.IGNORECASE):
            return peak
    known = ", ".join(p for p, _ in PEAK_BF16_FLOPS)
    raise ValueError(
        f"no dense bf16 peak known for device {name!r} (known: {known}); "
        "pass --peak-tflops with the datasheet's dense bf16 value"
    )


def mfu(tokens_per_s: float, flops: TrainingFlops, peak_flops: float) -> float:
    """Model FLOPs utilisation: the share of the peak that the model's own FLOPs use."""
    return tokens_per_s * flops.total / peak_flops
