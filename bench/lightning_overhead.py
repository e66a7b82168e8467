"""Lightning's SFT step time against a plain PyTorch loop on the same tiny model and data.

    python bench/lightning_overhead.py [--steps 20 --warmup 4 --repeats 5 --profile]

Lightning side: `SFTRecipe.fit` exactly as the pipeline runs it (SFTModule + SFTDataModule through
`lightning.Trainer`; progress bar, logger, checkpointing and model summary off), timed by a
callback. Plain side: a nanoGPT-style loop over the same DataLoader with the same model, AdamW,
LambdaLR(`warmup_cosine`) schedule and norm clipping. Both in fp32 on CPU, same number of steps,
one process, repeats alternating (Lightning, plain, Lightning, ...) so machine load hits both.

Each side is timed from the start of step `warmup` (its batch already fetched) to the end of the
last step, so later batch fetches, the optimizer, clipping and scheduler steps and every hook are
inside; model loading, Trainer set-up and the checkpoint export are not. Prints the median
step times and throughput ratio (goal: Lightning >= 0.95x the plain loop). `--profile` adds a
cProfile of one Lightning fit's steps, the functions with the most own time, to see where it goes.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import lightning as L  # noqa: E402
import torch  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

from s1exp.data.format import IGNORE_INDEX, TrainingExample  # noqa: E402
from s1exp.models import tiny, toy_base  # noqa: E402
from s1exp.train.datamodule import SFTDataModule  # noqa: E402
from s1exp.train.module import warmup_cosine  # noqa: E402
from s1exp.train.recipe import SFTRecipe  # noqa: E402


class StepTimer(L.Callback):
    """Seconds from the start of batch `warmup` to the end of the last batch, optional profile."""

    def __init__(self, warmup: int, profiler: cProfile.Profile | None = None) -> None:
        self.warmup, self.profiler = warmup, profiler
        self.start = self.end = float("nan")
        self.steps = 0

    def on_train_batch_start(self, trainer: L.Trainer, module: Any, batch: Any, idx: int) -> None:
        if idx == self.warmup:
            self.start = time.perf_counter()
            if self.profiler is not None:
                self.profiler.enable()

    def on_train_batch_end(self, trainer: L.Trainer, module: Any, *args: Any) -> None:
        idx = args[-1]
        if idx >= self.warmup:
            self.steps += 1
            self.end = time.perf_counter()

    def on_train_end(self, trainer: L.Trainer, module: Any) -> None:
        if self.profiler is not None:
            self.profiler.disable()

    @property
    def seconds_per_step(self) -> float:
        return (self.end - self.start) / self.steps


def build(folder: Path, n: int, length: int) -> list[TrainingExample]:
    """The toy world's tiny Qwen2 (saved to `folder`) and `n` full-length SFT examples."""
    import random

    tok = toy_base.pretrain_tokenizer(size=256)
    tiny.save(tiny.build_model(tok), tok, folder)
    rng = random.Random(0)
    examples = []
    for _ in range(n):
        ids = [rng.randrange(10, len(tok)) for _ in range(length)]
        examples.append(TrainingExample(ids, [IGNORE_INDEX] * (length // 4) + ids[length // 4 :]))
    return examples


def recipe(steps: int, micro_batch: int, block: int) -> SFTRecipe:
    """train=toy's recipe (fp32, CPU, one process), one epoch of `steps` optimizer steps."""
    return SFTRecipe(epochs=1, lr=1e-3, warmup_ratio=0.05, betas=(0.9, 0.95), weight_decay=1e-4,
                     global_batch_size=micro_batch, micro_batch_size=micro_batch,
                     block_size=block, precision="32-true", dtype="float32",
                     gradient_clip_val=1.0, accelerator="cpu", devices=1)  # fmt: skip


def lightning_step(
    r: SFTRecipe, model: Path, examples: list, out: Path, warmup: int, profile: bool = False
) -> tuple[float, cProfile.Profile | None]:
    """Seconds per steady step of one `SFTRecipe.fit` (and its profile when asked)."""
    profiler = cProfile.Profile() if profile else None
    timer = StepTimer(warmup, profiler)
    r.fit(str(model), examples, out, strategy="auto", callbacks=[timer])
    return timer.seconds_per_step, profiler


def plain_step(r: SFTRecipe, model_path: Path, examples: list, warmup: int) -> float:
    """Seconds per steady step of a plain loop with the recipe's optimizer, schedule, clipping."""
    L.seed_everything(r.seed, workers=True, verbose=False)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    model.config.use_cache = False
    model.train()
    pad_id = model.config.pad_token_id
    loader = SFTDataModule(examples, r.micro_batch_size, pad_id).train_dataloader()
    params = list(model.parameters())
    optimizer = torch.optim.AdamW(params, lr=r.lr, betas=tuple(r.betas),
                                  weight_decay=r.weight_decay)  # fmt: skip
    total = len(loader)
    warm = max(1, round(r.warmup_ratio * total))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step, total, warm)
    )
    start = float("nan")
    for i, batch in enumerate(loader):
        if i == warmup:
            start = time.perf_counter()
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, r.gradient_clip_val)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
    return (time.perf_counter() - start) / (total - warmup)


# Where a Lightning step's time goes: (label, file suffix, function name), cumulative per call
# tree. Not disjoint: training_step holds the forward and two self.log calls; self.log counts
# every call (in training_step and in on_before_optimizer_step).
BREAKDOWN = (
    ("SFTModule.training_step (forward + 2 logs)", "s1exp/train/module.py", "training_step"),
    ("backward", "torch/_tensor.py", "backward"),
    ("gradient clipping (Lightning)", "plugins/precision/precision.py", "_clip_gradients"),
    ("AdamW update", "torch/optim/adam.py", "adam"),
    ("LR scheduler step", "loops/training_epoch_loop.py", "update_lr_schedulers"),
    ("SFTModule.on_before_optimizer_step (grad norm + 2 logs)", "s1exp/train/module.py",
     "on_before_optimizer_step"),
    ("LightningModule.log (all 4 calls)", "lightning/pytorch/core/module.py", "log"),
    ("data fetch (next batch)", "loops/fetchers.py", "__next__"),
)  # fmt: skip


def breakdown(profiler: cProfile.Profile, steps: int) -> str:
    """Milliseconds per step of the BREAKDOWN entries and of the whole profiled span."""
    stats = pstats.Stats(profiler).stats  # (file, line, name) -> (cc, nc, tt, ct, callers)
    lines = []
    for label, suffix, name in BREAKDOWN:
        found = [v[3] for (f, _, n), v in stats.items() if f.endswith(suffix) and n == name]
        cum = max(found, default=0.0)  # the outermost of nested same-named functions
        lines.append(f"  {label:<58}{cum / steps * 1e3:8.2f} ms/step")
    total = sum(v[2] for v in stats.values())
    lines.append(f"  {'everything profiled':<58}{total / steps * 1e3:8.2f} ms/step")
    return "\n".join(lines)


def top_functions(profiler: cProfile.Profile, n: int = 15) -> str:
    """The profile's functions with the most own time (tottime), as pstats prints them."""
    buf = io.StringIO()
    pstats.Stats(profiler, stream=buf).sort_stats("tottime").print_stats(n)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--steps", type=int, default=20, help="optimizer steps per run")
    p.add_argument("--warmup", type=int, default=4, help="steps left out of the timing")
    p.add_argument("--repeats", type=int, default=5, help="runs of each side, alternating")
    p.add_argument("--micro-batch", type=int, default=8)
    p.add_argument("--length", type=int, default=128, help="tokens per example")
    # One thread: on a shared machine, OpenMP threads that wait on busy cores make step times
    # erratic (measured here: 2 threads 1.2-2.9 s per step, 1 thread 0.26 s).
    p.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    p.add_argument("--profile", action="store_true", help="cProfile one more Lightning run")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    work = Path(tempfile.mkdtemp(prefix="s1exp-lightning-overhead-"))
    examples = build(work / "model", a.steps * a.micro_batch, a.length)
    r = recipe(a.steps, a.micro_batch, a.length)
    lit, plain = [], []
    for i in range(a.repeats):
        lit.append(lightning_step(r, work / "model", examples, work / f"out{i}", a.warmup)[0])
        plain.append(plain_step(r, work / "model", examples, a.warmup))
    lit_s, plain_s = statistics.median(lit), statistics.median(plain)
    ratio = plain_s / lit_s  # Lightning's throughput as a share of the plain loop's
    tokens = a.micro_batch * a.length
    print(f"torch {torch.__version__}, lightning {L.__version__}, {torch.get_num_threads()} "
          f"threads | tiny Qwen2, {a.micro_batch} x {a.length} tokens/step, {a.steps} steps "
          f"({a.warmup} warm-up), {a.repeats} alternating repeats, fp32 CPU")  # fmt: skip
    print(
        f"  lightning (SFTRecipe.fit): median {lit_s * 1e3:7.1f} ms/step "
        f"({tokens / lit_s:,.0f} tok/s)  runs: {', '.join(f'{s * 1e3:.1f}' for s in lit)}"
    )
    print(
        f"  plain PyTorch loop       : median {plain_s * 1e3:7.1f} ms/step "
        f"({tokens / plain_s:,.0f} tok/s)  runs: {', '.join(f'{s * 1e3:.1f}' for s in plain)}"
    )
    verdict = "meets" if ratio >= 0.95 else "BELOW"
    print(f"  Lightning throughput = {ratio:.3f}x the plain loop's ({verdict} the 0.95x goal); "
          f"overhead {(lit_s - plain_s) * 1e3:+.1f} ms/step")  # fmt: skip
    if a.profile:
        _, prof = lightning_step(r, work / "model", examples, work / "profiled", a.warmup, True)
        steps = a.steps - a.warmup
        print(f"\ncProfile of one more Lightning fit, its {steps} steady steps (cProfile slows "
              "Python-heavy code more than kernels, so shares are upper bounds):")  # fmt: skip
        print(breakdown(prof, steps))
        print(top_functions(prof))
    shutil.rmtree(work, ignore_errors=True)
    return {"lightning_s": lit_s, "plain_s": plain_s, "ratio": ratio}


if __name__ == "__main__":
    main()
