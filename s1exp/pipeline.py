"""select -> train -> evaluate for one resolved config (DESIGN.md "The pipeline").

Each stage's artifact is addressed by a hash of exactly the config it depends on, so a sweep that
only varies test-time settings trains once and evaluates many times.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from s1exp import cost, keys, plan, preflight, quiet, secrets, track
from s1exp.data.curate import SELECTION_FILE, build_features, build_selection
from s1exp.data.format import token_ids, training_example
from s1exp.evaluate.run import evaluate
from s1exp.isolated import evaluate_in_subprocess, features_in_subprocess, isolate
from s1exp.models import loading
from s1exp.store import (
    Artifact,
    ArtifactStore,
    read_json,
    read_jsonl,
    write_json_atomic,
    write_jsonl_atomic,
)
from s1exp.train.ranks import FitSignal, process_rank

log = logging.getLogger(__name__)


def train_stage(
    cfg: DictConfig,
    recipe: Any,
    base_model: str,
    selection: Path,
    out: Path,
    run_dir: Path,
    tags: list[str],
    resume_dir: Path,
) -> None:
    remote_code = loading.trusts_remote_code(cfg.model)
    tokenizer = loading.tokenizer(base_model, trust_remote_code=remote_code)
    rows = read_jsonl(selection / SELECTION_FILE)
    trace_format = instantiate(cfg.trace_format)

    def count_tokens(text: str) -> int:
        return len(token_ids(tokenizer, text))

    examples = []
    for r in rows:
        question, thinking = trace_format(r["question"], r["thinking"], count_tokens)
        examples.append(
            training_example(tokenizer, question, thinking, r["attempt"], recipe.block_size)
        )
    truncated = sum(len(e.input_ids) >= recipe.block_size for e in examples)
    # The memory plan at the real longest sequence, before the model is loaded on any device.
    plan.check_fits(cfg, longest_example=max((len(e.input_ids) for e in examples), default=0))
    logger = track.train_logger(cfg, run_dir, tags)
    strategy = instantiate(cfg.strategy)
    try:
        metrics = recipe.fit(base_model, examples, out, strategy=strategy, logger=logger,
                             resume_dir=resume_dir, trust_remote_code=remote_code)  # fmt: skip
    finally:
        track.finish_train_logger(logger)
    write_json_atomic(
        out / "train_metrics.json", metrics | {"examples": len(examples), "truncated": truncated}
    )


def helper_rank_train(
    cfg: DictConfig,
    recipe: Any,
    store: ArtifactStore,
    sel_key: str,
    model_key: str,
    signal: FitSignal,
    run_dir: Path,
) -> None:
    """Rank > 0 of a distributed fit: wait for rank 0's decision, then train alongside it.

    Rank 0 owns the selection, the base model and the model artifact; it sends "train" only once
    the first two exist. Helper ranks train into a scratch folder that is discarded (rank 0 saves
    the model), and never evaluate (s1exp.train.ranks).
    """
    if not recipe.trains or signal.wait() != "train":
        return
    base_model = instantiate(cfg.model.base, cache_dir=cfg.paths.cache)
    with tempfile.TemporaryDirectory(prefix="s1exp-rank-") as scratch:
        selection = store.path("selection", sel_key)
        resume_dir = resume_folder(store, "model", model_key)
        train_stage(cfg, recipe, base_model, selection, Path(scratch), run_dir, [], resume_dir)


def resume_folder(store: ArtifactStore, kind: str, key: str) -> Path:
    """Where a build of (kind, key) keeps what lets a killed build go on (resume points, samples
    already generated); kept until the artifact is published, shared by every rank."""
    return store.path(kind, f".resume-{key}")


def _choices() -> dict[str, str]:
    """The axes' options (model=tiny, ...); options nested inside another group's config
    (model@featurize.difficulty.models...) belong to that group and are left out."""
    if not HydraConfig.initialized():
        return {}
    return {
        k: str(v)
        for k, v in HydraConfig.get().runtime.choices.items()
        if not k.startswith("hydra") and "@" not in k
    }


def _tags() -> list[str]:
    return [f"{k}={v}" for k, v in sorted(_choices().items())]


def _stage_record(artifact: Artifact, seconds: float) -> dict[str, Any]:
    return {
        "key": artifact.key,
        "path": str(artifact.path),
        "reused": not artifact.built,
        "seconds": seconds,
    }


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Run (or reuse) every stage and write results.json + samples.jsonl into run_dir."""
    started = time.perf_counter()  # the cost block's wall time starts here
    quiet.configure()
    preflight.check(cfg)  # settings that cannot work fail now, before anything loads
    cost.usd_per_gpu_hour(cfg)  # a bad price too, not after the run has spent its GPU-hours
    run_dir.mkdir(parents=True, exist_ok=True)
    store = ArtifactStore(Path(cfg.paths.store).expanduser().resolve())
    store.check_writable()  # a full or unwritable store fails now, not after training
    instantiate(cfg.method)  # bad test-time settings fail now, before any stage runs
    recipe = instantiate(cfg.train)
    sel_key, model_key = keys.selection_key(cfg), keys.model_key(cfg)
    signal = FitSignal(run_dir, model_key)
    if (rank := process_rank()) > 0:
        helper_rank_train(cfg, recipe, store, sel_key, model_key, signal, run_dir)
        return {"rank": rank}
    with signal.beating():  # helper ranks learn of a failure here instead of waiting forever
        stages, model_key, model_path = prepare_model(
            cfg, recipe, store, sel_key, model_key, signal, run_dir
        )
    return evaluate_and_record(cfg, store, stages, model_key, model_path, run_dir, started)


def prepare_model(
    cfg: DictConfig,
    recipe: Any,
    store: ArtifactStore,
    sel_key: str,
    model_key: str,
    signal: FitSignal,
    run_dir: Path,
) -> tuple[dict[str, Any], str, str]:
    """Rank 0's select -> base model -> train (or reuse); returns stages, model key and path."""
    tags = _tags()
    stages: dict[str, Any] = {}
    start = time.perf_counter()
    feat_key = keys.features_key(cfg)
    featurize = features_in_subprocess if isolate(cfg.featurize.isolate) else build_features
    progress = store.root / "features" / f".progress-{feat_key}.jsonl"  # survives a kill
    features = store.get_or_build(
        "features",
        feat_key,
        lambda out: featurize(cfg, out, progress),
        describe={
            "data": OmegaConf.to_container(cfg.data, resolve=True),
            "featurize": OmegaConf.to_container(cfg.featurize, resolve=True),
        },
    )
    stages["featurize"] = _stage_record(features, time.perf_counter() - start)
    stages["featurize"]["pid"] = read_json(features.path / "features.json", {}).get("pid")

    start = time.perf_counter()
    selection = store.get_or_build(
        "selection",
        sel_key,
        lambda out: build_selection(cfg, features.path, out),
        describe={"features": feat_key} | OmegaConf.to_container(cfg.selection, resolve=True),
    )
    stages["select"] = _stage_record(selection, time.perf_counter() - start)
    stages["select"]["report"] = read_json(selection.path / "report.json", {})
    if selection.built:
        track.log_selection(cfg, run_dir, stages["select"]["report"], selection.path, tags)

    start = time.perf_counter()
    base_model = instantiate(cfg.model.base, cache_dir=cfg.paths.cache)
    stages["base_model"] = {"path": base_model, "seconds": time.perf_counter() - start}

    start = time.perf_counter()
    if not recipe.trains:
        signal.send("reused")
        stages["train"] = {"key": model_key, "path": base_model, "reused": True, "seconds": 0.0}
        return stages, keys.base_model_key(cfg), base_model

    resume_dir = resume_folder(store, "model", model_key)

    def build(out: Path) -> None:
        signal.send("train")  # helper ranks join this fit
        train_stage(cfg, recipe, base_model, selection.path, out, run_dir, tags, resume_dir)

    model = store.get_or_build(
        "model",
        model_key,
        build,
        describe={
            "selection": sel_key,
            "model": OmegaConf.to_container(cfg.model),
            "train": OmegaConf.to_container(cfg.train),
            "trace_format": OmegaConf.to_container(cfg.trace_format),
        },
    )
    if not model.built:
        signal.send("reused")  # helper ranks have nothing to do
    shutil.rmtree(resume_dir, ignore_errors=True)  # the finished fit's resume points
    stages["train"] = _stage_record(model, time.perf_counter() - start)
    return stages, model_key, str(model.path)


def evaluate_and_record(
    cfg: DictConfig,
    store: ArtifactStore,
    stages: dict[str, Any],
    model_key: str,
    model_path: str,
    run_dir: Path,
    started: float,
) -> dict[str, Any]:
    """The evaluate stage for every benchmark of cfg.benchmark (in a fresh process when this one
    just trained), then results.json with the metrics per benchmark and the job's cost since
    `started` (a perf_counter reading)."""
    trained_here = not stages["train"]["reused"]
    evaluate_stage = evaluate_in_subprocess if trained_here else evaluate
    start = time.perf_counter()
    eval_keys = {name: keys.eval_key(cfg, model_key, name) for name in cfg.benchmark}
    journals = {name: resume_folder(store, "eval", key) for name, key in eval_keys.items()}
    evaluations = store.get_or_build_many(
        "eval",
        eval_keys,
        lambda outs: evaluate_stage(cfg, model_path, outs, journals),
        describe={name: {"model": model_key, "benchmark": name} for name in eval_keys},
    )
    for journal in journals.values():
        shutil.rmtree(journal, ignore_errors=True)  # the samples are in the artifacts now
    seconds = time.perf_counter() - start  # one call evaluated every benchmark it built
    benchmarks = {
        name: _stage_record(artifact, seconds) | read_json(artifact.path / "process.json", {})
        for name, artifact in evaluations.items()
    }
    stages["evaluate"] = {
        "reused": not any(a.built for a in evaluations.values()),
        "seconds": seconds,
        "benchmarks": benchmarks,  # name -> key, path, reused, pid of the evaluating process
    }
    metrics = {name: read_json(a.path / "metrics.json") for name, a in evaluations.items()}
    samples = [row for a in evaluations.values() for row in read_jsonl(a.path / "samples.jsonl")]
    write_jsonl_atomic(run_dir / "samples.jsonl", samples)
    choices = _choices()
    results = {
        "pid": os.getpid(),
        "metrics": metrics,
        "choices": choices,
        "overrides": list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else [],
        "stages": stages,
        "timings": {name: stage["seconds"] for name, stage in stages.items()},
        "cost": cost.job_cost(cfg, time.perf_counter() - started, stages),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    results["wandb_dir"] = track.log_eval(cfg, run_dir, results, samples, _tags())
    write_json_atomic(run_dir / "results.json", secrets.redact(results))  # config, overrides
    for name, m in metrics.items():
        log.info(
            "%s: accuracy %.1f%% [%.1f, %.1f] | thinking tokens %.1f",
            name,
            m["accuracy"],
            m["accuracy_ci_low"],
            m["accuracy_ci_high"],
            m["thinking_tokens"],
        )
    log.info("cost: %s", cost.describe(results["cost"]))
    log.info("run dir %s", run_dir)
    return results
