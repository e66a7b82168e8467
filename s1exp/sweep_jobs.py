"""What both launchers need to run a sweep for days: skipping jobs an earlier run finished, and a
progress line per job.

Re-running an interrupted multirun into the same folder (`hydra.sweep.dir=<its folder>`) runs only
what is missing: a job whose folder holds a results.json written for the same overrides is not run
again (its result is kept as it is and logged to W&B no second time); a job that was killed has no
results.json and runs, reusing every stage artifact it finished (s1exp.store) and resuming its
training and evaluation from what it saved (s1exp.train.resume, s1exp.evaluate.run).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from omegaconf import DictConfig

from s1exp.progress import clock
from s1exp.secrets import redact
from s1exp.store import read_json

log = logging.getLogger("s1exp.sweep")

RESULTS_FILE = "results.json"


def job_dir(sweep_config: DictConfig) -> Path:
    """The job's output folder, as Hydra's run_job will compute it for this job config."""
    HydraConfig.instance().set_config(sweep_config)
    return Path(str(sweep_config.hydra.sweep.dir)) / str(sweep_config.hydra.sweep.subdir)


def mean_accuracy(results: dict) -> float:
    """What a job returns to the sweeper: its benchmarks' mean accuracy (nan without one)."""
    accuracies = [m["accuracy"] for m in results.get("metrics", {}).values()]
    return sum(accuracies) / len(accuracies) if accuracies else math.nan


def finished_job(sweep_config: DictConfig, overrides: Sequence[str]) -> JobReturn | None:
    """The job's result if an earlier run of this sweep finished it with the same overrides."""
    folder = job_dir(sweep_config)
    results = read_json(folder / RESULTS_FILE)
    if not results or results.get("overrides") != redact(list(overrides)):
        return None
    done = JobReturn(
        overrides=list(overrides),
        cfg=sweep_config,
        hydra_cfg=sweep_config,
        working_dir=str(folder),
        task_name=str(sweep_config.hydra.job.name),
        status=JobStatus.COMPLETED,
    )
    done.return_value = mean_accuracy(results)
    return done


class SweepProgress:
    """`sweep: job k/n <overrides>` as each job starts and `sweep: k/n jobs done` with an ETA
    from the jobs run so far (jobs an earlier run finished count as done, not in the rate)."""

    def __init__(self, first: int, count: int) -> None:
        """Jobs `first` .. `first + count - 1` of a sweep; Hydra numbers jobs from 0, and a
        sweeper that launches in batches starts a later batch at `first` > 0."""
        self.total = first + count
        self.done = first
        self.ran = 0
        self.started = time.perf_counter()

    def skipped(self, idx: int, overrides: Sequence[str]) -> None:
        self.done += 1
        log.info("sweep: job %d/%d finished in an earlier run, result kept: %s", idx + 1,
                 self.total, describe(overrides))  # fmt: skip

    def starting(self, idx: int, overrides: Sequence[str]) -> None:
        log.info("sweep: job %d/%d: %s", idx + 1, self.total, describe(overrides))

    def finished(self) -> None:
        self.done += 1
        self.ran += 1
        left = self.total - self.done
        elapsed = time.perf_counter() - self.started
        eta = f" · ETA {clock(elapsed / self.ran * left)}" if left else ""
        log.info("sweep: %d/%d jobs done%s", self.done, self.total, eta)


def describe(overrides: Sequence[str]) -> str:
    return " ".join(redact(filter_overrides(list(overrides)))) or "(no overrides)"
