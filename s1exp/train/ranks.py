"""Ranks of a distributed fit: rank 0 owns the stages and artifacts; helper ranks join its fit.

Lightning's local DDP launcher re-runs the command for ranks > 0, and on SLURM every task runs the
job, so helper ranks go through the pipeline too. They must not wait on the model artifact's lock
(rank 0 holds it while it trains and needs them in its process group), so rank 0 tells them
through a signal file in the job's run dir whether it trains (join) or reuses the model (leave).
While it decides (it may wait hours on another job's build) rank 0 keeps a heartbeat file fresh,
so a helper whose rank 0 died (killed, out of memory) stops with an error instead of polling
forever.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from s1exp.store import write_json_atomic


def process_rank() -> int:
    """This process's global rank, 0 when no distributed launcher started it.

    RANK (torchrun, Lightning's children) is global. SLURM_PROCID is global for each task of an
    srun/sbatch step with several tasks. LOCAL_RANK is only unique within a node: it comes last
    and is offset by the node's rank, so task 0 of node 1 is never mistaken for rank 0.
    """
    if "RANK" in os.environ:
        return int(os.environ["RANK"])
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in os.environ:
        return int(os.environ["SLURM_PROCID"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    node = int(os.environ.get("NODE_RANK", os.environ.get("GROUP_RANK", "0")))
    return node * max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))) + local


class RankZeroGone(RuntimeError):
    """Rank 0 stopped (failed, or its heartbeat went stale) before telling helpers what to do."""


class FitSignal:
    """Rank 0's decision for one model in one job: "train", "reused" or "failed"."""

    def __init__(
        self, run_dir: Path, model_key: str, beat_seconds: float = 5.0, stale_after: float = 300.0
    ) -> None:
        job = os.environ.get("SLURM_JOB_ID", "local")  # a re-used run dir gets a fresh signal
        self.path = run_dir / f".s1exp-fit-{model_key}-{job}"
        self.heartbeat_path = self.path.with_name(self.path.name + ".alive")
        self.beat_seconds = beat_seconds
        self.stale_after = stale_after

    def send(self, decision: str) -> None:
        write_json_atomic(self.path, decision)

    @contextmanager
    def beating(self) -> Iterator[None]:
        """Rank 0: keep the heartbeat fresh until the block ends; send "failed" if it raises
        before a decision was sent."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.is_set():
                self.heartbeat_path.touch()
                stop.wait(self.beat_seconds)

        self.heartbeat_path.parent.mkdir(parents=True, exist_ok=True)
        self.heartbeat_path.touch()
        thread = threading.Thread(target=beat, name="s1exp-rank0-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        except BaseException:
            if not self.path.exists():
                self.send("failed")
            raise
        finally:
            stop.set()
            thread.join()

    def _heartbeat_age(self) -> float | None:
        try:
            return time.time() - self.heartbeat_path.stat().st_mtime
        except FileNotFoundError:
            return None

    def wait(self, poll_seconds: float = 0.5) -> str:
        """Helper ranks: block until rank 0 has decided; raise RankZeroGone if it died first."""
        start = time.monotonic()
        while not self.path.exists():
            age = self._heartbeat_age()
            waited = time.monotonic() - start
            if (age is None and waited > self.stale_after) or (
                age is not None and age > self.stale_after
            ):
                raise RankZeroGone(
                    f"rank 0 gave no sign of life for {self.stale_after:.0f} s before deciding "
                    f"whether to train (heartbeat {self.heartbeat_path}); see rank 0's log"
                )
            time.sleep(poll_seconds)
        decision = json.loads(self.path.read_text())
        if decision == "failed":
            raise RankZeroGone(f"rank 0 failed before training (signal {self.path}); see its log")
        return decision
