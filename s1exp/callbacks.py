"""Hydra callbacks: the table a sweep prints when all its jobs are done."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

COLUMNS = (
    ("accuracy", "acc %", "{:.1f}"),
    ("accuracy_ci_low", "ci low", "{:.1f}"),
    ("accuracy_ci_high", "ci high", "{:.1f}"),
    ("thinking_tokens", "think tok", "{:.1f}"),
    ("forced_exit_rate", "forced", "{:.2f}"),
    ("ignores_used", "ignores", "{:.2f}"),
)


def sweep_rows(sweep_dir: Path) -> list[tuple[str, dict[str, float], dict[str, Any]]]:
    """(label, metrics, stages) for each finished job of a sweep, in job order."""
    rows = []
    paths = sorted(
        sweep_dir.glob("*/results.json"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 1 << 30,
    )
    for path in paths:
        results = json.loads(path.read_text())
        overrides = [o for o in results.get("overrides", []) if not o.startswith("+ablation")]
        rows.append(
            (" ".join(overrides) or path.parent.name, results["metrics"], results["stages"])
        )
    return rows


def format_table(rows: list[tuple[str, dict[str, float], dict[str, Any]]]) -> str:
    width = max([len("run"), *(len(label) for label, _, _ in rows)])
    header = f"{'run':<{width}} | " + " | ".join(f"{name:>9}" for _, name, _ in COLUMNS)
    header += " | trained"
    lines = [header, "-" * len(header)]
    for label, metrics, stages in rows:
        cells = " | ".join(f"{fmt.format(metrics[key]):>9}" for key, _, fmt in COLUMNS)
        trained = "reused" if stages.get("train", {}).get("reused") else "yes"
        lines.append(f"{label:<{width}} | {cells} | {trained}")
    return "\n".join(lines)


class SweepSummary(Callback):
    """Prints accuracy and thinking tokens of every job once a multirun ends."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = sweep_rows(sweep_dir)
        if not rows:
            return
        table = format_table(rows)
        (sweep_dir / "summary.txt").write_text(table + "\n")
        print(f"\nSweep summary ({sweep_dir}):\n{table}", flush=True)
