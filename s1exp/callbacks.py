"""Hydra callbacks: the table a sweep prints when all its jobs are done."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from s1exp.evaluate.metrics import paired_bootstrap_diff
from s1exp.evaluate.scaling import control, performance, scaling

COLUMNS = (
    ("accuracy", "acc %", "{:.1f}"),
    ("accuracy_ci_low", "ci low", "{:.1f}"),
    ("accuracy_ci_high", "ci high", "{:.1f}"),
    ("thinking_tokens", "think tok", "{:.1f}"),
    ("forced_exit_rate", "forced", "{:.2f}"),
    ("ignores_used", "ignores", "{:.2f}"),
)
DELTA_COLUMNS = ("Δ vs ref", "Δ low", "Δ high")  # percent points, paired bootstrap 95% CI


def job_dirs(sweep_dir: Path) -> list[Path]:
    """The run dirs of a sweep's finished jobs (those with a results.json), in job order."""
    paths = sorted(
        sweep_dir.glob("*/results.json"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 1 << 30,
    )
    return [path.parent for path in paths]


def job_overrides(results: dict[str, Any]) -> list[str]:
    """A job's command-line overrides without the `+ablation=` that every job of a sweep shares."""
    return [o for o in results.get("overrides", []) if not o.startswith("+ablation")]


def sweep_rows(sweep_dir: Path) -> list[tuple[str, dict[str, float], dict[str, Any]]]:
    """(label, metrics, results) for each finished job of a sweep, in job order.

    A job's label is its overrides minus those every job shares (the swept values stand out).
    """
    jobs = [(d, json.loads((d / "results.json").read_text())) for d in job_dirs(sweep_dir)]
    overrides = [job_overrides(r) for _, r in jobs]
    shared = set.intersection(*map(set, overrides)) if len(jobs) > 1 else set()
    return [
        (" ".join(o for o in own if o not in shared) or path.name, r["metrics"], r)
        for (path, r), own in zip(jobs, overrides, strict=True)
    ]


def correctness_by_id(run_dir: Path) -> dict[str, float] | None:
    """Question id -> 1.0 (right) or 0.0 from a job's samples.jsonl; None if it is missing or
    unreadable (a summary must still print when one job's samples are gone)."""
    try:
        lines = (run_dir / "samples.jsonl").read_text().splitlines()
        return {str(s["id"]): float(s["correct"]) for s in map(json.loads, filter(None, lines))}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _override_key(override: str) -> str:
    return override.lstrip("+~").split("=", 1)[0]


Delta = tuple[float, float, float]


def reference_deltas(
    sweep_dir: Path, reference: str, resamples: int = 10_000
) -> list[Delta | None] | None:
    """Per job (in job order): its accuracy minus the reference job's, with the paired bootstrap
    95% CI, over the question ids both answered; None for a job without usable samples.

    The reference is the job whose overrides contain `reference` (e.g. "selection=s1k"). When
    several do (the sweep crosses another axis), each job is compared with the one that differs
    from it only in the reference's key. Returns None when no job has that override.
    """
    dirs = job_dirs(sweep_dir)
    overrides = [job_overrides(json.loads((d / "results.json").read_text())) for d in dirs]
    key = _override_key(reference)

    def others(job: int) -> frozenset[str]:
        return frozenset(o for o in overrides[job] if _override_key(o) != key)

    candidates = [job for job, o in enumerate(overrides) if reference in o]
    if not candidates:
        return None
    correct = [correctness_by_id(d) for d in dirs]
    deltas: list[Delta | None] = []
    for job in range(len(dirs)):
        same = [c for c in candidates if others(c) == others(job)]
        ref = same[0] if same else candidates[0] if len(candidates) == 1 else None
        mine, theirs = correct[job], correct[ref] if ref is not None else None
        ids = sorted(mine.keys() & theirs.keys()) if mine and theirs else []
        pairs = ([mine[i] for i in ids], [theirs[i] for i in ids]) if ids else None
        deltas.append(paired_bootstrap_diff(*pairs, resamples=resamples) if pairs else None)
    return deltas


def format_table(
    rows: list[tuple[str, dict[str, float], dict[str, Any]]],
    deltas: list[Delta | None] | None = None,
) -> str:
    """The sweep's table; with `deltas` (from reference_deltas) also each row's Δ vs ref + CI."""
    width = max([len("run"), *(len(label) for label, _, _ in rows)])
    names = [name for _, name, _ in COLUMNS] + (list(DELTA_COLUMNS) if deltas else [])
    header = f"{'run':<{width}} | " + " | ".join(f"{name:>9}" for name in names)
    header += " | trained"
    lines = [header, "-" * len(header)]
    for row, (label, metrics, results) in enumerate(rows):
        cells = [fmt.format(metrics[key]) for key, _, fmt in COLUMNS]
        if deltas:
            delta = deltas[row]
            cells += [f"{v:.1f}" for v in delta] if delta else ["n/a"] * len(DELTA_COLUMNS)
        trained = "reused" if results["stages"].get("train", {}).get("reused") else "yes"
        cells_text = " | ".join(f"{c:>9}" for c in cells)
        lines.append(f"{label:<{width}} | {cells_text} | {trained}")
    return "\n".join(lines)


def thinking_limit(method: dict[str, Any]) -> float | None:
    """The thinking tokens a run was asked to stay within: TCC's instruction, else its cap."""
    for key in ("tokens", "cap"):
        if isinstance(method.get(key), int):
            return float(method[key])
    return None


def format_scaling(rows: list[tuple[str, dict[str, float], dict[str, Any]]]) -> str:
    """Table 3's Control / Scaling / Performance per method of the sweep, where defined: over
    runs that all have a thinking limit (a cap or TCC's instruction), as the paper computes them."""
    by_method: dict[str, list] = {}
    for row in rows:
        by_method.setdefault(row[2].get("choices", {}).get("method", ""), []).append(row)
    lines = []
    for method, group in by_method.items():
        tokens = [metrics["thinking_tokens"] for _, metrics, _ in group]
        accuracy = [metrics["accuracy"] for _, metrics, _ in group]
        limits = [thinking_limit(results["config"]["method"]) for _, _, results in group]
        if None in limits or len(set(tokens)) < 2 or min(tokens) <= 0:
            continue
        lines.append(
            f"Table 3 metrics, method={method}: Control {100 * control(tokens, limits):.0f}% | "
            f"Scaling {scaling(tokens, accuracy):.1f} pp per doubling | "
            f"Performance {performance(accuracy):.1f}"
        )
    return "\n".join(lines)


class SweepSummary(Callback):
    """Prints accuracy and thinking tokens of every job once a multirun ends.

    With `reference` (an override such as "selection=s1k", set by an ablation through
    hydra.callbacks.summary.reference) each row also gets its accuracy difference from that job,
    with the paired bootstrap CI the paper reports for Table 2.
    """

    def __init__(self, reference: str | None = None) -> None:
        self.reference = reference

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = sweep_rows(sweep_dir)
        if not rows:
            return
        deltas, note = None, ""
        if self.reference:
            deltas = reference_deltas(sweep_dir, self.reference)
            note = (
                f"Δ vs ref: accuracy minus the {self.reference} job's, percent points, "
                "paired bootstrap 95% CI (10,000 resamples) over the questions both answered"
                if deltas is not None
                else f"No job of this sweep has the override {self.reference!r} "
                "(hydra.callbacks.summary.reference), so the table has no Δ vs ref columns."
            )
        table = "\n".join(filter(None, [format_table(rows, deltas), note, format_scaling(rows)]))
        (sweep_dir / "summary.txt").write_text(table + "\n", encoding="utf-8")  # "Δ"
        print(f"\nSweep summary ({sweep_dir}):\n{table}", flush=True)
