"""Hydra callbacks: the table a sweep prints when all its jobs are done."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from s1exp.evaluate.scaling import control, performance, scaling

COLUMNS = (
    ("accuracy", "acc %", "{:.1f}"),
    ("accuracy_ci_low", "ci low", "{:.1f}"),
    ("accuracy_ci_high", "ci high", "{:.1f}"),
    ("thinking_tokens", "think tok", "{:.1f}"),
    ("forced_exit_rate", "forced", "{:.2f}"),
    ("ignores_used", "ignores", "{:.2f}"),
)


def sweep_rows(sweep_dir: Path) -> list[tuple[str, dict[str, float], dict[str, Any]]]:
    """(label, metrics, results) for each finished job of a sweep, in job order.

    A job's label is its overrides minus those every job shares (the swept values stand out).
    """
    paths = sorted(
        sweep_dir.glob("*/results.json"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 1 << 30,
    )
    jobs = [(path, json.loads(path.read_text())) for path in paths]
    overrides = [
        [o for o in r.get("overrides", []) if not o.startswith("+ablation")] for _, r in jobs
    ]
    shared = set.intersection(*map(set, overrides)) if len(jobs) > 1 else set()
    return [
        (" ".join(o for o in job_overrides if o not in shared) or path.parent.name, r["metrics"], r)
        for (path, r), job_overrides in zip(jobs, overrides, strict=True)
    ]


def format_table(rows: list[tuple[str, dict[str, float], dict[str, Any]]]) -> str:
    width = max([len("run"), *(len(label) for label, _, _ in rows)])
    header = f"{'run':<{width}} | " + " | ".join(f"{name:>9}" for _, name, _ in COLUMNS)
    header += " | trained"
    lines = [header, "-" * len(header)]
    for label, metrics, results in rows:
        cells = " | ".join(f"{fmt.format(metrics[key]):>9}" for key, _, fmt in COLUMNS)
        trained = "reused" if results["stages"].get("train", {}).get("reused") else "yes"
        lines.append(f"{label:<{width}} | {cells} | {trained}")
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
    """Prints accuracy and thinking tokens of every job once a multirun ends."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = sweep_rows(sweep_dir)
        if not rows:
            return
        table = "\n".join(filter(None, [format_table(rows), format_scaling(rows)]))
        (sweep_dir / "summary.txt").write_text(table + "\n")
        print(f"\nSweep summary ({sweep_dir}):\n{table}", flush=True)
