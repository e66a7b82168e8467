"""Memory formulas for training and inference of a Qwen2/Llama-style decoder, in bytes.

Pure functions of the architecture and the setup: no torch, no GPU, no download. s1exp/plan.py
reads them from the config, prints them and refuses configs that do not fit.

Training, per GPU (P parameters, S = ranks the states are sharded over, B x T tokens per
micro-batch; m / c: bytes of the master / compute dtype):

- states: weights P*m/S, gradients P*m/S (DDP adds its bucket copy), AdamW m and v 2*P*m/S plus a
  4-byte step per parameter tensor. DeepSpeed ZeRO-3 with bf16 keeps bf16 weights, fp32
  gradients, fp32 master weights and fp32 m, v: 2+4+4+8 = 18 bytes per parameter, DeepSpeed's own
  estimate (estimate_zero3_model_states_mem_needs); offload moves all but the bf16 weights (or
  all of it) to CPU RAM.
- in flight (sharded strategies): FSDP2 gathers one layer at a time in the compute dtype and keeps
  the root group (embeddings, final norm, head) gathered from forward to the end of backward; one
  layer is prefetched. In backward a layer's unsharded gradients (compute dtype, plus an fp32 copy
  when reducing in fp32) and the head's gradient exist too. Single/DDP with bf16 autocast cache a
  bf16 copy of every linear weight during forward.
- activations: `saved_per_token` below lists what autograd keeps per token for one decoder
  layer (SDPA/flash attention: no T x T term; fp32 RMSNorm as in Qwen2RMSNorm; HF's loss upcasts
  the logits to fp32 and keeps the log-softmax output, 4 bytes x vocab per token). With activation
  checkpointing each layer keeps only its input (T x hidden) and one layer is recomputed at a time.
  Peaks: at the start of backward the loss adds 8 bytes x vocab per token (the NLL gradient and
  the log-softmax gradient, fp32) to what is held; while a layer runs backward its gradients add
  about c x 2 x (intermediate + hidden) per token (measured on the tiny model: tests/test_plan.py).

vLLM, per GPU at tensor parallel size TP (d: bytes of the engine dtype):
  weights P*d/TP; KV cache per token 2 x layers x max(1, kv_heads/TP) x head_dim x d; vLLM's
  start-up profile run (max_num_batched_tokens tokens through one layer's largest buffers, plus
  the sampler's fp32 logits for max_num_seqs sequences); a fixed allowance for CUDA graphs and NCCL.
  What is left of gpu_memory_utilization x memory holds the KV cache.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

GIB = 2**30
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
RESERVE_GIB = 2.5  # per training GPU: CUDA context, NCCL buffers, allocator slack (estimate)
VLLM_OVERHEAD_GIB = 1.5  # per vLLM GPU: CUDA graphs, NCCL, non-torch allocations (estimate)


@dataclass(frozen=True)
class Architecture:
    """The config.json fields memory depends on (Qwen2 names)."""

    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    intermediate_size: int
    vocab_size: int
    tie_word_embeddings: bool
    max_position_embeddings: int
    attention_bias: bool = True  # Qwen2 has q/k/v biases; Llama (SmolLM2) has none
    head_dim: int | None = None  # hidden_size / num_attention_heads unless given

    @property
    def head_size(self) -> int:
        return self.head_dim or self.hidden_size // self.num_attention_heads

    @property
    def q_dim(self) -> int:
        return self.num_attention_heads * self.head_size

    @property
    def kv_dim(self) -> int:
        return self.num_key_value_heads * self.head_size

    @property
    def layer_params(self) -> int:
        h = self.hidden_size
        attention = 2 * h * self.q_dim + 2 * h * self.kv_dim  # q, o; k, v
        bias = self.q_dim + 2 * self.kv_dim if self.attention_bias else 0
        return attention + bias + 3 * h * self.intermediate_size + 2 * h  # + MLP + 2 norms

    @property
    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def root_params(self) -> int:
        """Everything outside the decoder layers: embeddings, final norm, untied head."""
        heads = 1 if self.tie_word_embeddings else 2
        return heads * self.embedding_params + self.hidden_size

    @property
    def params(self) -> int:
        return self.num_hidden_layers * self.layer_params + self.root_params

    @property
    def param_tensors(self) -> int:
        per_layer = 9 + (3 if self.attention_bias else 0)  # 7 weights, 2 norms, q/k/v biases
        return self.num_hidden_layers * per_layer + (2 if self.tie_word_embeddings else 3)

    def valid_tensor_parallel_sizes(self, limit: int) -> list[int]:
        """TP sizes vLLM accepts: they divide the attention heads (vLLM's config check), the KV
        heads divide or are divided by them (QKVParallelLinear), and they divide the MLP."""
        heads, kv = self.num_attention_heads, self.num_key_value_heads
        return [
            tp
            for tp in range(1, limit + 1)
            if heads % tp == 0
            and (kv % tp == 0 or tp % kv == 0)
            and self.intermediate_size % tp == 0
        ]


# -- training -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainSetup:
    strategy: str  # single | ddp | fsdp | deepspeed_zero3
    gpus: int  # data-parallel ranks: train.devices x train.num_nodes
    nodes: int
    shards: int  # ranks the states are sharded over (1: replicated)
    master: str  # dtype the optimizer updates
    compute: str  # dtype of the matmuls
    autocast: bool  # single/DDP bf16-mixed: fp32 weights and residual stream, bf16 matmuls
    micro_batch_size: int
    block_size: int
    checkpointing: bool
    offload_optimizer: bool = False
    offload_parameters: bool = False

    @property
    def tokens(self) -> int:
        return self.micro_batch_size * self.block_size

    def with_(self, **changes) -> TrainSetup:
        return replace(self, **changes)


def saved_per_token(arch: Architecture, setup: TrainSetup) -> dict[str, int]:
    """Bytes autograd holds per token after the forward (held until backward), by part.

    Per decoder layer: each RMSNorm keeps its fp32 input (4h), the fp32 rsqrt (4), its cast back
    (r*h, r: residual-stream bytes) and its output as the next linears' input (c*h; under autocast
    each linear keeps its own bf16 cast: 3 for q/k/v, 2 for gate/up); attention keeps q, k, v after
    RoPE, its output and the fp32 log-sum-exp per head; the MLP keeps gate, SiLU(gate), up and
    their product (4 x intermediate). Outside the layers: token ids and labels (int64), the final
    norm, the fp32 log-softmax of the logits. RoPE's cos/sin are per position, not per token.
    """
    c = DTYPE_BYTES[setup.compute]
    r = DTYPE_BYTES[setup.master] if setup.autocast else c
    h, inter = arch.hidden_size, arch.intermediate_size

    def norm(consumers: int) -> int:
        return (4 + r) * h + 4 + (consumers if setup.autocast else 1) * c * h

    attention = c * (2 * arch.q_dim + 2 * arch.kv_dim) + 4 * arch.num_attention_heads
    layer = norm(3) + attention + norm(2) + 4 * c * inter
    layers = arch.num_hidden_layers * (r * h if setup.checkpointing else layer)
    return {
        "layers": layers,
        "head": 8 + norm(1) + 4 * arch.vocab_size + 8,  # ids, final norm, log-softmax, labels
        "layer": layer,  # one layer's activations (recomputed one at a time with checkpointing)
    }


def activations(arch: Architecture, setup: TrainSetup) -> dict[str, float]:
    """Activation bytes per GPU: held after the forward, and at the two peaks (the loss; the
    backward of the last layer)."""
    saved = saved_per_token(arch, setup)
    c = DTYPE_BYTES[setup.compute]
    r = DTYPE_BYTES[setup.master] if setup.autocast else c
    tokens, positions = setup.tokens, setup.block_size
    rope = 2 * arch.head_size * r * positions
    held = (saved["layers"] + saved["head"]) * tokens + rope
    # The loss: at its forward the compute-dtype logits and their fp32 copy are alive; at the
    # start of backward the NLL gradient and the log-softmax gradient (fp32 each).
    # Under autocast without checkpointing RoPE's rotate_half outputs for q and k are fp32 and
    # stay alive until the forward returns (measured on CPU, tests/test_plan.py).
    upcast = 4 if c < 4 else 0
    rope_fp32 = 0
    if setup.autocast and not setup.checkpointing:
        rope_fp32 = 4 * (arch.q_dim + arch.kv_dim) * arch.num_hidden_layers
    forward_end = (c + upcast) * arch.vocab_size + rope_fp32
    loss = held + max(8 * arch.vocab_size, forward_end) * tokens
    grads = c * (2 * arch.intermediate_size + 2 * arch.hidden_size) * tokens
    if setup.checkpointing:  # the last layer recomputed, everything but the loss still held
        layer = saved["layers"] * tokens + saved["layer"] * tokens + grads
    else:
        layer = saved["layers"] * tokens + grads
    return {"held": held, "loss": loss, "layer": layer + rope}


def states(arch: Architecture, setup: TrainSetup) -> dict[str, float]:
    """Weights, gradients, optimizer state per GPU (sharded ones divided by the shards) and
    what the offload strategies keep in CPU RAM per node."""
    p, s, m = arch.params, setup.shards, DTYPE_BYTES[setup.master]
    if setup.strategy == "deepspeed_zero3":
        mixed = setup.compute != "float32"
        per_param = {"weights": 2 if mixed else 4, "gradients": 4, "optimizer": 8}
        per_param["master"] = 4 if mixed else 0
        on_cpu = set()
        if setup.offload_optimizer:
            on_cpu |= {"gradients", "master", "optimizer"}
        if setup.offload_parameters:
            on_cpu |= {"weights"}
        rows = {k: 0.0 if k in on_cpu else v * p / s for k, v in per_param.items()}
        rows["cpu_per_node"] = sum(per_param[k] for k in on_cpu) * p / setup.nodes
        return rows
    grads = m * p / s * (2 if setup.strategy == "ddp" else 1)  # DDP: buckets copy the grads
    return {
        "weights": m * p / s,
        "gradients": grads,
        "master": 0.0,
        "optimizer": 2 * m * p / s + 4 * arch.param_tensors,  # m, v and AdamW's fp32 step
        "cpu_per_node": 0.0,
    }


def in_flight(arch: Architecture, setup: TrainSetup) -> dict[str, float]:
    """Gathered (unsharded) weights and gradients at the two peaks: the loss and a layer's
    backward. Unsharded strategies hold whole weights already (autocast adds bf16 copies)."""
    c = DTYPE_BYTES[setup.compute]
    layer, root, head = arch.layer_params, arch.root_params, arch.embedding_params
    if setup.strategy == "fsdp":
        reduce_copy = 4 * layer if c < 4 else 0  # fp32 gradients for the reduce-scatter
        loss = c * (root + layer)  # root kept gathered, the last layer prefetched for backward
        backward = c * (root + 2 * layer) + c * head + c * layer + reduce_copy
        return {"loss": loss, "layer": backward}
    if setup.strategy == "deepspeed_zero3":
        largest = max(head, layer)  # DeepSpeed gathers module by module, prefetching the next
        return {"loss": c * (largest + layer), "layer": c * (largest + layer) + c * largest}
    if setup.autocast:  # the autocast cache: a bf16 copy of every linear weight (and bias)
        norms = 2 * arch.hidden_size * arch.num_hidden_layers
        linear = arch.num_hidden_layers * arch.layer_params - norms + head
        # held to the end of forward; saved for backward only without checkpointing
        return {"loss": c * linear, "layer": 0.0 if setup.checkpointing else c * linear}
    return {"loss": 0.0, "layer": 0.0}


TRAIN_ROWS = ("weights", "gradients", "master", "optimizer", "in_flight", "activations", "reserve")


def train_memory(arch: Architecture, setup: TrainSetup) -> dict[str, float]:
    """Bytes per GPU at the peak: the state rows, what is in flight and the activations then."""
    rows = states(arch, setup)
    flight, act = in_flight(arch, setup), activations(arch, setup)
    phase = max(("loss", "layer"), key=lambda k: flight[k] + act[k])
    rows |= {
        "in_flight": flight[phase],
        "activations": act[phase],
        "held": act["held"],
        "reserve": RESERVE_GIB * GIB,
    }
    rows["total"] = sum(rows[k] for k in TRAIN_ROWS)
    rows["phase"] = phase  # type: ignore[assignment]
    return rows


def longest_fitting_block(arch: Architecture, setup: TrainSetup, memory_gib: float) -> int:
    """The longest block (tokens per sequence) whose peak fits in memory_gib; 0 if none."""
    lo, hi = 0, 1 << 22
    while lo < hi:  # memory grows with the block: bisect
        mid = (lo + hi + 1) // 2
        if train_memory(arch, setup.with_(block_size=mid))["total"] <= memory_gib * GIB:
            lo = mid
        else:
            hi = mid - 1
    return lo


# -- vLLM -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EngineSetup:
    dtype: str
    tensor_parallel_size: int
    max_model_len: int
    gpu_memory_utilization: float
    max_num_batched_tokens: int  # vLLM's default for the GPU (its start-up profile run)
    max_num_seqs: int


def kv_bytes_per_token(arch: Architecture, dtype: str, tp: int) -> int:
    kv_heads = max(1, arch.num_key_value_heads // tp)  # replicated when TP > KV heads
    return 2 * arch.num_hidden_layers * kv_heads * arch.head_size * DTYPE_BYTES[dtype]


def vllm_memory(arch: Architecture, engine: EngineSetup, memory_gib: float) -> dict[str, float]:
    """Bytes per GPU of one vLLM replica and how many max_model_len sequences its KV cache holds."""
    d, tp = DTYPE_BYTES[engine.dtype], engine.tensor_parallel_size
    per_token_buffers = (arch.q_dim + 2 * arch.kv_dim + 3 * arch.intermediate_size) / tp
    profile = engine.max_num_batched_tokens * d * (per_token_buffers + 2 * arch.hidden_size)
    sampler = engine.max_num_seqs * arch.vocab_size * 4 * 2  # fp32 logits and probabilities
    rows = {
        "budget": engine.gpu_memory_utilization * memory_gib * GIB,
        "weights": arch.params * d / tp,
        "activations": profile + sampler,
        "overhead": VLLM_OVERHEAD_GIB * GIB,
    }
    rows["kv_cache"] = rows["budget"] - rows["weights"] - rows["activations"] - rows["overhead"]
    rows["kv_per_sequence"] = kv_bytes_per_token(arch, engine.dtype, tp) * engine.max_model_len
    rows["sequences"] = max(0, int(rows["kv_cache"] // rows["kv_per_sequence"]))
    return rows
