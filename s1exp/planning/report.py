"""The planner's tables and verdict lines, and the changes that would make a run fit."""

from __future__ import annotations

from omegaconf import DictConfig

from s1exp.planning.config import architecture, engine_setup, is_vllm, train_setup
from s1exp.planning.memory import (
    DTYPE_BYTES,
    GIB,
    RESERVE_GIB,
    Architecture,
    TrainSetup,
    kv_bytes_per_token,
    longest_fitting_block,
    train_memory,
    vllm_memory,
)

# The suggested TP is the smallest that keeps this many max_model_len sequences in the KV cache,
# so a benchmark's questions decode as one batch instead of queueing (python -m s1exp.plan
# --sequences N to ask for another number).
EVAL_SEQUENCES = 16


# -- training -------------------------------------------------------------------------------------
def _fits(arch: Architecture, setup: TrainSetup, memory_gib: float) -> bool:
    return train_memory(arch, setup)["total"] <= memory_gib * GIB


def train_fixes(arch: Architecture, setup: TrainSetup, memory_gib: float) -> list[str]:
    """Single changes that make training fit, as overrides."""
    fixes = []
    if not setup.checkpointing and _fits(arch, setup.with_(checkpointing=True), memory_gib):
        fixes.append("train.activation_checkpointing=true")
    sharded = setup.strategy in ("fsdp", "deepspeed_zero3")
    per_node = setup.gpus // setup.nodes
    for nodes in range(setup.nodes + 1, 65) if sharded else ():  # shard over more GPUs
        more = setup.with_(nodes=nodes, gpus=nodes * per_node, shards=nodes * per_node)
        if _fits(arch, more, memory_gib):
            fixes.append(f"train.num_nodes={nodes}")
            break
    if not sharded and setup.gpus > 1:
        fsdp = setup.with_(strategy="fsdp", shards=setup.gpus, autocast=False)
        if _fits(arch, fsdp, memory_gib):
            fixes.append("strategy=fsdp")
    offload = setup.with_(
        strategy="deepspeed_zero3",
        shards=setup.gpus,
        offload_optimizer=True,
        offload_parameters=True,
        autocast=False,
    )
    if not (setup.offload_optimizer and setup.offload_parameters) and _fits(
        arch, offload, memory_gib
    ):
        fixes.append("strategy=deepspeed_zero3_offload")
    if (block := longest_fitting_block(arch, setup, memory_gib)) > 0:
        fixes.append(f"train.block_size={block}")
    return fixes


def train_report(arch: Architecture, setup: TrainSetup, gpu: DictConfig) -> tuple[list[str], str]:
    """Table lines and the verdict line for training."""
    on = train_memory(arch, setup.with_(checkpointing=True))
    off = train_memory(arch, setup.with_(checkpointing=False))
    s = setup.shards
    share = f"1/{s}" if s > 1 else "whole"
    master = f"{setup.master}, {share}"
    ds = setup.strategy == "deepspeed_zero3"
    offload = " +offload" if setup.offload_optimizer or setup.offload_parameters else ""
    lines = [
        f"training: {setup.strategy}{offload} on {setup.gpus} GPU(s) ({setup.nodes} x "
        f"{setup.gpus // setup.nodes} per node), states "
        + (f"sharded {s} ways" if s > 1 else "replicated"),
        f"  {setup.compute} compute over {setup.master} weights"
        f"{' (autocast)' if setup.autocast else ''}; micro-batch {setup.micro_batch_size} x "
        f"{setup.block_size:,} tokens",
        f"  {'GiB per GPU':<46}{'checkpointing on':>17}{'off':>10}",
    ]
    cpu_w = ", in CPU RAM" if setup.offload_parameters else ""
    cpu_o = ", in CPU RAM" if setup.offload_optimizer else ""
    ds_weights = "bfloat16" if setup.compute != "float32" else "float32"
    flight = (
        f"{setup.compute} weight copies (autocast cache)"
        if setup.autocast
        else f"gathered {setup.compute} weights/grads in flight"
    )
    rows = [
        ("weights", f"weights ({f'{ds_weights}, {share}{cpu_w}' if ds else master})"),
        (
            "gradients",
            f"gradients ({f'float32, {share}{cpu_o}' if ds else master}"
            f"{', + DDP buckets' if setup.strategy == 'ddp' else ''})",
        ),
        ("master", f"fp32 master weights (DeepSpeed{cpu_o})"),
        ("optimizer", f"AdamW m, v ({f'float32, {share}{cpu_o}' if ds else master})"),
        ("in_flight", flight),
        ("activations", "activations at the peak"),
        ("held", "(activations held after the forward)"),
        ("reserve", "reserve (CUDA context, NCCL, slack)"),
        ("total", "total at the peak"),
    ]
    for key, label in rows:
        lines.append(f"  {label:<46}{on[key] / GIB:>17.2f}{off[key] / GIB:>10.2f}")
    lines.append(f"  {'peak phase':<46}{on['phase']:>17}{off['phase']:>10}")
    if on["cpu_per_node"]:
        lines.append(
            f"  {'CPU RAM per node (offloaded state)':<46}{on['cpu_per_node'] / GIB:>17.2f}"
        )
    chosen = on if setup.checkpointing else off
    memory = gpu.memory_gib
    state = f"checkpointing {'on' if setup.checkpointing else 'off'}"
    if chosen["total"] <= memory * GIB:
        verdict = f"fits: {chosen['total'] / GIB:.1f} of {memory} GiB per GPU ({state})"
    else:
        fixes = train_fixes(arch, setup, memory)
        longest = longest_fitting_block(arch, setup, memory)
        verdict = (
            f"does not fit: {chosen['total'] / GIB:.1f} of {memory} GiB per GPU ({state}, "
            f"peak at the {'loss' if chosen['phase'] == 'loss' else 'backward of a layer'}); "
            f"longest block that fits: {longest:,} tokens; fix: "
            + (" or ".join(fixes) if fixes else "a larger GPU (gpu=h200) or a smaller model")
        )
    return lines, "train: " + verdict


# -- evaluation -----------------------------------------------------------------------------------
def suggested_tp(arch: Architecture, cfg: DictConfig, sequences: int) -> tuple[int, int]:
    """The smallest valid TP on one node whose KV cache holds `sequences` max-length sequences
    (else the valid TP that holds the most), and how many it holds."""
    best = (0, -1)
    for tp in arch.valid_tensor_parallel_sizes(int(cfg.gpu.gpus_per_node)):
        held = vllm_memory(arch, engine_setup(cfg, tp=tp), cfg.gpu.memory_gib)["sequences"]
        if held >= sequences:
            return tp, held
        best = max(best, (held, tp))
    return best[1], best[0]


def eval_report(
    arch: Architecture, cfg: DictConfig, sequences: int = EVAL_SEQUENCES
) -> tuple[list[str], str]:
    """Table lines and the verdict line for the evaluation engine on the configured GPU."""
    if not is_vllm(cfg):
        return transformers_report(arch, cfg)
    engine = engine_setup(cfg)
    m = vllm_memory(arch, engine, cfg.gpu.memory_gib)
    tp = engine.tensor_parallel_size
    lines = [
        f"evaluation: vLLM, {engine.dtype}, tensor parallel {tp}, max_model_len "
        f"{engine.max_model_len:,}, gpu_memory_utilization {engine.gpu_memory_utilization}",
        f"  {'TP':>4}{'weights GiB':>13}{'KV cache GiB':>14}{'KV/sequence GiB':>17}"
        f"{'sequences':>11}",
    ]
    for size in arch.valid_tensor_parallel_sizes(int(cfg.gpu.gpus_per_node)):
        r = vllm_memory(arch, engine_setup(cfg, tp=size), cfg.gpu.memory_gib)
        lines.append(
            f"  {size:>4}{r['weights'] / GIB:>13.2f}{max(0, r['kv_cache']) / GIB:>14.2f}"
            f"{r['kv_per_sequence'] / GIB:>17.2f}{r['sequences']:>11}"
            + ("   <- configured" if size == tp else "")
        )
    lines.append(
        f"  per GPU: budget {m['budget'] / GIB:.2f} GiB = weights + start-up profile "
        f"{m['activations'] / GIB:.2f} + CUDA graphs/NCCL {m['overhead'] / GIB:.2f} + KV cache"
    )
    best, held = suggested_tp(arch, cfg, sequences)
    suggestion = f"suggested TP: {best} ({held} sequences; the smallest holding {sequences})"
    if m["sequences"] >= 1:
        verdict = (
            f"fits: {m['sequences']} sequences of {engine.max_model_len:,} tokens at TP {tp} "
            f"(KV cache {m['kv_cache'] / GIB:.1f} GiB per GPU); {suggestion}"
        )
    else:
        need = (m["weights"] + m["activations"] + m["overhead"] + m["kv_per_sequence"]) / GIB
        fit_tp = next(
            (
                size
                for size in arch.valid_tensor_parallel_sizes(int(cfg.gpu.gpus_per_node))
                if vllm_memory(arch, engine_setup(cfg, tp=size), cfg.gpu.memory_gib)["sequences"]
            ),
            None,
        )
        fix = (
            f"engine.tensor_parallel_size={fit_tp}"
            if fit_tp
            else "a larger GPU or a shorter model.max_length"
        )
        verdict = (
            f"does not fit: one {engine.max_model_len:,}-token sequence needs {need:.1f} of "
            f"{m['budget'] / GIB:.1f} GiB (gpu_memory_utilization x {cfg.gpu.memory_gib}) at "
            f"TP {tp}; fix: {fix}"
        )
    return lines, "eval: " + verdict


def transformers_report(arch: Architecture, cfg: DictConfig) -> tuple[list[str], str]:
    """The transformers engine: the whole model on one GPU, a KV cache per batch row."""
    dtype = str(cfg.engine.get("dtype", "float32"))
    length, batch = int(cfg.engine.max_model_len), int(cfg.engine.get("batch_size", 1))
    weights = arch.params * DTYPE_BYTES[dtype]
    per_sequence = kv_bytes_per_token(arch, dtype, 1) * length
    memory = cfg.gpu.memory_gib * GIB
    fit = max(0, int((memory - weights - RESERVE_GIB * GIB) // per_sequence))
    lines = [
        f"evaluation: transformers, {dtype}, one GPU: weights {weights / GIB:.2f} GiB, KV cache "
        f"{per_sequence / GIB:.2f} GiB per {length:,}-token sequence, batch_size {batch}"
    ]
    if fit >= 1:
        verdict = f"fits: {min(fit, batch)} of {batch} sequences at {length:,} tokens at once"
    else:
        verdict = (
            f"does not fit: {dtype} weights {weights / GIB:.1f} GiB + one sequence on one "
            f"{cfg.gpu.memory_gib} GiB GPU; fix: engine=vllm"
        )
    return lines, "eval: " + verdict


def _count(n: int) -> str:
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.1f} M"


def report(cfg: DictConfig, sequences: int = EVAL_SEQUENCES) -> str:
    arch = architecture(cfg)
    if arch is None:
        return f"model={cfg.model.name}: no architecture to plan from (add model.architecture)"
    gpu = cfg.gpu
    out = [
        f"s1exp.plan: {cfg.model.name} ({_count(arch.params)} parameters) on {gpu.name} "
        f"({gpu.memory_gib} GiB, {gpu.gpus_per_node} per node)",
        "",
    ]
    verdicts = []
    setup = train_setup(cfg)
    if setup is not None:
        lines, verdict = train_report(arch, setup, gpu)
        out += [*lines, ""]
        verdicts.append(verdict)
    lines, verdict = eval_report(arch, cfg, sequences)
    out += [*lines, ""]
    verdicts.append(verdict)
    return "\n".join(out + verdicts)
