"""Ranks of a distributed fit: rank 0 owns the stages and artifacts; helper ranks join its fit.

Lightning's local DDP launcher re-runs the command for ranks > 0, and on SLURM every task runs the
job, so helper ranks go through the pipeline too. They must not wait on the model artifact's lock
(rank 0 holds it while it trains and needs them in its process group), so rank 0 tells them
through a signal file in the job's run dir whether it trains (join) or reuses the model (leave).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from s1exp.store import write_json_atomic

RANK_VARIABLES = ("RANK", "LOCAL_RANK", "SLURM_PROCID")  # the order Lightning reads them in


def process_rank() -> int:
    """This process's global rank when a distributed launcher started it (0 otherwise)."""
    for name in RANK_VARIABLES:
        if name in os.environ:
            return int(os.environ[name])
    return 0


class FitSignal:
    """Rank 0's decision for one model in one job: "train", "reused" or "failed"."""

    def __init__(self, run_dir: Path, model_key: str) -> None:
        job = os.environ.get("SLURM_JOB_ID", "local")  # a re-used run dir gets a fresh signal
        self.path = run_dir / f".s1exp-fit-{model_key}-{job}"

    def send(self, decision: str) -> None:
        write_json_atomic(self.path, decision)

    def wait(self, poll_seconds: float = 0.5) -> str:
        """Block until rank 0 has decided (it may first wait for another job's build)."""
        while not self.path.exists():
            time.sleep(poll_seconds)
        decision = json.loads(self.path.read_text())
        if decision == "failed":
            raise RuntimeError(f"rank 0 failed before training (signal {self.path})")
        return decision
