"""What a sweep cost: its jobs' cost blocks (results.json `cost`, s1exp.cost) added up, as one
line of the report and as summary values of the sweep's W&B report run.

Wall time is summed over jobs (the compute they held, whether they ran one after another here
or side by side on a cluster), as are GPU-hours and dollars.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from s1exp.cost import CPU, PRICE_KEY

# (limit in seconds, divisor, unit): the first row whose limit exceeds a duration writes it.
DURATION_UNITS = ((90.0, 1.0, "s"), (2 * 3600.0, 60.0, "min"), (float("inf"), 3600.0, "h"))


@dataclass(frozen=True)
class SweepCost:
    """The sums over the jobs that have a cost block; `missing` jobs have none (written before
    s1exp logged costs) and `unpriced` jobs held GPUs without a price (no dollars)."""

    jobs: int
    missing: int
    unpriced: int
    wall_seconds: float
    gpu_hours: float
    usd: float | None  # None when no job has a price
    devices: tuple[str, ...]  # "16 x NVIDIA H100 80GB HBM3", "cpu"
    prices: tuple[float, ...]


def where(block: Mapping[str, Any]) -> str:
    return CPU if not block.get("gpus") else f"{block['gpus']} x {block['device']}"


def sweep_cost(results: Sequence[Mapping[str, Any]]) -> SweepCost:
    """The cost of a sweep's jobs from their loaded results.json (Member.results)."""
    blocks = [r["cost"] for r in results if r.get("cost")]
    priced = [b["usd"] for b in blocks if b.get("usd") is not None]
    return SweepCost(
        jobs=len(blocks),
        missing=len(results) - len(blocks),
        unpriced=sum(1 for b in blocks if b.get("gpus") and b.get("usd") is None),
        wall_seconds=sum(float(b["wall_seconds"]) for b in blocks),
        gpu_hours=sum(float(b["gpu_hours"]) for b in blocks),
        usd=sum(priced) if priced else None,
        devices=tuple(sorted({where(b) for b in blocks})),
        prices=tuple(sorted({b["usd_per_gpu_hour"] for b in blocks if b.get("gpus")} - {None})),
    )


def duration(seconds: float) -> str:
    """A duration in the unit that keeps its number readable: 42 s, 12.3 min, 3.4 h."""
    _, divisor, unit = next(row for row in DURATION_UNITS if seconds < row[0])
    return f"{seconds / divisor:.{0 if unit == 's' else 1}f} {unit}"


def _dollars(total: SweepCost) -> str:
    if total.usd is None:
        return f"no dollars ({PRICE_KEY} is null)" if total.gpu_hours else "$0.00"
    text = f"${total.usd:.2f}"
    if total.prices:
        text += " at " + " / ".join(f"${p:.2f}" for p in total.prices) + " per GPU-hour"
    if total.unpriced:
        text += f" (+{total.unpriced} job(s) without a price, {PRICE_KEY} null)"
    return text


def cost_line(results: Sequence[Mapping[str, Any]]) -> str:
    """The report's cost line: "Cost: 5 jobs, 12.3 min of wall time (summed over jobs) on cpu:
    0 GPU-hours, $0.00." plus the jobs without a cost record, if any."""
    total = sweep_cost(results)
    if not total.jobs:
        return f"Cost: n/a (none of the {total.missing} jobs has a cost block in results.json)."
    jobs = f"{total.jobs} job{'s' if total.jobs != 1 else ''}"
    line = (
        f"Cost: {jobs}, {duration(total.wall_seconds)} of wall time (summed over jobs) on "
        f"{', '.join(total.devices)}: {total.gpu_hours:.3g} GPU-hours, {_dollars(total)}."
    )
    if total.missing:
        line += f" {total.missing} more job(s) have no cost block (run before costs were logged)."
    return line


def cost_metrics(results: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """The sweep's totals as numbers for the W&B report run: `cost/wall_seconds`,
    `cost/gpu_hours` and `cost/usd` (left out when no job has a price)."""
    total = sweep_cost(results)
    if not total.jobs:
        return {}
    metrics = {"cost/wall_seconds": total.wall_seconds, "cost/gpu_hours": total.gpu_hours}
    return metrics | ({} if total.usd is None else {"cost/usd": total.usd})
