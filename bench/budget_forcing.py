"""Budget forcing vs plain generation, same tokens, one run: `python bench/budget_forcing.py`.

For each engine, driver and number of ignores (--ignores, default 2, 6 and 0 "Wait"): 32 toy
prompts are run (b) with budget forcing, then (a) as plain generation asked for exactly as many
tokens per prompt as (b) generated (stops suppressed, so the totals match). Prints tokens/s of
both and the ratio b/a (medians of --repeats alternating timed runs): the cost of the extra
rounds. Drivers: inflight (forced tokens inside the decode loop; on vLLM a logits processor),
barrier_free (vLLM: a new request per segment, no round barrier), resubmit (a batch of new
requests per round, as the s1 code). Goals: inflight >= 0.95 on vLLM with 2x "Wait" and no slower
than barrier_free at 0 ignores; >= 0.8 on transformers. For resubmit it also splits the extra
time into requests + prefills (the extra segments replayed with max_tokens=1) and round barriers.

--model defaults to the newest trained toy model in the artifact store (run the main job first).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from statistics import median

from transformers import AutoTokenizer

from s1exp import quiet
from s1exp.data import toy
from s1exp.infer.budget_forcing import BudgetForcing
from s1exp.infer.engine import SamplingParams

DRIVERS = ("inflight", "barrier_free", "resubmit")


def newest_model(store: Path) -> str:
    models = [p for p in (store / "model").glob("*") if (p / "_COMPLETE.json").exists()]
    if not models:
        raise SystemExit(f"no trained model under {store}/model: run `python -m s1exp` first")
    return str(max(models, key=lambda p: p.stat().st_mtime))


def make_engine(name: str, model: str, max_len: int):
    if name == "vllm":
        from s1exp.infer.vllm_engine import VLLMEngine

        block = os.environ.get("S1EXP_BENCH_VLLM_BLOCK_SIZE")
        return VLLMEngine(model, max_model_len=max_len, block_size=int(block) if block else None)
    from s1exp.infer.hf_engine import TransformersEngine

    return TransformersEngine(model, max_model_len=max_len, batch_size=32)


class Recorder:
    """Wraps an engine's generate to count what re-submission costs: requests and prefixes."""

    def __init__(self, engine) -> None:
        self.engine, self.contexts, self.cached = engine, [], 0

    def generate(self, prompts, params):
        outs = self.engine.generate(prompts, params)
        self.contexts += prompts
        self.cached += sum(o.extra.get("cached_tokens", 0) for o in outs)
        return outs


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench(engine, tok, prompts, max_len: int, mode: str, ignore: int, repeats: int) -> dict:
    method = BudgetForcing(
        cap=200, ignore=ignore, extrapolation="Wait", max_length=max_len, answer_max_tokens=32,
        mode=mode,
    )  # fmt: skip
    method.run(engine, tok, prompts[:4])  # warm-up: compile/allocate outside the timing
    records = method.run(engine, tok, prompts)
    # Decoded tokens per prompt: thinking + answer (+1 per stop token the engine produced).
    counts = [len(r["token_ids"]) for r in records]
    plain = [SamplingParams(max_tokens=n, min_tokens=n) for n in counts]
    outs = engine.generate(prompts, plain)
    assert [len(o.token_ids) for o in outs] == counts, "plain generation must match token counts"
    forced_s, plain_s = [], []
    for _ in range(repeats):  # alternate, so drift in machine speed hits both alike
        forced_s.append(timed(lambda: method.run(engine, tok, prompts)))
        plain_s.append(timed(lambda: engine.generate(prompts, plain)))
    forced, plain_time = median(forced_s), median(plain_s)
    total = sum(counts)
    result = {
        "tokens": total,
        "plain_tps": total / plain_time,
        "forced_tps": total / forced,
        "ratio": plain_time / forced,
        "ignores": sum(r["ignores_used"] for r in records),
    }
    if mode == "resubmit":  # where the extra time goes: one request + prefill per segment
        recorder = Recorder(engine)
        method.run(recorder, tok, prompts)
        one = [SamplingParams(max_tokens=1)] * len(recorder.contexts)
        replay = timed(lambda: engine.generate(recorder.contexts, one))
        submitted = sum(len(c) for c in recorder.contexts)
        result |= {
            "requests": len(recorder.contexts),
            "cached": recorder.cached / submitted,
            "prefill_s": replay,
            "forced_s": forced,
            "plain_s": plain_time,
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None)
    parser.add_argument("--engines", default="transformers,vllm")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs; medians reported")
    parser.add_argument("--ignores", default="2,6,0", help='numbers of "Wait" to bench')
    args = parser.parse_args()
    quiet.configure()  # no weight-loading bars between the table's rows
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    model = args.model or newest_model(Path(os.environ.get("S1EXP_STORE", "outputs/store")))
    tok = AutoTokenizer.from_pretrained(model)
    questions = toy.make_benchmark(size=args.prompts, seed=4321)
    method = BudgetForcing()
    prompts = [method.prompt(tok, q["question"]) for q in questions]
    max_len = 512
    print(
        f"model: {model}\n{'engine':<14}{'wait':>4}  {'mode':<14}{'tokens':>8}"
        f"{'plain tok/s':>13}{'forced tok/s':>14}{'ratio':>7}{'ignores':>9}"
    )
    for name in args.engines.split(","):
        try:
            engine = make_engine(name, model, max_len)
        except ImportError as err:
            print(f"{name:<14}skipped: {err}")
            continue
        modes = [m for m in DRIVERS if m == "resubmit" or hasattr(engine, f"run_{m}")]
        for ignore in (int(n) for n in args.ignores.split(",")):
            for mode in modes:
                r = bench(engine, tok, prompts, max_len, mode, ignore, args.repeats)
                print(
                    f"{name:<14}{ignore:>4}  {mode:<14}{r['tokens']:>8}{r['plain_tps']:>13.0f}"
                    f"{r['forced_tps']:>14.0f}{r['ratio']:>7.2f}{r['ignores']:>9}"
                )
                if "requests" in r:
                    print(
                        f"{'':<20}resubmit: {r['requests']} requests for {len(prompts)} prompts, "
                        f"{r['cached']:.0%} of their prompt tokens from the prefix cache; forced "
                        f"{r['forced_s']:.2f} s = plain {r['plain_s']:.2f} s + requests and "
                        f"prefills {r['prefill_s']:.2f} s (replayed with max_tokens=1) + round "
                        f"barriers {r['forced_s'] - r['plain_s'] - r['prefill_s']:.2f} s"
                    )
        if hasattr(engine, "close"):
            engine.close()


if __name__ == "__main__":
    main()
