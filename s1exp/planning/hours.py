"""GPU-hours a run will take, from its config alone, so a lab can budget a table before queueing it.

Training: the model FLOPs of the run (s1exp/train/flops.py: 6N plus causal attention per token)
divided by what the GPUs deliver at an MFU calibrated on the paper's one timing: s1-32B, i.e.
Qwen2.5-32B-Instruct on s1K for 5 epochs at block 32,768, took 26 minutes on 16 H100
(S1_SPEC section 2), 6.93 H100-hours. Trained tokens = epochs x examples x min(tokens per
example, block). S1_SPEC gives no token count for s1K, so 4,700 tokens per example is an
assumption, bounded only by Table 8 (74% of the examples are longer than 4,096 tokens, none
longer than 32,768); measure it on the published set and put it in `data.tokens_per_example`.
Runs like the anchor do not depend on it (the MFU absorbs it); the printed MFU and runs with
another block size or example length do. A check on the scaling, not on the value: 59K-full
(59,029 examples at the same mean length) comes out at 409 H100-hours, the paper's 394 (S1_SPEC
Table 2). GPU-hours assume the MFU holds at any GPU count (ideal scaling).

Evaluation: every question's samples decode their thinking tokens (answers are short and left
out) at the rate of a memory-bound decode: one step reads the replica's weights once and each
sequence's KV cache, at `decode_efficiency` of the GPUs' HBM bandwidth (datasheet values below).
0.5 is an assumption, not a measurement (no GPU was lent for this work); a measured rate replaces
the model: `python -m s1exp.plan --decode-tokens-per-s R`. Two figures per run: "typical"
thinks as long as s1-32B did on average (S1_SPEC Table 8, the 32,768 row; AIME25 taken as
AIME24), one sample per question (majority voting: n); "at most" thinks to every sample's limit
and rejection sampling uses all its tries.

Settings, in order of precedence: command-line flags of `python -m s1exp.plan`, config keys
(`data.tokens_per_example`, `gpu.hbm_tb_s`, `gpu.decode_efficiency`, `gpu.decode_tokens_per_s`;
add them with `+key=value` where a config lacks them), the defaults here.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from s1exp.errors import ConfigError
from s1exp.planning.config import architecture, engine_setup, is_vllm, train_setup, trains_on_gpu
from s1exp.planning.memory import DTYPE_BYTES, Architecture, kv_bytes_per_token, vllm_memory

CONF = Path(__file__).resolve().parents[2] / "conf"
SECONDS_PER_HOUR = 3600.0


# -- the paper's anchor and the assumptions ------------------------------------------------------
@dataclass(frozen=True)
class Anchor:
    """The paper's one training timing (S1_SPEC section 2)."""

    model: str = "qwen2.5-32b-instruct"
    examples: int = 1000
    epochs: int = 5
    block_size: int = 32768
    gpus: int = 16
    minutes: float = 26.0
    peak_tflops: float = 989.0  # H100 SXM dense bf16 (conf/gpu/h100.yaml)

    @property
    def gpu_hours(self) -> float:
        return self.gpus * self.minutes / 60.0


ANCHOR = Anchor()
S1K_TOKENS_PER_EXAMPLE = 4700.0  # assumption: see the module docstring
DECODE_EFFICIENCY = 0.5  # assumption: share of HBM bandwidth a vLLM decode step attains

# HBM bandwidth per GPU in TB/s (NVIDIA datasheets), most specific name first, matched against
# conf/gpu/*.yaml `name` ("H100 SXM 80GB", ...) as s1exp/train/flops.py matches device names.
HBM_TB_S: tuple[tuple[str, float], ...] = (
    (r"H200", 4.8),
    (r"H100.*PCIe", 2.0),
    (r"H100", 3.35),  # SXM5
    (r"A100.*40", 1.555),
    (r"A100", 2.039),  # 80 GB SXM4
)

# Questions per benchmark (S1_SPEC section 5); others need `benchmark.<name>.size`.
QUESTIONS = {"aime24": 30, "aime25": 30, "math500": 500, "gpqa_diamond": 198}

# Average thinking tokens of s1-32B (trained at 32,768) per benchmark: S1_SPEC Table 8.
TYPICAL_THINKING = {"aime24": 6984, "aime25": 6984, "math500": 3268, "gpqa_diamond": 3568}

# selection=full trains on the whole pool, whatever selection.size says (S1_SPEC section 1).
POOL_ROWS = {"featurized59k": 59029, "full59k": 59029, "s1k": 1000, "s1k_1.1": 1000}


@dataclass(frozen=True)
class HoursSettings:
    """The estimate's assumptions; None: taken from the config (examples) or the GPU's name."""

    tokens_per_example: float = S1K_TOKENS_PER_EXAMPLE
    decode_efficiency: float = DECODE_EFFICIENCY
    hbm_tb_s: float | None = None
    decode_tokens_per_s: float | None = None  # measured: replaces the memory-bound model
    examples: int | None = None  # training examples; None: selection.size (full: the pool)

    def checked(self) -> HoursSettings:
        """Refuse values no run can have, naming the setting and its flag."""
        positive = {
            "tokens_per_example": self.tokens_per_example,
            "hbm_tb_s": self.hbm_tb_s,
            "decode_tokens_per_s": self.decode_tokens_per_s,
            "examples": self.examples,
        }
        for name, value in positive.items():
            if value is not None and not value > 0:
                flag = "--" + name.replace("_", "-")
                raise ConfigError(f"{name}={value!r}: must be a positive number ({flag} N)")
        if not 0 < self.decode_efficiency <= 1:
            raise ConfigError(
                f"decode_efficiency={self.decode_efficiency!r}: a share of the HBM bandwidth, "
                "in (0, 1]; e.g. --decode-efficiency 0.5 (gpu.decode_efficiency)"
            )
        return self


# config key -> setting (flags passed to `settings` win over these)
CONFIG_KEYS = {
    "data.tokens_per_example": "tokens_per_example",
    "gpu.hbm_tb_s": "hbm_tb_s",
    "gpu.decode_efficiency": "decode_efficiency",
    "gpu.decode_tokens_per_s": "decode_tokens_per_s",
}


def settings(cfg: DictConfig, **flags: Any) -> HoursSettings:
    """The assumptions for this config: flags (not None) over config keys over the defaults."""
    known = {f.name for f in fields(HoursSettings)}
    unknown = sorted(set(flags) - known)
    if unknown:
        raise ConfigError(f"unknown GPU-hours settings {unknown}; known: {sorted(known)}")
    values = {
        name: OmegaConf.select(cfg, key)
        for key, name in CONFIG_KEYS.items()
        if OmegaConf.select(cfg, key) is not None
    }
    values |= {k: v for k, v in flags.items() if v is not None}
    return replace(HoursSettings(), **values).checked()


# -- training ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainHours:
    examples: int
    epochs: int
    tokens_per_example: float  # after the cut to the block
    flops_per_token: float
    gpus: int
    peak_flops: float  # per GPU
    mfu: float

    @property
    def tokens(self) -> float:
        return self.epochs * self.examples * self.tokens_per_example

    @property
    def flops(self) -> float:
        return self.tokens * self.flops_per_token

    @property
    def wall_hours(self) -> float:
        return self.flops / (self.mfu * self.peak_flops * self.gpus) / SECONDS_PER_HOUR

    @property
    def gpu_hours(self) -> float:
        return self.wall_hours * self.gpus


@functools.lru_cache(maxsize=16)
def flops_per_token(arch: Architecture, seq_len: int) -> float:
    """Training FLOPs per token (s1exp/train/flops.py's count) of a Qwen2 architecture."""
    from transformers import Qwen2Config

    from s1exp.train.flops import training_flops_per_token

    config = Qwen2Config(
        hidden_size=arch.hidden_size,
        num_hidden_layers=arch.num_hidden_layers,
        num_attention_heads=arch.num_attention_heads,
        num_key_value_heads=arch.num_key_value_heads,
        intermediate_size=arch.intermediate_size,
        vocab_size=arch.vocab_size,
        tie_word_embeddings=arch.tie_word_embeddings,
        max_position_embeddings=arch.max_position_embeddings,
        head_dim=arch.head_size,
    )
    return training_flops_per_token(config, seq_len).total


def anchor_architecture() -> Architecture:
    """Qwen2.5-32B-Instruct as conf/model/ describes it (one source for the planner and here)."""
    model = OmegaConf.load(CONF / "model" / f"{ANCHOR.model}.yaml")
    return Architecture(**OmegaConf.to_container(model.architecture, resolve=True))


def anchor_mfu(tokens_per_example: float) -> float:
    """The MFU at which the paper's s1K run takes exactly its 26 minutes on 16 H100."""
    length = min(tokens_per_example, ANCHOR.block_size)
    flops = (
        ANCHOR.epochs
        * ANCHOR.examples
        * length
        * flops_per_token(anchor_architecture(), round(length))
    )
    return flops / (ANCHOR.minutes * 60 * ANCHOR.gpus * ANCHOR.peak_tflops * 1e12)


def training_examples(cfg: DictConfig, chosen: HoursSettings) -> int:
    """selection.size, or the whole pool for selection=full (rows the config knows)."""
    if chosen.examples is not None:
        return int(chosen.examples)
    if cfg.selection.name != "full":
        return int(cfg.selection.size)
    rows = POOL_ROWS.get(cfg.data.name) or OmegaConf.select(cfg, "data.pool.size")
    if rows is None:
        raise ConfigError(
            f"selection=full trains on the whole data={cfg.data.name} pool, whose size the "
            "planner does not know; pass --examples N"
        )
    return int(rows)


def train_hours(cfg: DictConfig, chosen: HoursSettings) -> TrainHours | None:
    """GPU-hours of the train stage; None for train=none or a model without an architecture."""
    arch, setup = architecture(cfg), train_setup(cfg)
    if arch is None or setup is None:
        return None
    length = min(chosen.tokens_per_example, setup.block_size)
    return TrainHours(
        examples=training_examples(cfg, chosen),
        epochs=int(cfg.train.epochs),
        tokens_per_example=length,
        flops_per_token=flops_per_token(arch, round(length)),
        gpus=setup.gpus,
        peak_flops=float(cfg.gpu.bf16_tflops) * 1e12,
        mfu=anchor_mfu(chosen.tokens_per_example),
    )


# -- evaluation ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class BenchmarkLoad:
    name: str
    questions: int
    samples: tuple[int, int]  # per question: typical, at most
    thinking: tuple[int, int]  # tokens per sample: typical, at most

    def tokens(self, bound: int) -> int:
        """Thinking tokens the benchmark decodes (bound 0: typical, 1: at most)."""
        return self.questions * self.samples[bound] * self.thinking[bound]


# the method's class name -> samples per question (typical, at most)
SAMPLES: dict[str, Callable[[DictConfig], tuple[int, int]]] = {
    "MajorityVoting": lambda m: (int(m.n), int(m.n)),
    "RejectionSampling": lambda m: (1, int(m.max_tries)),
}


def _method_kind(method: DictConfig) -> str:
    return str(method.get("_target_", "")).rsplit(".", 1)[-1]


def samples_per_question(method: DictConfig) -> tuple[int, int]:
    return SAMPLES.get(_method_kind(method), lambda m: (1, 1))(method)


# the forced variants' own limit per method class (TCC + BF: the instructed tokens; SCC + BF: the
# steps at the tokens per step Table 3's Control holds it to)
FORCED_LIMIT: dict[str, Callable[[DictConfig], int]] = {
    "TokenConditional": lambda m: int(m.tokens),
    "StepConditional": lambda m: int(m.steps) * int(m.tokens_per_step),
}


def thinking_limit(cfg: DictConfig) -> int:
    """Most thinking tokens one sample may spend: the cap, or a forced method's own limit if
    lower; `auto`: the model's max length (the prompt's share is left in: an upper bound)."""
    cap = cfg.budget.cap
    limit = int(cfg.model.max_length) if cap == "auto" else int(cap)
    forced = FORCED_LIMIT.get(_method_kind(cfg.method)) if cfg.method.get("force") else None
    return min(limit, forced(cfg.method)) if forced else limit


def benchmark_questions(cfg: DictConfig, name: str) -> int:
    size = OmegaConf.select(cfg, f"benchmark.{name}.size") or QUESTIONS.get(name)
    if size is None:
        raise ConfigError(
            f"benchmark {name!r}: the planner does not know its number of questions; set "
            f"benchmark.{name}.size"
        )
    return int(size)


def benchmark_loads(cfg: DictConfig) -> list[BenchmarkLoad]:
    limit, samples = thinking_limit(cfg), samples_per_question(cfg.method)
    return [
        BenchmarkLoad(
            name,
            benchmark_questions(cfg, name),
            samples,
            (min(limit, TYPICAL_THINKING.get(name, limit)), limit),
        )
        for name in cfg.benchmark
    ]


@dataclass(frozen=True)
class Decoder:
    """One engine replica as the decode-rate model sees it."""

    weight_bytes: float  # per GPU
    kv_bytes_per_token: float  # per GPU
    kv_cache_bytes: float  # per GPU, what the engine leaves for the KV cache
    max_num_seqs: int
    tp: int
    bandwidth: float  # bytes/s per GPU actually attained


def decoder(cfg: DictConfig, arch: Architecture, chosen: HoursSettings) -> Decoder:
    """The replica the config runs: vLLM's resolved GPU settings, or transformers on one GPU."""
    if is_vllm(cfg):
        engine = engine_setup(cfg)
        dtype, tp, seqs = engine.dtype, engine.tensor_parallel_size, engine.max_num_seqs
        kv_cache = vllm_memory(arch, engine, cfg.gpu.memory_gib)["kv_cache"]
    else:
        dtype, tp, seqs = (
            str(cfg.engine.get("dtype", "float32")),
            1,
            int(cfg.engine.get("batch_size", 1)),
        )
        kv_cache = cfg.gpu.memory_gib * 2**30 - arch.params * DTYPE_BYTES[dtype]
    return Decoder(
        weight_bytes=arch.params * DTYPE_BYTES[dtype] / tp,
        kv_bytes_per_token=kv_bytes_per_token(arch, dtype, tp),
        kv_cache_bytes=max(0.0, kv_cache),
        max_num_seqs=seqs,
        tp=tp,
        bandwidth=hbm_bytes_per_s(cfg, chosen) * chosen.decode_efficiency,
    )


def hbm_bytes_per_s(cfg: DictConfig, chosen: HoursSettings) -> float:
    if chosen.hbm_tb_s is not None:
        return chosen.hbm_tb_s * 1e12
    name = str(cfg.gpu.name)
    for pattern, tb_s in HBM_TB_S:
        if re.search(pattern, name, flags=re.IGNORECASE):
            return tb_s * 1e12
    raise ConfigError(
        f"gpu.name={name!r}: no HBM bandwidth known (known: {[p for p, _ in HBM_TB_S]}); pass "
        "--hbm-tb-s with the datasheet's value"
    )


def decode_rate(d: Decoder, sequences: int, length: int) -> float:
    """Tokens/s of one replica decoding `sequences` sequences of `length` thinking tokens: a
    step reads the weights once and every running sequence's KV cache (mean context length/2);
    as many sequences run at once as max_num_seqs and the KV cache allow."""
    fit = max(1, int(d.kv_cache_bytes // (d.kv_bytes_per_token * length)))
    batch = max(1, min(sequences, d.max_num_seqs, fit))
    step_bytes = d.weight_bytes + batch * (length / 2) * d.kv_bytes_per_token
    return batch * d.bandwidth / step_bytes


@dataclass(frozen=True)
class EvalHours:
    loads: list[BenchmarkLoad]
    tp: int
    wall: tuple[float, float]  # hours: typical, at most
    rates: tuple[float, float]  # tokens/s of the replica on the first benchmark
    measured: bool  # the rate is a measured --decode-tokens-per-s, not the model's

    @property
    def gpu_hours(self) -> tuple[float, float]:
        return self.wall[0] * self.tp, self.wall[1] * self.tp


def eval_hours(cfg: DictConfig, chosen: HoursSettings) -> EvalHours | None:
    """GPU-hours of the evaluate stage (one replica, its tensor-parallel GPUs); None without an
    architecture to plan from."""
    arch = architecture(cfg)
    if arch is None:
        return None
    d, loads = decoder(cfg, arch, chosen), benchmark_loads(cfg)
    wall, rates = [0.0, 0.0], [0.0, 0.0]
    for bound in (0, 1):
        for load in loads:
            sequences = load.questions * load.samples[bound]
            rate = chosen.decode_tokens_per_s or decode_rate(d, sequences, load.thinking[bound])
            rates[bound] = rates[bound] or rate
            wall[bound] += load.tokens(bound) / rate / SECONDS_PER_HOUR
    measured = chosen.decode_tokens_per_s is not None
    return EvalHours(loads, d.tp, (wall[0], wall[1]), (rates[0], rates[1]), measured)


# -- the planner's section -----------------------------------------------------------------------
def _train_lines(cfg: DictConfig, t: TrainHours) -> list[str]:
    return [
        f"  training: {t.tokens / 1e6:,.1f} M tokens ({t.epochs} epochs x {t.examples:,} "
        f"examples x {t.tokens_per_example:,.0f} tokens, block {int(cfg.train.block_size):,}), "
        f"{t.flops:.3g} FLOPs",
        f"    at MFU {t.mfu:.1%} (the paper's s1K run: {ANCHOR.minutes:g} min on "
        f"{ANCHOR.gpus} H100) on {t.gpus} x {cfg.gpu.name}: {t.wall_hours * 60:,.1f} min wall, "
        f"{t.gpu_hours:,.2f} GPU-hours",
    ]


def _eval_lines(cfg: DictConfig, e: EvalHours, chosen: HoursSettings, held: int) -> list[str]:
    source = (
        "measured rate (--decode-tokens-per-s)"
        if e.measured
        else f"memory-bound decode at {chosen.decode_efficiency:.0%} of "
        f"{hbm_bytes_per_s(cfg, chosen) / 1e12:g} TB/s per GPU"
    )
    lines = [
        f"  evaluation: one replica on {e.tp} GPU(s), {source}; "
        f"{e.rates[0]:,.0f} tok/s typical, {e.rates[1]:,.0f} at most ({e.loads[0].name})",
        f"    {'benchmark':<14}{'questions':>10}{'samples':>14}{'thinking tokens/sample':>28}",
    ]
    for b in e.loads:
        samples = f"{b.samples[0]} / {b.samples[1]}"
        thinking = f"{b.thinking[0]:,} / {b.thinking[1]:,}"
        lines.append(f"    {b.name:<14}{b.questions:>10}{samples:>14}{thinking:>28}")
    typical, most = e.gpu_hours
    lines.append(
        f"    typical: {e.wall[0] * 60:,.1f} min wall, {typical:,.2f} GPU-hours; at most: "
        f"{e.wall[1] * 60:,.1f} min wall, {most:,.2f} GPU-hours"
    )
    if held > e.tp:
        lines.append(
            f"    a job that trains first holds its {held} GPUs while it evaluates: "
            f"{e.wall[0] * held:,.2f} (at most {e.wall[1] * held:,.2f}) GPU-hours held"
        )
    return lines


def hours_report(cfg: DictConfig, chosen: HoursSettings | None = None) -> str:
    """The planner's GPU-hours section for one job's config."""
    chosen = chosen or settings(cfg)
    out = ["GPU-hours (estimates; s1exp/planning/hours.py says how and from what)"]
    setup = train_setup(cfg)
    train = train_hours(cfg, chosen) if trains_on_gpu(cfg, cuda=True) else None
    if train is not None:
        out += _train_lines(cfg, train)
    elif setup is not None:
        out.append(f"  training: on CPU (train.accelerator={cfg.train.accelerator}): no GPU-hours")
    evaluation = eval_hours(cfg, chosen)
    if evaluation is None:
        return "\n".join(out + [f"  model={cfg.model.name}: no architecture to plan from"])
    out += _eval_lines(cfg, evaluation, chosen, train.gpus if train else evaluation.tp)
    trained = train.gpu_hours if train else 0.0
    held = train.gpus if train else evaluation.tp
    typical, most = (trained + wall * held for wall in evaluation.wall)
    out.append(
        f"  total held: {typical:,.2f} GPU-hours typical, {most:,.2f} at most "
        f"(training {trained:,.2f}; evaluation on {held} GPU(s))"
    )
    price = OmegaConf.select(cfg, "gpu.usd_per_gpu_hour")  # s1exp/cost.py's price, where set
    if isinstance(price, int | float) and not isinstance(price, bool):
        out.append(
            f"  at ${price:g} per GPU-hour (gpu.usd_per_gpu_hour): ${typical * price:,.2f} "
            f"typical, ${most * price:,.2f} at most"
        )
    return "\n".join(out)
