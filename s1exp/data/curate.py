"""The two data stages of the pipeline: features (load, decontaminate, featurize) and selection.

Features: the configured pool is loaded and checked, questions sharing a word 8-gram with a
configured benchmark question and exact duplicates are dropped (S1_DATA section 3), and the
featurize stage fills what the pool lacks. Selection: the strategy runs on the featurized pool
and a report (funnel, domain and length histograms) is written beside the selected rows. Both
publish through the artifact store, so a failed or killed stage leaves nothing half written.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig

from s1exp.data.decontaminate import decontaminate, drop_exact_duplicates
from s1exp.data.featurize import Featurizer, Progress
from s1exp.data.report import format_funnel, write_selection_report
from s1exp.data.schema import FEATURE_FIELDS, PoolRow
from s1exp.errors import ConfigError, brief
from s1exp.evaluate.benchmarks import load_benchmark
from s1exp.store import read_json, read_jsonl, write_json_atomic, write_jsonl_atomic

log = logging.getLogger(__name__)

POOL_FILE = "pool.jsonl"
SELECTION_FILE = "selection.jsonl"


def benchmark_questions(cfg: DictConfig) -> list[str]:
    """Questions of every benchmark in `data.decontaminate.benchmarks`."""
    questions: list[str] = []
    for name, bench_cfg in (cfg.data.decontaminate.get("benchmarks") or {}).items():
        try:
            items = load_benchmark(name, bench_cfg).items()
        except Exception as error:  # offline hub, gated dataset, missing file
            raise ConfigError(
                f"data.decontaminate.benchmarks.{name}: cannot load its questions "
                f"({brief(error)}); fix access or remove it with "
                f"~data.decontaminate.benchmarks.{name}"
            ) from error
        log.info("decontaminate against %s: %d questions", name, len(items))
        questions.extend(item["question"] for item in items)
    return questions


def build_features(cfg: DictConfig, out: Path, progress_path: Path) -> None:
    """Write the decontaminated, featurized pool (pool.jsonl) and its funnel into `out`."""
    rows: list[PoolRow] = instantiate(cfg.data.pool)
    funnel = {"pool": len(rows)}
    settings = cfg.data.decontaminate
    rows, contaminated = decontaminate(rows, benchmark_questions(cfg), n=int(settings.ngram))
    funnel["decontaminated"] = len(rows)
    duplicates: list[Any] = []
    if settings.get("dedupe", True):
        rows, duplicates = drop_exact_duplicates(rows)
        funnel["deduplicated"] = len(rows)
    progress_path.parent.mkdir(parents=True, exist_ok=True)
    progress = Progress(progress_path)
    if progress.resumed:
        log.info("featurize: resuming with %d finished values", progress.resumed)
    featurizer = Featurizer(cfg, progress)
    featurizer(rows)
    summary = {
        "pid": os.getpid(),  # which process featurized (s1exp.isolated)
        "funnel": funnel,
        "computed": featurizer.computed,
        "resumed": progress.resumed,
        "missing": {f: sum(r.get(f) is None for r in rows) for f in FEATURE_FIELDS},
    }
    write_jsonl_atomic(out / POOL_FILE, rows)
    write_jsonl_atomic(out / "dropped.jsonl", [*contaminated, *duplicates])
    write_json_atomic(out / "features.json", summary)
    # Every computed value with the model replies behind it, for audit; then nothing to resume.
    log_file = out / "featurize_log.jsonl"
    if progress_path.is_file():
        shutil.copyfile(progress_path, log_file)
    else:
        log_file.touch()
    progress_path.unlink(missing_ok=True)


def build_selection(cfg: DictConfig, features: Path, out: Path) -> dict[str, Any]:
    """Select from the featurized pool; write the rows, the funnel and the report into `out`."""
    rows = read_jsonl(features / POOL_FILE)
    upstream = read_json(features / "features.json")["funnel"]
    strategy = instantiate(cfg.selection.strategy)
    selected = strategy(rows, cfg.selection.size, random.Random(cfg.selection.seed))
    funnel = upstream | {k: v for k, v in selected.funnel.items() if k != "pool"}
    log.info("selection funnel:\n%s", format_funnel(funnel))
    write_jsonl_atomic(out / SELECTION_FILE, selected.rows)
    write_json_atomic(out / "funnel.json", funnel)
    return write_selection_report(selected.rows, funnel, out)
