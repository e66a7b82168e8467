"""The evaluate stage: put every benchmark question through the test-time method and grade it.

One call evaluates several benchmarks with one engine (a 32B model loads once), each into its own
artifact folder: a benchmark added to a list later reuses the ones already evaluated.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig

from s1exp.evaluate.benchmarks import load_benchmark
from s1exp.evaluate.metrics import summarize, vote
from s1exp.models import loading
from s1exp.progress import ProgressLine
from s1exp.store import Journal, write_json_atomic, write_jsonl_atomic

log = logging.getLogger(__name__)
SAMPLES_SO_FAR = "records.jsonl"  # in a benchmark's journal folder: records of finished questions


def method_for(cfg: DictConfig, benchmark: Any) -> Any:
    """The test-time method; `answer_max_tokens: null` takes the benchmark's own limit."""
    if cfg.method.get("answer_max_tokens") is None:
        return instantiate(cfg.method, answer_max_tokens=benchmark.answer_max_tokens)
    return instantiate(cfg.method)


@dataclass
class Planned:
    """One benchmark of the call, read and prompted before the model loads."""

    name: str
    benchmark: Any
    method: Any
    items: list[Any]
    prompts: list[list[int]]


def evaluate(
    cfg: DictConfig, model_path: str, outs: dict[str, Path], journals: dict[str, Path]
) -> dict[str, dict]:
    """Evaluate each benchmark `name` of cfg.benchmark into outs[name] (samples.jsonl,
    metrics.json) with one engine; returns the metrics per benchmark. Every benchmark's settings
    and file are checked before the model loads.

    Records are saved into journals[name] every `evaluate.questions_per_save` questions, and a
    call finds there what a killed one finished: it generates only the rest."""
    trust = loading.trusts_remote_code(cfg.model)  # the evaluated model's (conf/model/*.yaml)
    tokenizer = loading.tokenizer(model_path, trust_remote_code=trust)
    plans = []
    for name in outs:
        benchmark = load_benchmark(name, cfg.benchmark[name])
        method = method_for(cfg, benchmark)
        method.prepare(tokenizer)
        items = benchmark.items()
        prompts = [method.prompt(tokenizer, item["question"]) for item in items]
        method.set_batch(prompts)  # the benchmark is one batch, whatever the journal's groups
        plans.append(Planned(name, benchmark, method, items, prompts))
    start = time.perf_counter()
    engine = instantiate(cfg.engine, model_path=model_path, trust_remote_code=trust)
    load_seconds = time.perf_counter() - start
    per_save = int(cfg.evaluate.questions_per_save)
    return {
        plan.name: evaluate_benchmark(
            plan, tokenizer, engine, load_seconds, outs[plan.name], journals[plan.name], per_save
        )
        for plan in plans
    }


def generate_records(
    plan: Planned, tokenizer: Any, engine: Any, journal: Journal, per_save: int
) -> list[dict]:
    """The method's record for every question, `per_save` questions at a time, each group
    journaled before the next starts; questions the journal holds are not generated again."""
    records = list(journal.rows)
    total = len(plan.prompts)
    if records:
        log.info("%s: %d/%d questions were done by a killed run; going on", plan.name,
                 len(records), total)  # fmt: skip
    line = ProgressLine(f"{plan.name}: generate", total, "questions")
    tokens = 0
    line.update(len(records), force=True)
    start = time.perf_counter()
    for first in range(len(records), total, max(1, per_save)):
        group = plan.method.run(engine, tokenizer, plan.prompts[first : first + per_save])
        journal.append(group)
        records.extend(group)
        tokens += sum(r["generated_tokens"] for r in group)
        rate = tokens / max(time.perf_counter() - start, 1e-9)
        line.update(len(records), f"{rate:,.0f} tokens/s")
    return records


def evaluate_benchmark(
    plan: Planned,
    tokenizer: Any,
    engine: Any,
    load_seconds: float,
    out_dir: Path,
    journal_dir: Path,
    per_save: int,
) -> dict[str, float]:
    start = time.perf_counter()
    journal = Journal(journal_dir / SAMPLES_SO_FAR)
    resumed = len(journal.rows)
    records = generate_records(plan, tokenizer, engine, journal, per_save)
    seconds = time.perf_counter() - start
    samples = [
        {
            "benchmark": plan.name,
            "id": item["id"],
            "question": item["question"],
            "gold": item["answer"],
            **({"choices": item["choices"]} if "choices" in item else {}),
            "prompt": tokenizer.decode(prompt),
        }
        | record
        | grade(plan.benchmark, item["answer"], record)
        for item, prompt, record in zip(plan.items, plan.prompts, records, strict=True)
    ]
    metrics = summarize(samples)
    tokens = sum(s["generated_tokens"] for s in samples)
    metrics |= {
        "engine_load_seconds": load_seconds,  # one load, shared by the call's benchmarks
        "generate_seconds": seconds,  # this process's share when it resumed
        "generated_tokens_per_s": tokens / max(seconds, 1e-9),
        "resumed_questions": resumed,
    }
    write_jsonl_atomic(out_dir / "samples.jsonl", samples)
    write_json_atomic(out_dir / "metrics.json", metrics)
    write_json_atomic(out_dir / "process.json", {"pid": os.getpid()})  # which process evaluated
    return metrics


def grade(benchmark: Any, gold: str, record: dict) -> dict[str, Any]:
    """The sample's extracted answer and correctness; parallel samples are graded one by one and
    the majority answer is the answer. `unparsed` flags an answer nothing could be read from."""
    if "votes" in record:
        graded = vote([benchmark.grade(text, gold) for text in record["votes"]], record["vote_ks"])
        graded["scores"] = record.get("scores", {}) | graded["scores"]
    else:
        predicted, correct = benchmark.grade(record["answer_text"], gold)
        graded = {"predicted": predicted, "correct": correct}
    return graded | {"unparsed": graded["predicted"] is None}
