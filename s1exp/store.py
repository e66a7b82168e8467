"""Content-addressed artifacts: built once, published atomically, shared safely between jobs.

Every stage output lives at `<root>/<kind>/<key>` where key hashes exactly the config it depends
on. A builder writes into a private temporary folder that is renamed into place only when complete,
so readers never see half-written artifacts; a file lock per key makes concurrent jobs (a multirun,
SLURM array tasks) wait for the first builder instead of building twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock
from omegaconf import DictConfig, ListConfig, OmegaConf

COMPLETE_MARKER = "_COMPLETE.json"


def config_key(*parts: Any) -> str:
    """A short stable hash of config sub-trees (DictConfig, dicts, strings, numbers)."""
    plain = [
        OmegaConf.to_container(p, resolve=True) if isinstance(p, DictConfig | ListConfig) else p
        for p in parts
    ]
    blob = json.dumps(plain, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Artifact:
    """A published artifact folder and whether this call built it."""

    path: Path
    key: str
    built: bool


class ArtifactStore:
    """Folders of artifacts addressed by (kind, key) under one root."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser()

    def path(self, kind: str, key: str) -> Path:
        return self.root / kind / key

    def exists(self, kind: str, key: str) -> bool:
        return (self.path(kind, key) / COMPLETE_MARKER).is_file()

    def get_or_build(
        self,
        kind: str,
        key: str,
        build: Callable[[Path], None],
        describe: Any = None,
    ) -> Artifact:
        """Return the artifact, calling `build(tmp_dir)` first if no complete copy exists.

        `describe` (any JSON-able value, e.g. the config the key hashes) is written beside the
        artifact so a folder can be traced back to the settings that made it.
        """
        built = self.get_or_build_many(
            kind, {key: key}, lambda tmps: build(tmps[key]), {key: describe}
        )
        return built[key]

    def get_or_build_many(
        self,
        kind: str,
        keys: dict[str, str],
        build: Callable[[dict[str, Path]], None],
        describe: dict[str, Any] | None = None,
    ) -> dict[str, Artifact]:
        """Artifacts for several keys (name -> key) from one `build({name: tmp_dir})` call over
        the missing ones, so they can share a costly setup (one engine for several benchmarks).

        Locks are taken in key order, so two jobs asking for overlapping sets cannot deadlock;
        each artifact is published on its own once the build returns.
        """
        describe = describe or {}
        if all(self.exists(kind, key) for key in keys.values()):
            return {name: Artifact(self.path(kind, key), key, False) for name, key in keys.items()}
        self.path(kind, "x").parent.mkdir(parents=True, exist_ok=True)
        with ExitStack() as locks:
            for key in sorted(set(keys.values())):
                locks.enter_context(FileLock(str(self.path(kind, key)) + ".lock"))
            # another job may have built some while we waited
            missing = {n: k for n, k in keys.items() if not self.exists(kind, k)}
            tmps = {
                name: self.path(kind, f".tmp-{key}-{uuid.uuid4().hex[:8]}")
                for name, key in missing.items()
            }
            try:
                for tmp in tmps.values():
                    tmp.mkdir()
                if tmps:
                    build(tmps)
                for name, key in missing.items():
                    self._publish(kind, key, tmps[name], describe.get(name))
            finally:
                for tmp in tmps.values():
                    if tmp.exists():
                        shutil.rmtree(tmp, ignore_errors=True)
        return {
            name: Artifact(self.path(kind, key), key, built=name in missing)
            for name, key in keys.items()
        }

    def _publish(self, kind: str, key: str, tmp: Path, describe: Any) -> None:
        """Mark a finished build complete and rename it into place."""
        marker = {"kind": kind, "key": key, "config": describe}
        (tmp / COMPLETE_MARKER).write_text(json.dumps(marker, indent=2, default=str))
        final = self.path(kind, key)
        if final.exists():  # an incomplete leftover from a killed job
            shutil.rmtree(final)
        os.replace(tmp, final)


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON via a temporary sibling and rename, so readers see old or new, never half."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)


def write_jsonl_atomic(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with tmp.open("w") as f:
        for row in rows:
            f.write(json.dumps(row, default=str) + "\n")
    os.replace(tmp, path)


def read_json(path: Path, default: Any = None) -> Any:
    """A JSON file's value, or `default` when there is no such file."""
    return json.loads(path.read_text()) if path.is_file() else default


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open() as f:
        return [json.loads(line) for line in f if line.strip()]
