"""Progress lines for long work (base-model build, training, generation, sweeps).

Lines rather than bars: the same text reads well in a terminal, a SLURM log file and Hydra's job
log, and each line is printed once (a bar's carriage returns turn into hundreds of lines in a log
file). A line goes out when the work starts, at most every `every` seconds, and when it ends.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger("s1exp.progress")


def clock(seconds: float) -> str:
    """12 s, 3:05, 1:02:03."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ProgressLine:
    """`<what>: <done>/<total> <unit> (<pct>) · <extra> · ETA <time>` lines, rate-limited."""

    def __init__(self, what: str, total: int, unit: str, every: float = 15.0) -> None:
        self.what, self.total, self.unit, self.every = what, total, unit, every
        self.start = time.perf_counter()
        self.last_line = float("-inf")
        self.first_done: int | None = None

    def update(self, done: int, extra: str = "", force: bool = False) -> None:
        """Report `done` units; printed if `every` seconds passed, at the end, or if forced."""
        now = time.perf_counter()
        if self.first_done is None:
            self.first_done, self.start = done, now  # a resumed run's rate counts its own work
        finished = done >= self.total
        if not (force or finished or now - self.last_line >= self.every):
            return
        self.last_line = now
        elapsed = now - self.start
        parts = [
            f"{self.what}: {done}/{self.total} {self.unit} ({100 * done / max(1, self.total):.0f}%)"
        ]
        if extra:
            parts.append(extra)
        rate = (done - self.first_done) / elapsed if elapsed > 0 else 0.0
        if finished:
            parts.append(f"done in {clock(elapsed)}")
        elif rate > 0:
            parts.append(f"ETA {clock((self.total - done) / rate)}")
        log.info(" · ".join(parts))
