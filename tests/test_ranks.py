"""Which process is rank 0; helper ranks that stop when rank 0 dies instead of polling forever."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from s1exp.train.ranks import FitSignal, RankZeroGone, process_rank

RANK_VARIABLES = (
    "RANK",
    "LOCAL_RANK",
    "NODE_RANK",
    "GROUP_RANK",
    "LOCAL_WORLD_SIZE",
    "SLURM_PROCID",
    "SLURM_NTASKS",
)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch):
    for name in RANK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_no_launcher_is_rank_zero(env):
    assert process_rank() == 0


def test_slurm_task_zero_of_the_second_node_is_not_rank_zero(env):
    """srun with 16 tasks: task 8 runs on node 1 where a node-local LOCAL_RANK would read 0."""
    env.setenv("SLURM_NTASKS", "16")
    env.setenv("SLURM_PROCID", "8")
    env.setenv("LOCAL_RANK", "0")
    assert process_rank() == 8


def test_lightning_children_inside_a_one_task_slurm_job(env):
    """salloc + Lightning's own launcher: every child inherits SLURM_PROCID=0 of the one task."""
    env.setenv("SLURM_NTASKS", "1")
    env.setenv("SLURM_PROCID", "0")
    env.setenv("LOCAL_RANK", "3")
    assert process_rank() == 3


def test_local_rank_zero_of_node_one_is_not_rank_zero(env):
    env.setenv("NODE_RANK", "1")
    env.setenv("LOCAL_RANK", "0")
    assert process_rank() > 0


def test_global_rank_wins(env):
    env.setenv("RANK", "5")
    env.setenv("LOCAL_RANK", "1")
    assert process_rank() == 5


def test_helper_gets_the_decision(tmp_path: Path):
    rank0, helper = FitSignal(tmp_path, "k"), FitSignal(tmp_path, "k", stale_after=5)
    with rank0.beating():
        rank0.send("train")
    assert helper.wait(poll_seconds=0.01) == "train"


def test_rank_zero_failure_before_deciding_reaches_the_helper(tmp_path: Path):
    """An exception anywhere before the decision (selection, base model) is sent as "failed"."""
    rank0, helper = FitSignal(tmp_path, "k"), FitSignal(tmp_path, "k", stale_after=5)
    with pytest.raises(OSError), rank0.beating():
        raise OSError("disk full while selecting")
    with pytest.raises(RankZeroGone, match="failed before training"):
        helper.wait(poll_seconds=0.01)


def test_helper_stops_when_rank_zero_is_killed(tmp_path: Path):
    """kill -9 leaves no "failed" signal: the helper notices the heartbeat going stale."""
    program = (
        "import sys, time; from pathlib import Path; from s1exp.train.ranks import FitSignal\n"
        "s = FitSignal(Path(sys.argv[1]), 'k', beat_seconds=0.1)\n"
        "with s.beating(): time.sleep(600)\n"
    )
    rank0 = subprocess.Popen([sys.executable, "-c", program, str(tmp_path)])
    helper = FitSignal(tmp_path, "k", stale_after=2)
    outcome: list[BaseException] = []

    def wait() -> None:
        try:
            helper.wait(poll_seconds=0.05)
        except BaseException as err:  # noqa: BLE001 - handed to the test thread
            outcome.append(err)

    waiter = threading.Thread(target=wait)
    try:
        waiter.start()
        time.sleep(4)  # twice stale_after while rank 0 beats: the helper keeps waiting
        assert waiter.is_alive() and not outcome
        rank0.kill()
        killed = time.monotonic()
        waiter.join(timeout=10)
        assert not waiter.is_alive() and isinstance(outcome[0], RankZeroGone)
        assert "no sign of life" in str(outcome[0])
        assert time.monotonic() - killed < 5
    finally:
        rank0.kill()
        rank0.wait()


def test_helper_stops_when_rank_zero_never_starts(tmp_path: Path):
    with pytest.raises(RankZeroGone):
        FitSignal(tmp_path, "k", stale_after=0.3).wait(poll_seconds=0.05)
