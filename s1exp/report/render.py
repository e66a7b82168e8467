"""The report's markdown: the members table (with Δ and paper columns), per-run details, the
Table 3 block, and the notes that say what is missing and how to get it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from s1exp.evaluate.scaling import Table3Row
from s1exp.report.sheet import TABLE3_FIELDS, Sheet, SheetRow
from s1exp.report.sweep import Delta, Member, as_text
from s1exp.report.table3 import KindMetrics

NA = "n/a"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return [line(header), line(["---"] * len(header)), *map(line, rows)]


def number(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NA
    return f"{value:.{digits}f}"


def run_cell(metrics: dict[str, Any] | None) -> str:
    """`accuracy [ci low, ci high] · thinking tokens`, e.g. `17.2 [10.9, 24.2] · 76`."""
    if not metrics or metrics.get("accuracy") is None:
        return "—"
    low, high = number(metrics.get("accuracy_ci_low")), number(metrics.get("accuracy_ci_high"))
    tokens = number(metrics.get("thinking_tokens"), 0)
    return f"{number(metrics['accuracy'])} [{low}, {high}] · {tokens}"


def delta_cell(delta: Delta | None) -> str:
    return NA if delta is None else f"{delta[0]:+.1f} [{delta[1]:.1f}, {delta[2]:.1f}]"


def paper_cell(row: SheetRow | None, bench: str) -> str:
    """The paper's number for a member's matching row (with its thinking tokens where the paper
    gives them); empty when no row matches, n/a where the paper gives no number."""
    if row is None:
        return ""
    value = number(row.paper.get(bench))
    tokens = row.paper_thinking_tokens.get(bench)
    return value if tokens is None else f"{value} · {tokens:.0f}"


def member_table(
    members: Sequence[Member],
    benches: Sequence[str],
    deltas: dict[str, list[Delta | None]] | None,
    reference: str | None,
    sheet: Sheet | None,
) -> list[str]:
    """Rows = members, per benchmark: the run cell, its Δ vs the reference, the paper's number;
    then the paper's benchmarks this sweep did not evaluate (a toy sweep beside AIME24 ...)."""
    paper_benches = sheet.benchmarks if sheet else []
    header, columns = ["run"], []

    def add_paper(bench: str) -> None:
        header.append(f"{bench} paper")
        columns.append(lambda i, m: paper_cell(sheet.paper_row(m), bench))

    for bench in benches:
        header.append(bench)
        columns.append(lambda i, m, b=bench: run_cell(m.metrics.get(b)))
        if deltas is not None:
            header.append(f"{bench} Δ vs {reference}")
            columns.append(lambda i, m, b=bench: delta_cell(deltas[b][i]))
        if bench in paper_benches:
            add_paper(bench)
    for bench in paper_benches:
        if bench not in benches:
            add_paper(bench)
    rows = [[m.label, *(col(i, m) for col in columns)] for i, m in enumerate(members)]
    return markdown_table(header, rows)


def details_table(members: Sequence[Member], benches: Sequence[str]) -> list[str]:
    """What each run did besides its accuracy: limits, forced exits, ignores, unparsed answers."""
    header = ["run", "benchmark", "n", "thinking limit", "forced exits", "ignores used"]
    header += ["unparsed", "trained"]
    rows = []
    for member in members:
        for bench in benches:
            m = member.metrics.get(bench)
            if m is None:
                continue
            rows.append(
                [
                    member.label,
                    bench,
                    number(m.get("n"), 0),
                    number(m.get("thinking_limit"), 0),
                    number(m.get("forced_exit_rate"), 2),
                    number(m.get("ignores_used"), 2),
                    number(m.get("unparsed_rate"), 2),
                    member.trained,
                ]
            )
    return markdown_table(header, rows)


def table3_cells(row: Table3Row) -> list[str]:
    control = NA if row.control is None else f"{100 * row.control:.0f}%"
    return [str(row.runs), control, number(row.scaling), number(row.performance)]


def paper_table3_cells(row: SheetRow | None) -> list[str]:
    if row is None:
        return [""] * len(TABLE3_FIELDS)
    control = row.paper["control"]
    return [
        NA if control is None else f"{control:.0f}%",
        number(row.paper["scaling"], 0),
        number(row.paper["performance"]),
        number(row.paper["runs"], 0),
    ]


def table3_block(kinds: Sequence[KindMetrics], sheet: Sheet | None) -> list[str]:
    """Control / Scaling / Performance per benchmark and method kind, the paper's Table 3 row
    beside each where the sheet has one, and the notes on every n/a."""
    header = ["benchmark", "method", "runs", "Control", "Scaling (pp/doubling)", "Performance"]
    with_paper = sheet is not None and any(r.is_method for r in sheet.rows)
    if with_paper:
        header += ["paper Control", "paper Scaling", "paper Performance", "paper runs"]
    rows = []
    for k in kinds:
        cells = [k.benchmark, k.kind, *table3_cells(k.row)]
        rows.append(cells + (paper_table3_cells(sheet.method_row(k.kind)) if with_paper else []))
    lines = ["## Table 3: Control / Scaling / Performance", "", *markdown_table(header, rows)]
    notes = list(dict.fromkeys(n for k in kinds for n in k.notes))
    scaling_na = [f"{k.kind} ({k.benchmark})" for k in kinds if k.row.scaling is None]
    if scaling_na:
        notes.append(
            "Scaling n/a for " + ", ".join(scaling_na) + ": it needs two runs of the method "
            "with different average thinking tokens"
        )
    lines += [""] + [f"- {n}" for n in notes] if notes else []
    if with_paper:
        lines += ["", "Paper: AIME24, s1-32B (S1_SPEC section 4); Control in % of runs."]
    return lines


def sheet_lines(sheet: Sheet) -> list[str]:
    lines = [f"Paper: {sheet.title} ({sheet.source}); sheet `{sheet.path.name}`."]
    if sheet.note:
        lines.append(sheet.note.strip())
    return lines


def unmatched_lines(sheet: Sheet, members: Sequence[Member]) -> list[str]:
    """The paper rows no member matches, with the settings a run would need to match them."""
    missing = sheet.unmatched(members)
    if not missing:
        return []

    def settings(row: SheetRow) -> str:
        return " ".join(f"{k}={as_text(v).strip('[]')}" for k, v in row.match.items())

    return ["", "Paper rows no run of this sweep matches:", ""] + [
        f"- {row.label} (`{settings(row)}`)" for row in missing
    ]
