"""SFT steps with each distributed strategy on a GPU, through the project's own recipe.

    python bench/gpu_strategies.py --strategies single,fsdp,deepspeed_zero3

Builds a randomly initialised model with Qwen2.5-0.5B's architecture (no download), then runs
`SFTRecipe.fit` (bf16, the paper's optimizer and schedule) with the strategies of
`conf/strategy/`, and prints tokens/s, MFU (6 x params x tokens/s over the bf16 peak) and peak
memory. Each exported checkpoint is reloaded and must score a lower loss than the initial model
on held-out batches: the strategy trained the weights and the export gathered all of them.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from transformers import AutoModelForCausalLM, Qwen2Config, Qwen2ForCausalLM

from s1exp.data.format import IGNORE_INDEX, TrainingExample
from s1exp.models import tiny
from s1exp.train.datamodule import pad_batch
from s1exp.train.recipe import SFTRecipe

ROOT = Path(__file__).resolve().parent.parent
H100_BF16_PEAK = 989e12  # dense bf16 FLOP/s of an H100 SXM (datasheet)
QWEN25_05B = {
    "hidden_size": 896,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "intermediate_size": 4864,
    "vocab_size": 151936,
    "tie_word_embeddings": True,
    "max_position_embeddings": 32768,
}


def build_model(folder: Path) -> int:
    tokenizer = tiny.build_tokenizer(["Wait, let me check: 1+2=3. think answer"] * 20)
    config = Qwen2Config(
        **QWEN25_05B, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def synthetic_examples(n: int, length: int, seed: int) -> list[TrainingExample]:
    """Learnable sequences (a repeated random motif), loss on the second half only."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        motif = [rng.randrange(10, 5000) for _ in range(64)]
        ids = (motif * (length // 64 + 1))[:length]
        out.append(TrainingExample(ids, [IGNORE_INDEX] * (length // 2) + ids[length // 2 :]))
    return out


@torch.inference_mode()
def held_out_loss(folder: Path, batches: list[dict[str, torch.Tensor]]) -> float:
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16).cuda().eval()
    losses = [model(**{k: v.cuda() for k, v in b.items()}).loss.item() for b in batches]
    del model
    torch.cuda.empty_cache()
    return sum(losses) / len(losses)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--strategies", default="single,fsdp,deepspeed_zero3")
    parser.add_argument("--examples", type=int, default=192)
    parser.add_argument("--length", type=int, default=4096)
    parser.add_argument("--micro-batch", type=int, default=4)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="s1exp-gpu-"))
    params = build_model(work / "base")
    examples = synthetic_examples(args.examples, args.length, seed=0)
    held_out = [pad_batch(synthetic_examples(2, args.length, seed=s), 0) for s in (1, 2)]
    base_loss = held_out_loss(work / "base", held_out)
    print(
        f"{torch.cuda.get_device_name()} | torch {torch.__version__} | params {params / 1e6:.0f}M"
        f" | {args.examples} x {args.length} tokens | initial held-out loss {base_loss:.3f}"
    )
    print(f"{'strategy':<17}{'tok/s':>9}{'MFU':>7}{'peak GiB':>10}{'steps':>7}{'loss after':>12}")
    for name in args.strategies.split(","):
        strategy = instantiate(OmegaConf.load(ROOT / "conf" / "strategy" / f"{name}.yaml"))
        recipe = SFTRecipe(
            epochs=1,
            lr=1e-4,
            warmup_ratio=0.05,
            betas=(0.9, 0.95),
            weight_decay=1e-4,
            global_batch_size=16,
            micro_batch_size=args.micro_batch,
            block_size=args.length,
            precision="bf16-true",
            dtype="bfloat16",
            accelerator="gpu",
            devices=1,
        )
        torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        metrics = recipe.fit(str(work / "base"), examples, work / name, strategy=strategy)
        wall = time.perf_counter() - start
        peak = torch.cuda.max_memory_allocated() / 2**30
        tps = metrics["train/steady_tokens_per_s"]  # after the first optimizer step
        loss = held_out_loss(work / name, held_out)
        print(
            f"{name:<17}{tps:>9.0f}{6 * params * tps / H100_BF16_PEAK:>7.1%}{peak:>10.1f}"
            f"{metrics['train/optimizer_steps']:>7.0f}{loss:>12.3f}   (fit wall {wall:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
