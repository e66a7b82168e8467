"""Artifacts are published atomically, built once, and reused."""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from s1exp.store import COMPLETE_MARKER, ArtifactStore, config_key


def test_key_depends_on_content_only():
    a = OmegaConf.create({"x": 1, "y": [1, 2]})
    assert config_key(a) == config_key({"y": [1, 2], "x": 1})
    assert config_key(a) != config_key({"x": 2, "y": [1, 2]})


def test_build_once_then_reuse(tmp_path: Path):
    store = ArtifactStore(tmp_path)
    calls = []

    def build(out: Path) -> None:
        calls.append(out)
        (out / "data.txt").write_text("hello")

    first = store.get_or_build("k", "abc", build)
    second = store.get_or_build("k", "abc", build)
    assert first.built and not second.built and len(calls) == 1
    assert (second.path / "data.txt").read_text() == "hello"
    assert (second.path / COMPLETE_MARKER).is_file()


def test_failed_build_leaves_nothing(tmp_path: Path):
    store = ArtifactStore(tmp_path)

    def broken(out: Path) -> None:
        (out / "half.txt").write_text("partial")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        store.get_or_build("k", "abc", broken)
    assert not store.exists("k", "abc")
    leftovers = [p.name for p in (tmp_path / "k").iterdir() if not p.name.endswith(".lock")]
    assert leftovers == []


def _slow_build(root: str, log: str) -> None:
    def build(out: Path) -> None:
        with open(log, "a") as f:
            f.write("built\n")
        time.sleep(1.0)
        (out / "x").write_text("1")

    ArtifactStore(root).get_or_build("k", "same", build)


def test_concurrent_jobs_build_once(tmp_path: Path):
    log = tmp_path / "log.txt"
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(target=_slow_build, args=(str(tmp_path / "s"), str(log))) for _ in range(3)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert log.read_text().count("built") == 1
    assert ArtifactStore(tmp_path / "s").exists("k", "same")
