"""Do greedy tokens depend on the batch size? The measurement behind the eval key (s1exp/keys.py).

    python bench/batch_numerics.py --model ~/.cache/s1exp/base_models/<key>   # a toy base model
    python bench/batch_numerics.py --random-qwen05b                           # Qwen2.5-0.5B shape

Runs greedy budget forcing (2x "Wait") on the same toy prompts with the transformers engine at
several batch sizes and dtypes, and counts, per setting, the prompts whose tokens equal those of
batch size 1 in the same dtype (and where the first difference is). On CUDA, batch shape picks
the GEMM kernels and their reduction order, so bf16 argmax ties can flip; on CPUs fp32 is
expected to be batch-invariant. Prints one line per setting, then a summary line.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def run(model: str, prompts_n: int, batch_sizes: list[int], dtypes: list[str], cap: int) -> None:
    import torch
    from transformers import AutoTokenizer

    from bench.gpu_strategies import first_divergence
    from s1exp.data import toy
    from s1exp.data.format import prompt_ids
    from s1exp.infer.budget_forcing import BudgetForcing
    from s1exp.infer.hf_engine import TransformersEngine

    device = "cuda" if torch.cuda.is_available() else "cpu"
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    print(f"device {name} | torch {torch.__version__} | model {model}", flush=True)
    tok = AutoTokenizer.from_pretrained(model)
    items = toy.make_benchmark(size=prompts_n, seed=7)
    prompts = [prompt_ids(tok, item["question"]) for item in items]
    max_len = max(len(p) for p in prompts) + cap + 64
    changed = 0
    for dtype in dtypes:
        baseline: list[list[int]] | None = None
        for batch in batch_sizes:
            engine = TransformersEngine(model, dtype=dtype, max_model_len=max_len,
                                        batch_size=batch, device=device)  # fmt: skip
            method = BudgetForcing(cap=cap, ignore=2, extrapolation="Wait", max_length=max_len,
                                   answer_max_tokens=16, mode="inflight")  # fmt: skip
            start = time.perf_counter()
            tokens = [r["token_ids"] for r in method.run(engine, tok, prompts)]
            seconds = time.perf_counter() - start
            del engine
            if baseline is None:
                baseline = tokens
            diverged = [first_divergence(t, b) for t, b in zip(tokens, baseline, strict=True)]
            differ = [d for d in diverged if d is not None]
            changed += bool(differ) and batch != batch_sizes[0]
            print(
                f"{dtype:>9} batch {batch:>3}: {len(prompts) - len(differ):>3}/{len(prompts)} "
                f"identical to batch {batch_sizes[0]} | first differences at tokens "
                f"{sorted(differ)[:8]} | {sum(map(len, tokens))} tokens in {seconds:.1f} s",
                flush=True,
            )
    verdict = "changes greedy tokens" if changed else "did not change any greedy token"
    print(f"summary: on {name}, the batch size {verdict} ({changed} setting(s) differ)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a saved model folder with the toy ChatML tokenizer")
    parser.add_argument(
        "--random-qwen05b",
        action="store_true",
        help="a randomly initialised model with Qwen2.5-0.5B's shape (bf16)",
    )
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--batch-sizes", default="1,8,64")
    parser.add_argument("--dtypes", default="bfloat16,float32")
    parser.add_argument("--cap", type=int, default=96)
    a = parser.parse_args()
    if not a.model and not a.random_qwen05b:
        parser.error("give --model PATH or --random-qwen05b")
    sizes = [int(b) for b in a.batch_sizes.split(",")]
    dtypes = a.dtypes.split(",")
    if a.model:
        run(a.model, a.prompts, sizes, dtypes, a.cap)
        return
    from bench.gpu_strategies import QWEN25_05B, build_base_model

    with tempfile.TemporaryDirectory(prefix="batch-numerics-") as tmp:
        build_base_model(Path(tmp), QWEN25_05B | {"max_position_embeddings": 2048})
        run(tmp, a.prompts, sizes, dtypes, a.cap)


if __name__ == "__main__":
    main()
