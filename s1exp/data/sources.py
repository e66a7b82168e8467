"""Pool sources (`conf/data/*.yaml`): the published s1 pools, local files and the toy world.

Every source reads records and maps them onto the pool schema through one column map per
published schema (FORMATS). The value conversions handle the traps of S1_DATA section 6 in one
place: list-wrapped versus plain-string trajectories, Python-repr metadata, "Yes"/"No" grades,
and None kept apart from False. A schema check names the row and field of the first missing or
mistyped value, and `data.pool.columns` remaps a field onto another column.
"""

from __future__ import annotations

import ast
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from s1exp.data import toy
from s1exp.data.schema import POOL_FIELDS, PoolRow
from s1exp.errors import ConfigError, brief

# Pool field -> column, per published schema (S1_DATA section 1). Fields a schema lacks are left
# for the featurize stage to compute.
S1K_COLUMNS = {
    "question": "question",
    "solution": "solution",
    "thinking": "thinking_trajectories",
    "attempt": "attempt",
    "source": "source_type",
    "cot_type": "cot_type",
    "metadata": "metadata",
}
FORMATS: dict[str, dict[str, str]] = {
    # simplescaling/s1K and simplescaling/data_ablation_full59K: 8 columns, list[str] traces.
    "s1k": S1K_COLUMNS,
    # simplescaling/s1K-1.1: the DeepSeek-R1 traces and Claude's grade of them; point the three
    # deepseek_* columns at gemini_* for the Gemini traces.
    "s1k_1.1": {
        **S1K_COLUMNS,
        "thinking": "deepseek_thinking_trajectory",
        "attempt": "deepseek_attempt",
        "teacher_correct": "deepseek_grade",
    },
    # qfq/train_featurized: qfq/train plus the notebook's features (traces joined separately).
    "featurized59k": {
        **S1K_COLUMNS,
        "domain": "domain",
        "teacher_correct": "isgeminicorrect",
        "base_small_correct": "isqwen7bcorrect",
        "base_large_correct": "isqwen32bcorrect",
        "thinking_tokens": "gemini_length",
    },
    # s1exp's own schema (the toy world, an exported pool).
    "pool": {f: f for f in POOL_FIELDS},
}
REQUIRED = ("question", "solution", "thinking", "attempt", "source")  # a column must exist
NOT_NULL = ("question", "source")  # and these must have a value in every row


def _unwrap(value: Any) -> Any:
    """One intermediate s1K-1.1 commit typed every deepseek_* column as a 1-element list."""
    if isinstance(value, list | tuple) and len(value) == 1:
        return value[0]
    return value


def _text(value: Any) -> str | None:
    value = _unwrap(value)
    if value is None or isinstance(value, str):
        return value
    raise TypeError("a string or null")


def _trajectory(value: Any) -> str | None:
    """list[str] in s1K/59K, str in s1K-1.1 (joining a str would split every character)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return "\n".join(value)  # as s1's tokenization joins thinking_trajectories
    raise TypeError("a string, a list of strings or null")


def _flag(value: Any) -> bool | None:
    """Booleans, or Claude's "Yes"/"No" grades; None stays None (undefined is not False)."""
    value = _unwrap(value)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("yes", "no"):
        return value.strip().lower() == "yes"
    raise TypeError('true/false, "Yes"/"No" or null')


def _count(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return int(value)
    raise TypeError("an integer or null")


def _metadata(value: Any) -> Any:
    """A Python repr of the source's leftover fields (not JSON): literal_eval, else kept as text."""
    if isinstance(value, str):
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return value
    return value


def _identifier(value: Any) -> str:
    if isinstance(value, str | int) and not isinstance(value, bool):
        return str(value)
    raise TypeError("a string or integer")


CONVERT = {
    "id": _identifier,
    "question": _text,
    "solution": _text,
    "thinking": _trajectory,
    "attempt": _text,
    "source": _text,
    "answer": _text,
    "cot_type": _text,
    "metadata": _metadata,
    "teacher_correct": _flag,
    "domain": _text,
    "thinking_tokens": _count,
    "base_small_correct": _flag,
    "base_large_correct": _flag,
}


def column_map(format: str, columns: Mapping[str, str] | None) -> dict[str, str]:
    """The format's columns with `data.pool.columns` overrides (a null value unmaps a field)."""
    if format not in FORMATS:
        raise ConfigError(f"data.pool.format={format!r} is not one of {sorted(FORMATS)}")
    merged = dict(FORMATS[format])
    for field, column in (columns or {}).items():
        if field not in CONVERT:
            raise ConfigError(
                f"data.pool.columns.{field}: {field!r} is not a pool field; fields are "
                f"{sorted(CONVERT)}"
            )
        if column is None:
            merged.pop(field, None)
        else:
            merged[field] = str(column)
    return merged


def detect_format(available: Iterable[str]) -> str:
    """The schema a file is in (`data.pool.format: auto`): the one whose columns it has most of,
    required columns first; the error names what the closest schema still lacks."""
    have = set(available)

    def missing(name: str, fields: Iterable[str]) -> list[str]:
        return [f for f in fields if f in FORMATS[name] and FORMATS[name][f] not in have]

    def score(name: str) -> tuple[int, int, int]:
        mapped = FORMATS[name].values()
        return (
            len(missing(name, REQUIRED)),
            sum(c not in have for c in mapped),
            -sum(c in have for c in mapped),
        )

    best = min(("featurized59k", "s1k_1.1", "s1k", "pool"), key=score)
    lacking = missing(best, REQUIRED)
    if lacking:
        fixes = ", ".join(
            f"data.pool.columns.{f}=<column> (no {FORMATS[best][f]!r})" for f in lacking
        )
        raise ConfigError(
            f"data.pool.format=auto: the columns {sorted(have)} are closest to the {best!r} "
            f"schema, which also needs {fixes}; or set data.pool.format"
        )
    return best


def to_pool_rows(
    records: Iterable[Mapping[str, Any]],
    columns: Mapping[str, str],
    available: Iterable[str],
    where: str,
    id_prefix: str,
    overrides: Mapping[str, str] | None = None,
    lines: Sequence[int] | None = None,
) -> list[PoolRow]:
    """Map records onto the pool schema, checking every value; `where` names the dataset and
    `lines` each record's line in a JSONL file, so an error points at the line to fix."""
    have = set(available)

    def at(i: int) -> str:
        return f"row {i} (line {lines[i]})" if lines is not None else f"row {i}"

    for field, column in (overrides or {}).items():
        if column is not None and column not in have:
            raise ConfigError(
                f"data.pool.columns.{field}={column!r}: {where} has no such column (columns: "
                f"{sorted(have)})"
            )
    for field in REQUIRED:
        column = columns.get(field)
        if column is None or column not in have:
            raise ConfigError(
                f"{where} has no column {column!r} for pool field {field!r} (columns: "
                f"{sorted(have)}); map it with data.pool.columns.{field}=<column>"
            )
    present = {f: c for f, c in columns.items() if c in have}
    rows: list[PoolRow] = []
    for i, record in enumerate(records):
        row: dict[str, Any] = {}
        for field, column in present.items():
            if column not in record:
                raise ConfigError(
                    f"{where}, {at(i)}: column {column!r} (pool field {field!r}) is missing; "
                    f"add it to that row or map data.pool.columns.{field} to another column"
                )
            value = record[column]
            if value is None and field in NOT_NULL:
                raise ConfigError(f"{where}, {at(i)}: {field!r} (column {column!r}) is null")
            try:
                row[field] = CONVERT[field](value)
            except TypeError as error:
                raise ConfigError(
                    f"{where}, {at(i)}: {field!r} (column {column!r}) must be {error}, got "
                    f"{type(value).__name__} {str(value)[:40]!r}"
                ) from None
        row.setdefault("id", f"{id_prefix}-{i}")
        rows.append(row)  # type: ignore[arg-type]
    first_row: dict[str, int] = {}
    for i, r in enumerate(rows):
        j = first_row.setdefault(r["id"], i)
        if j != i:
            raise ConfigError(
                f"{where}, {at(i)}: id {r['id']!r} repeats {at(j)}; map data.pool.columns.id to "
                f"a unique column"
            )
    return rows


def read_records(
    path: Path, field: str = "data.pool.path"
) -> tuple[list[dict[str, Any]], list[str]]:
    """Records and column names of a JSONL or Parquet file (`field`: the setting that named it)."""
    records, columns, _ = read_numbered_records(path, field)
    return records, columns


def read_numbered_records(
    path: Path, field: str = "data.pool.path"
) -> tuple[list[dict[str, Any]], list[str], list[int] | None]:
    """read_records plus each record's line number in a JSONL file (None for Parquet)."""
    if not path.is_file():
        raise ConfigError(f"{field}={str(path)!r} is not a file")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        return table.to_pylist(), list(table.column_names), None
    records: list[dict[str, Any]] = []
    lines: list[int] = []
    with path.open() as f:
        for line_no, line in enumerate(f, 1):
            if line.strip():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    raise ConfigError(
                        f"{field}: line {line_no} of {path} is not JSON (column {error.colno}: "
                        f"{error.msg}); fix or remove that line"
                    ) from None
                if not isinstance(record, dict):
                    raise ConfigError(f"{field}: line {line_no} of {path} is not a JSON object")
                records.append(record)
                lines.append(line_no)
    columns = sorted({k for r in records for k in r})
    return records, columns, lines


def local_pool(
    path: str, format: str = "auto", columns: Mapping[str, str] | None = None, **_: Any
) -> list[PoolRow]:
    """A pool in a JSONL or Parquet file, in any of the published schemas or s1exp's own."""
    file = Path(path).expanduser()
    records, available, lines = read_numbered_records(file)
    name = detect_format(available) if format == "auto" else format
    mapping = column_map(name, columns)
    return to_pool_rows(records, mapping, available, str(file), file.stem, columns, lines)


def hub_pool(
    path: str,
    split: str,
    format: str,
    columns: Mapping[str, str] | None = None,
    name: str | None = None,
    revision: str | None = None,
    traces: Mapping[str, Any] | None = None,
    **_: Any,
) -> list[PoolRow]:
    """A published pool on the Hugging Face hub. `traces` joins the teacher traces of another
    dataset by exact question text, for a featurized pool that carries none (qfq/train_featurized).
    """
    from datasets import load_dataset

    try:
        dataset = load_dataset(path, name, split=split, revision=revision)
    except Exception as error:  # offline, gated, misspelt id
        raise ConfigError(
            f"data.pool.path={path!r}: cannot load split {split!r} ({brief(error)}); check "
            f"access or use data=local"
        ) from error
    records, available = list(dataset), list(dataset.column_names)
    mapping = column_map(format, columns)
    if traces:
        records, available = join_traces(records, available, mapping, traces)
    return to_pool_rows(records, mapping, available, path, path.rsplit("/", 1)[-1], columns)


def join_traces(
    records: list[dict[str, Any]],
    available: list[str],
    mapping: Mapping[str, str],
    traces: Mapping[str, Any],
) -> tuple[list[dict[str, Any]], list[str]]:
    """Add the trace and attempt columns of `traces.path` to rows with the same question."""
    from datasets import load_dataset

    split = traces.get("split", "train")
    try:
        other = load_dataset(traces["path"], split=split)
    except Exception as error:  # offline, gated, misspelt id: as hub_pool's own load
        raise ConfigError(
            f"data.pool.traces.path={traces['path']!r}: cannot load split {split!r} "
            f"({brief(error)}); check access or point data.pool.traces at a reachable copy"
        ) from error
    by_question = {}
    for r in other:
        by_question.setdefault(r["question"], r)
    wanted = [mapping["thinking"], mapping["attempt"]]
    joined = []
    for r in records:
        match = by_question.get(r[mapping["question"]], {})
        joined.append(dict(r) | {c: match.get(c) for c in wanted})
    return joined, sorted(set(available) | set(wanted))


def toy_pool(
    size: int, seed: int, flawed_fraction: float, teacher: str = "gemini", **_: Any
) -> list[PoolRow]:
    """The embedded toy world: a seeded stand-in with the featurized pool's schema; `teacher`
    picks its trace source (s1exp.data.toy.TEACHERS)."""
    rows = toy.make_pool(size=size, seed=seed, flawed_fraction=flawed_fraction, teacher=teacher)
    available = rows[0].keys() if rows else POOL_FIELDS
    return to_pool_rows(rows, column_map("pool", None), available, "the toy pool", "toy")
