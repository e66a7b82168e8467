"""A sweep's report assembled from its parts, and published into a folder in one rename."""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from s1exp.report import plots, render
from s1exp.report.cost import cost_line, cost_metrics
from s1exp.report.errors import ReportError
from s1exp.report.sheet import Sheet
from s1exp.report.sweep import (
    Delta,
    Member,
    label_members,
    load_sweep,
    member_deltas,
    split_parts,
)
from s1exp.report.table3 import KindMetrics, benchmarks, kind_metrics

REPORT_FILE = "report.md"
Table = tuple[list[str], list[list[Any]]]


@dataclass
class Report:
    """Everything a sweep's report shows: `summary` is `markdown` without the plot links (what
    summary.txt and the console get); `tables` and `metrics` are what W&B logs."""

    sweep_dir: Path
    markdown: str
    summary: str
    tables: dict[str, Table]
    figures: dict[str, Figure]  # PNG file name -> figure
    metrics: dict[str, float]


def file_stem(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name)


def is_categorical(members: list[Member]) -> bool:
    """Whether some swept setting (an override not every job shares) has a non-number value,
    e.g. extrapolation=wait or selection=random: a bar per member is then the right plot."""
    values = [o.split("=", 1)[1] for m in members for o in m.swept if "=" in o]

    def numeric(text: str) -> bool:
        try:
            float(text)
        except ValueError:
            return False
        return True

    return len(members) > 1 and not all(map(numeric, values))


def figures(
    members: list[Member], benches: list[str], kinds: list[KindMetrics], sheet: Sheet | None
) -> dict[str, Figure]:
    """scaling_<bench>.png where some method kind has two runs on it with different thinking
    tokens (a curve, not one x); bars_<bench>.png for a categorical sweep, with the paper's
    numbers on the same benchmark beside the bars (a toy sweep's plot has none: its accuracy is
    not on the paper's scale; the table still lists the paper's columns)."""
    out: dict[str, Figure] = {}
    for bench in benches:
        lines = {k.kind: k.points for k in kinds if k.benchmark == bench}
        if any(k.row.scaling is not None for k in kinds if k.benchmark == bench):
            out[f"scaling_{file_stem(bench)}.png"] = plots.scaling_figure(bench, lines)
        if not is_categorical(members):
            continue
        shown = [m for m in members if m.scored(bench)]
        if not shown:
            continue
        metrics = [m.metrics[bench] for m in shown]
        paper, paper_label = None, "paper"
        if sheet and bench in sheet.benchmarks:
            rows = [sheet.paper_row(m) for m in shown]
            paper = [r.paper.get(bench) if r else None for r in rows]
            paper_label = f"paper ({bench})"
        out[f"bars_{file_stem(bench)}.png"] = plots.bars_figure(
            bench,
            [m.label for m in shown],
            [float(x["accuracy"]) for x in metrics],
            [
                (x.get("accuracy_ci_low", x["accuracy"]), x.get("accuracy_ci_high", x["accuracy"]))
                for x in metrics
            ],
            paper,
            paper_label,
        )
    return out


def wandb_tables(
    members: list[Member],
    benches: list[str],
    deltas: dict[str, list[Delta | None]] | None,
    kinds: list[KindMetrics],
    sheet: Sheet | None,
) -> dict[str, Table]:
    """One row per (member, benchmark), and one per Table 3 row: numbers, not formatted text."""
    run_columns = ["run", "benchmark", "accuracy", "accuracy_ci_low", "accuracy_ci_high"]
    run_columns += ["thinking_tokens", "thinking_limit", "delta", "delta_low", "delta_high"]
    run_columns += ["paper"]
    runs = []
    for i, member in enumerate(members):
        row = sheet.paper_row(member) if sheet else None
        for bench in benches:
            m = member.metrics.get(bench)
            if m is None:
                continue
            delta = deltas[bench][i] if deltas else None
            runs.append(
                [member.label, bench]
                + [m.get(k) for k in run_columns[2:7]]
                + list(delta or (None, None, None))
                + [row.paper.get(bench) if row else None]
            )
    table3 = [
        [k.benchmark, k.kind, k.row.runs, k.row.control, k.row.scaling, k.row.performance]
        for k in kinds
    ]
    columns3 = ["benchmark", "method", "runs", "control", "scaling", "performance"]
    return {"runs": (run_columns, runs), "table3": (columns3, table3)}


def reference_note(reference: str, found: bool, resamples: int) -> str:
    if found:
        return (
            f"Δ vs {reference}: accuracy minus that job's, percent points, with the paired "
            f"bootstrap 95% CI ({resamples:,} resamples) over the questions both answered."
        )
    return (
        f"No job of this sweep has the override {reference!r}, so the table has no Δ columns; "
        "pass --reference (hydra.callbacks.summary.reference) as one job's KEY=VALUE override."
    )


def build_report(
    sweep_dir: Path,
    sheet: Sheet | None = None,
    reference: str | None = None,
    resamples: int = 10_000,
    members: list[Member] | None = None,
    title: str | None = None,
) -> Report:
    """The report of a sweep's finished jobs (or of `members`, one part of them); `reference`
    defaults to the sheet's."""
    members = load_sweep(sweep_dir) if members is None else members
    if not members:
        raise ReportError(
            f"{sweep_dir} has no finished jobs (no */results.json); wait for the sweep to finish, "
            "or pass the multirun dir (hydra.sweep.dir) rather than a job dir"
        )
    reference = reference or (sheet.reference if sheet else None)
    if reference is not None and "=" not in reference:
        raise ReportError(f"--reference {reference!r}: write it as KEY=VALUE, e.g. selection=s1k")
    benches = benchmarks(members)
    deltas = None
    if reference:
        per_bench = {b: member_deltas(members, reference, b, resamples) for b in benches}
        deltas = None if None in per_bench.values() else per_bench
    kinds = kind_metrics(members)
    lines = [f"# {title or f'Sweep report: {sweep_dir}'}", ""]
    lines += render.sheet_lines(sheet) + [""] if sheet else []
    lines += [
        f"{len(members)} finished jobs. Cells: accuracy % [95% bootstrap CI] · average "
        "thinking tokens."
    ]
    lines += ["", *render.member_table(members, benches, deltas, reference, sheet)]
    lines += ["", reference_note(reference, deltas is not None, resamples)] if reference else []
    lines += render.unmatched_lines(sheet, members) if sheet else []
    lines += ["", "## Runs", "", *render.details_table(members, benches)]
    lines += ["", cost_line([m.results for m in members])]
    if any(k.row.runs >= 2 for k in kinds):
        lines += ["", *render.table3_block(kinds, sheet)]
    if sheet:
        lines += ["", "Regenerate (toy world):", ""]
        lines += [f"    {line}" for line in sheet.command.strip().splitlines()]
        lines += ["", "On the paper's models:", ""]
        lines += [f"    {line}" for line in sheet.paper_command.strip().splitlines()]
    drawn = figures(members, benches, kinds, sheet)
    summary = "\n".join(lines) + "\n"
    plot_lines = ["", "## Plots", ""] + [f"![{name}]({name})" for name in drawn]
    markdown = summary + ("\n".join(plot_lines) + "\n" if drawn else "")
    metrics: dict[str, float] = {"jobs": float(len(members))}
    metrics |= cost_metrics([m.results for m in members])
    for bench in benches:
        accuracy = [m.metrics[bench]["accuracy"] for m in members if m.scored(bench)]
        if accuracy:
            metrics[f"{bench}/best_accuracy"] = float(max(accuracy))
    tables = wandb_tables(members, benches, deltas, kinds, sheet)
    return Report(sweep_dir, markdown, summary, tables, drawn, metrics)


@dataclass(frozen=True)
class Part:
    """A report part's settings (hydra.callbacks.summary.parts.<part>): its paper sheet and the
    job its runs are compared with, as a single sweep's `paper` and `reference`."""

    sheet: Sheet | None = None
    reference: str | None = None


def build_part_reports(
    sweep_dir: Path, parts: dict[str, Part], resamples: int = 10_000
) -> tuple[dict[str, Report], list[str]]:
    """One report per part of a grids sweep, over the jobs whose grid is "<part>/..." (Member.
    part), in the order of `parts`, then any part it does not name (no sheet); each part is
    labelled on its own. Also returns the parts of `parts` without a finished job."""
    members = load_sweep(sweep_dir)
    by_part = split_parts(members)
    order = [*parts, *(p for p in by_part if p not in parts)]
    reports = {}
    for name in order:
        if name not in by_part:
            continue
        own = label_members(by_part[name])
        settings = parts.get(name, Part()) if name else Part()
        title = f"Sweep report: {sweep_dir}, part {name or 'without a sweep_part'}"
        reports[name or "unassigned"] = build_report(
            sweep_dir, settings.sheet, settings.reference, resamples, own, title
        )
    return reports, [p for p in parts if p not in by_part]


def combined_summary(reports: dict[str, Report], missing: list[str]) -> str:
    """summary.txt of a sweep with parts: every part's summary, each under its own title, and
    a line for each configured part no job finished."""
    texts = [report.summary for report in reports.values()]
    texts += [f"# Part {name}: no finished jobs (no grid {name}/... ran)\n" for name in missing]
    return "\n".join(texts)


def publish(report: Report, out_dir: Path) -> dict[str, Path]:
    """Write report.md and the PNGs into a temporary sibling folder, then rename it to `out_dir`
    (replacing an older report), so readers never see a half-written report. Returns the PNG
    paths by name without the .png."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        (staging / REPORT_FILE).write_text(report.markdown, encoding="utf-8")
        for name, figure in report.figures.items():
            plots.save(figure, staging / name)
        if out_dir.exists():
            old = staging.with_name(staging.name + ".old")
            out_dir.rename(old)
            staging.rename(out_dir)
            shutil.rmtree(old)
        else:
            staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {Path(name).stem: out_dir / name for name in report.figures}
