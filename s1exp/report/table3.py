"""Table 3 over a sweep: its members grouped per benchmark by method kind, each group's
Control / Scaling / Performance, and why a metric is n/a where it is."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from s1exp.evaluate.scaling import (
    CCC_BOUNDS,
    DEFAULT_KIND,
    ScalingRun,
    Table3Row,
    table3_row,
)
from s1exp.report.sweep import Member

CCC = "CCC"


@dataclass(frozen=True)
class KindMetrics:
    """One Table 3 row of a sweep: a method kind on a benchmark."""

    benchmark: str
    kind: str
    row: Table3Row
    points: list[tuple[float, float]]  # (thinking tokens, accuracy %) per run, for the plot
    notes: list[str]


def benchmarks(members: Sequence[Member]) -> list[str]:
    """Every benchmark some member evaluated, in first-seen order."""
    return list(dict.fromkeys(b for m in members for b in m.metrics))


def default_run(member: Member, members: Sequence[Member]) -> Member | None:
    """The budget-forcing member with the same settings except the method: CCC's reference."""
    context = member.context("method")
    return next(
        (m for m in members if m.kind == DEFAULT_KIND and m.context("method") == context), None
    )


def bounds(
    member: Member, bench: str, members: Sequence[Member]
) -> tuple[tuple[float, float] | None, str | None]:
    """The thinking-token bounds of one run and, when they are unknown, the note saying why:
    [0, thinking_limit] normally; for CCC, short <= the default run <= long."""
    if member.kind != CCC:
        limit = member.metrics[bench].get("thinking_limit")
        if limit is None:
            return None, (
                f"{member.label}: no thinking_limit in {member.path / 'results.json'} "
                f"({bench}), so Control is n/a"
            )
        return (0.0, float(limit)), None
    length = member.method.get("length")
    if length not in CCC_BOUNDS:
        return None, f"{member.label}: method.length is {length!r}, not one of {list(CCC_BOUNDS)}"
    default = default_run(member, members)
    if default is None or not default.scored(bench):
        return None, (
            f"{member.label}: CCC's Control compares with the default run; add "
            "`method=budget_forcing` to the sweep (same other settings) and rerun the report"
        )
    return CCC_BOUNDS[length](float(default.metrics[bench]["thinking_tokens"])), None


def kind_metrics(members: Sequence[Member]) -> list[KindMetrics]:
    """Table 3's rows of a sweep, per benchmark then method kind (first-seen order); parallel
    methods (majority voting) have none."""
    out = []
    for bench in benchmarks(members):
        groups: dict[str, list[Member]] = {}
        for member in members:
            if member.kind is not None and member.scored(bench):
                groups.setdefault(member.kind, []).append(member)
        for kind, group in groups.items():
            runs, notes = [], []
            for member in group:
                limits, note = bounds(member, bench, members)
                metrics = member.metrics[bench]
                runs.append(
                    ScalingRun(
                        float(metrics["thinking_tokens"]), float(metrics["accuracy"]), limits
                    )
                )
                notes += [note] if note else []
            points = sorted((r.thinking_tokens, r.accuracy) for r in runs)
            out.append(KindMetrics(bench, kind, table3_row(runs), points, notes))
    return out
