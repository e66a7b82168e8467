"""Content-addressed artifacts: built once, published atomically, shared safely between jobs.

Every stage output lives at `<root>/<kind>/<key>` where key hashes exactly the config it depends
on. A builder writes into a private temporary folder that is renamed into place only when complete,
so readers never see half-written artifacts; a file lock per key makes concurrent jobs (a multirun,
SLURM array tasks) wait for the first builder instead of building twice.

Faults a sweep meets on a shared cluster (README "Faults"):
- a builder killed with -9 leaves its `.tmp-<key>-*` folder and its lock file: the kernel drops
  the lock (flock) with the process, and the next builder removes the folder;
- a file of a published artifact that changed on disk (truncated copy, bit rot) no longer matches
  the size and sha256 recorded at publication: the artifact is set aside and rebuilt;
- a store that cannot be written (full disk, quota, read-only or missing path) is a ConfigError
  naming `paths.store`, and nothing is published.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from omegaconf import DictConfig, ListConfig, OmegaConf

from s1exp.errors import ConfigError
from s1exp.secrets import redact

log = logging.getLogger(__name__)

COMPLETE_MARKER = "_COMPLETE.json"
LOCK_NOTICE_SECONDS = 600.0  # a job waiting for another's build says so again this often
# Errors that mean the store's disk refuses writes, not a bug: reported as a ConfigError.
WRITE_ERRNOS = frozenset(
    {
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EFBIG,
        errno.EACCES,
        errno.EPERM,
        errno.EROFS,
        errno.ENOENT,
        errno.ENOTDIR,
    }
)
# Writers in Rust (safetensors, tokenizers) report the OS error only in their message.
RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")
_verified: set[tuple[str, int, int]] = set()  # (file, size, mtime_ns) hashed by this process
_warned: set[str] = set()  # corrupted artifact folders this process has reported


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

    def intact(self, kind: str, key: str) -> bool:
        """Published and every file still matches its recorded size and sha256; a corrupted
        artifact is logged (once, by the job that finds it) and reported as absent."""
        if not self.exists(kind, key):
            return False
        problem = corruption(self.path(kind, key))
        if problem and str(self.path(kind, key)) not in _warned:
            _warned.add(str(self.path(kind, key)))
            log.warning("store: %s/%s is corrupted (%s); rebuilding it", kind, key, problem)
        return problem is None

    def check_writable(self) -> None:
        """Refuse a store this process cannot create or write, before any stage runs."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".probe-{uuid.uuid4().hex[:8]}"
            probe.write_text("ok")
            probe.unlink()
        except OSError as error:
            raise store_error(self.root, error) from error

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
        if all(self.intact(kind, key) for key in keys.values()):
            return {name: Artifact(self.path(kind, key), key, False) for name, key in keys.items()}
        with ExitStack() as locks:
            try:
                self.path(kind, "x").parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise store_error(self.root, error) from error
            for key in sorted(set(keys.values())):
                locks.enter_context(self._lock(kind, key))
            # another job may have built some while we waited
            missing = {n: k for n, k in keys.items() if not self.intact(kind, k)}
            for key in set(missing.values()):
                self._remove_leftovers(kind, key)
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
            except Exception as error:
                refused = write_refused(error, self.root)
                if refused is not None:
                    raise store_error(self.root, refused) from error
                raise
            finally:
                for tmp in tmps.values():
                    if tmp.exists():
                        shutil.rmtree(tmp, ignore_errors=True)
        return {
            name: Artifact(self.path(kind, key), key, built=name in missing)
            for name, key in keys.items()
        }

    @contextmanager
    def _lock(self, kind: str, key: str) -> Iterator[None]:
        """The key's build lock; a job that has to wait says for what, and who holds it."""
        path = self.path(kind, key)
        lock = FileLock(str(path) + ".lock")
        owner = path.with_name(f"{key}.owner")
        waited_since = None
        while True:
            try:
                lock.acquire(timeout=0 if waited_since is None else LOCK_NOTICE_SECONDS)
                break
            except Timeout:
                holder = read_json(owner, {}) if owner.is_file() else {}
                log.info(
                    "store: waiting for %s/%s, being built by pid %s on %s%s",
                    kind,
                    key,
                    holder.get("pid", "?"),
                    holder.get("host", "?"),
                    f" ({time.time() - waited_since:.0f} s so far)" if waited_since else "",
                )
                waited_since = waited_since or time.time()
        try:
            write_json_atomic(owner, {"pid": os.getpid(), "host": socket.gethostname()})
            yield
        finally:
            owner.unlink(missing_ok=True)
            lock.release()

    def _remove_leftovers(self, kind: str, key: str) -> None:
        """Before building `key`: folders of its builders that died (we hold its lock, so none
        is alive) and a copy at its place that is incomplete or failed its checksums."""
        for leftover in self.path(kind, key).parent.glob(f".tmp-{key}-*"):
            log.info("store: removing %s, left by a killed build", leftover.name)
            shutil.rmtree(leftover, ignore_errors=True)
        final = self.path(kind, key)
        if final.exists():  # moved aside first: readers never see it half deleted
            aside = final.with_name(f".tmp-{key}-{uuid.uuid4().hex[:8]}")
            os.replace(final, aside)
            shutil.rmtree(aside, ignore_errors=True)

    def _publish(self, kind: str, key: str, tmp: Path, describe: Any) -> None:
        """Record every file's size and sha256, mark the build complete, rename it into place."""
        marker = {"kind": kind, "key": key, "config": redact(describe), "files": checksums(tmp)}
        write_json_atomic(tmp / COMPLETE_MARKER, marker)
        final = self.path(kind, key)
        if final.exists():  # a corrupted copy another job set aside too late
            shutil.rmtree(final)
        os.replace(tmp, final)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def checksums(folder: Path) -> dict[str, dict[str, Any]]:
    """{relative path: {bytes, sha256}} of every file under `folder`."""
    return {
        str(file.relative_to(folder)): {"bytes": file.stat().st_size, "sha256": sha256_file(file)}
        for file in sorted(folder.rglob("*"))
        if file.is_file() and file.name != COMPLETE_MARKER
    }


def corruption(folder: Path) -> str | None:
    """What differs from the checksums recorded at publication (None: intact). Each file is
    hashed once per process while its size and mtime stay the same; artifacts published before
    checksums were recorded are trusted."""
    try:
        recorded = json.loads((folder / COMPLETE_MARKER).read_text()).get("files")
    except (OSError, ValueError) as error:
        return f"{COMPLETE_MARKER} unreadable: {error}"
    for name, expected in (recorded or {}).items():
        file = folder / name
        try:
            stat = file.stat()
        except OSError:
            return f"{name} is missing"
        if stat.st_size != expected["bytes"]:
            return f"{name} has {stat.st_size} bytes, {expected['bytes']} were published"
        seen = (str(file), stat.st_size, stat.st_mtime_ns)
        if seen in _verified:
            continue
        if sha256_file(file) != expected["sha256"]:
            return f"{name} does not match its sha256"
        _verified.add(seen)
    return None


def write_refused(error: BaseException, root: Path) -> OSError | None:
    """The OSError behind a write the store's disk refused (full, quota, read-only, missing
    folder), else None. Errors about files outside the store (a model being read) are not it."""
    if isinstance(error, OSError):
        paths = [str(p) for p in (error.filename, error.filename2) if p]
        if error.errno in WRITE_ERRNOS and all(p.startswith(str(root)) for p in paths):
            return error
        return None
    match = RUST_OS_ERROR.search(str(error))
    if match and int(match.group(1)) in WRITE_ERRNOS:
        code = int(match.group(1))
        return OSError(code, os.strerror(code))
    return None


def store_error(root: Path, error: OSError) -> ConfigError:
    """A write the store's disk refused, as the one-line error that names the fix."""
    reason = error.strerror or str(error)
    where = error.filename or root
    return ConfigError(
        f"paths.store={root}: cannot write {where} ({reason}); free space there or set "
        "paths.store (or S1EXP_STORE) to a writable folder with room for the artifacts"
    )


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


class Journal:
    """An append-only JSON-lines file that survives kill -9: each append is flushed and fsynced
    before the work goes on, and a last line a kill cut short is dropped when it is read back.
    `rows` holds what earlier processes appended."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[Any] = []
        if not path.is_file():
            return
        text = path.read_text()
        if text and not text.endswith("\n"):  # a kill cut the last line: drop its fragment
            text = text[: text.rfind("\n") + 1]
            path.write_text(text)
        self.rows = [json.loads(line) for line in text.splitlines() if line.strip()]

    def append(self, rows: list[Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            for row in rows:
                f.write(json.dumps(row, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.rows.extend(rows)


def read_json(path: Path, default: Any = None) -> Any:
    """A JSON file's value, or `default` when there is no such file."""
    return json.loads(path.read_text()) if path.is_file() else default


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open() as f:
        return [json.loads(line) for line in f if line.strip()]
