"""The evaluate stage: put every benchmark question through the test-time method and grade it."""

from __future__ import annotations

import os
import time
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig
from transformers import AutoTokenizer

from s1exp.evaluate.metrics import summarize, vote
from s1exp.store import write_json_atomic, write_jsonl_atomic


def evaluate(cfg: DictConfig, model_path: str, out_dir: Path) -> dict[str, float]:
    """Writes samples.jsonl and metrics.json into out_dir and returns the metrics."""
    benchmark = instantiate(cfg.benchmark)
    method = instantiate(cfg.method)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    method.prepare(tokenizer)  # bad settings fail here, before any model is loaded
    items = benchmark.items()
    prompts = [method.prompt(tokenizer, item["question"]) for item in items]
    start = time.perf_counter()
    engine = instantiate(cfg.engine, model_path=model_path)
    loaded = time.perf_counter()
    records = method.run(engine, tokenizer, prompts)
    generated = time.perf_counter()
    samples = []
    for item, prompt, record in zip(items, prompts, records, strict=True):
        if "votes" in record:  # parallel samples: grade each, the majority answer is the answer
            votes = [benchmark.grade(text, item["answer"]) for text in record["votes"]]
            graded = vote(votes, record["vote_ks"])
            graded["scores"] = record.get("scores", {}) | graded["scores"]
        else:
            predicted, correct = benchmark.grade(record["answer_text"], item["answer"])
            graded = {"predicted": predicted, "correct": correct}
        sample = {
            "id": item["id"],
            "question": item["question"],
            "gold": item["answer"],
            "prompt": tokenizer.decode(prompt),
        }
        samples.append(sample | record | graded)
    metrics = summarize(samples)
    tokens = sum(s["generated_tokens"] for s in samples)
    metrics |= {
        "engine_load_seconds": loaded - start,
        "generate_seconds": generated - loaded,
        "generated_tokens_per_s": tokens / max(generated - loaded, 1e-9),
    }
    write_jsonl_atomic(out_dir / "samples.jsonl", samples)
    write_json_atomic(out_dir / "metrics.json", metrics)
    write_json_atomic(out_dir / "process.json", {"pid": os.getpid()})  # which process evaluated
    return metrics
