"""Paper sheets (sweeps/*.yaml): one paper table or figure, the sweep that regenerates it, and
the paper's numbers per row, matched to sweep members by their settings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from s1exp.evaluate.scaling import TABLE3_KINDS
from s1exp.report.errors import ReportError
from s1exp.report.sweep import Member, as_text

REPO_ROOT = Path(__file__).resolve().parents[2]
NUMBER = (int, float)
NULLABLE_TEXT = (str, type(None))
# key -> (allowed types, required)
SHEET_KEYS: dict[str, tuple[tuple[type, ...], bool]] = {
    "title": ((str,), True),
    "source": ((str,), True),
    "ablation": ((str, list, type(None)), True),
    "command": ((str,), True),
    "paper_command": ((str,), True),
    "reference": (NULLABLE_TEXT, False),
    "note": ((str,), False),
    "rows": ((list,), True),
}
ROW_KEYS: dict[str, tuple[tuple[type, ...], bool]] = {
    "label": ((str,), True),
    "match": ((dict,), True),
    "paper": ((dict,), True),
    "paper_thinking_tokens": ((dict,), False),
    "ablation": (NULLABLE_TEXT, False),
    "note": ((str,), False),
}
TABLE3_FIELDS = ("control", "scaling", "performance", "runs")


@dataclass(frozen=True)
class SheetRow:
    """A paper row: `match` (setting -> value, or a list of accepted values) picks the sweep
    members it describes; `paper` holds benchmark -> number, or Table 3's four fields."""

    label: str
    match: dict[str, Any]
    paper: dict[str, float | None]
    paper_thinking_tokens: dict[str, float | None]

    @property
    def is_method(self) -> bool:
        """A Table 3 row (one per method kind), not a per-run row."""
        return set(self.paper) == set(TABLE3_FIELDS)

    def matches(self, member: Member) -> bool:
        def accepts(key: str, wanted: Any) -> bool:
            values = wanted if isinstance(wanted, list) else [wanted]
            return member.value(key) in {as_text(v) for v in values}

        return all(accepts(key, wanted) for key, wanted in self.match.items())


@dataclass(frozen=True)
class Sheet:
    path: Path
    title: str
    source: str
    ablation: list[str]
    command: str
    paper_command: str
    reference: str | None
    note: str | None
    rows: list[SheetRow]

    @property
    def benchmarks(self) -> list[str]:
        """The benchmarks the sheet has per-run numbers for, in first-seen order."""
        return list(dict.fromkeys(b for r in self.rows if not r.is_method for b in r.paper))

    def paper_row(self, member: Member) -> SheetRow | None:
        """The per-run row that describes a member: of those that match, the one with the most
        match keys (the most specific); ties go to the earlier row."""
        fits = [r for r in self.rows if not r.is_method and r.matches(member)]
        return max(fits, key=lambda r: len(r.match), default=None)

    def method_row(self, kind: str) -> SheetRow | None:
        return next((r for r in self.rows if r.is_method and r.label == kind), None)

    def unmatched(self, members: Sequence[Member]) -> list[SheetRow]:
        return [r for r in self.rows if not any(r.matches(m) for m in members)]


def resolve_sheet_path(path: str | Path) -> Path:
    """A sheet path as given, else relative to the repository root (sweeps/<name>.yaml works
    from any directory)."""
    given = Path(path)
    if given.is_file() or given.is_absolute():
        return given
    return REPO_ROOT / given if (REPO_ROOT / given).is_file() else given


def _check_keys(
    where: str, data: Mapping[str, Any], schema: Mapping[str, tuple[tuple[type, ...], bool]]
) -> None:
    unknown = sorted(set(data) - set(schema))
    if unknown:
        raise ReportError(f"{where}: unknown keys {unknown}; allowed: {sorted(schema)}")
    for key, (types, required) in schema.items():
        if key not in data:
            if required:
                raise ReportError(f"{where}: missing key {key!r}; add it")
        elif not isinstance(data[key], types):
            names = "/".join("null" if t is type(None) else t.__name__ for t in types)
            raise ReportError(f"{where}: {key!r} must be {names}, got {type(data[key]).__name__}")


def _check_numbers(where: str, values: Mapping[str, Any]) -> None:
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, NUMBER + (type(None),)):
            raise ReportError(f"{where}: {key!r} must be a number or null, got {value!r}")


def _row(where: str, data: Any) -> SheetRow:
    if not isinstance(data, dict):
        raise ReportError(f"{where}: a row is a mapping with label, match and paper")
    _check_keys(where, data, ROW_KEYS)
    if not data["match"]:
        raise ReportError(f"{where}: 'match' is empty; name the settings this row's run has")
    _check_numbers(f"{where}.paper", data["paper"])
    tokens = data.get("paper_thinking_tokens") or {}
    _check_numbers(f"{where}.paper_thinking_tokens", tokens)
    row = SheetRow(data["label"], data["match"], data["paper"], tokens)
    is_table3 = set(row.paper) & set(TABLE3_FIELDS)
    if is_table3 and not row.is_method:
        raise ReportError(f"{where}.paper: a Table 3 row needs exactly {list(TABLE3_FIELDS)}")
    if row.is_method and row.label not in TABLE3_KINDS:
        raise ReportError(
            f"{where}.label: a Table 3 row's label is its method kind, one of {TABLE3_KINDS}; "
            f"got {row.label!r}"
        )
    return row


def load_sheet(path: str | Path) -> Sheet:
    """Read and check a sheet; any problem is a ReportError naming the path, key and fix."""
    sheet_path = resolve_sheet_path(path)
    try:
        data = yaml.safe_load(sheet_path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ReportError(
            f"paper sheet {path} cannot be read ({error.strerror}); pass one of "
            f"{REPO_ROOT / 'sweeps'}/*.yaml"
        ) from error
    except yaml.YAMLError as error:
        raise ReportError(f"paper sheet {sheet_path} is not valid YAML: {error}") from error
    if not isinstance(data, dict):
        raise ReportError(f"paper sheet {sheet_path}: expected a mapping with title, rows, ...")
    _check_keys(str(sheet_path), data, SHEET_KEYS)
    ablation = data["ablation"]
    ablations = [ablation] if isinstance(ablation, str) else list(ablation or [])
    rows = [_row(f"{sheet_path}: rows[{i}]", r) for i, r in enumerate(data["rows"])]
    return Sheet(
        sheet_path,
        data["title"],
        data["source"],
        ablations,
        data["command"],
        data["paper_command"],
        data.get("reference"),
        data.get("note"),
        rows,
    )
