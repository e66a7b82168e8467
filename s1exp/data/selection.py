"""Selection strategies: s1K's Algorithm 1 and the data ablations of S1_SPEC section 1 (Table 2).

Each strategy is a dataclass built by Hydra from ``conf/selection/*.yaml`` through ``_target_``
and called as ``strategy(rows, size, rng) -> Selected``. All randomness comes from the
``random.Random`` the caller seeds, so one seed gives one selection. Output order is the order of
selection (for s1K: pre-selected rows first, in pool order, then the diversity draws).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

from s1exp.data.quality import (
    KEEP_ASY_SOURCES,
    apply_stages,
    difficulty_stages,
    quality_stages,
    source_matches,
)
from s1exp.data.schema import PoolRow
from s1exp.errors import ConfigError


@dataclass
class Selected:
    """The selected rows plus the funnel: counts per stage, pre-selected and domain counts."""

    rows: list[PoolRow]
    funnel: dict[str, int]


class Selection(Protocol):
    """What every strategy provides: a callable over the featurized pool."""

    def __call__(self, rows: list[PoolRow], size: int, rng: random.Random) -> Selected: ...


def check_requested_size(size: object, pool_size: object = None) -> None:
    """selection.size before any stage runs: a positive integer, and no more than the raw pool
    holds where the source declares its size (`data.pool.size`, the toy); filters only remove
    rows, so a larger selection could only fail after featurization."""
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise ConfigError(f"selection.size={size!r}: must be a positive integer (e.g. 1000)")
    if isinstance(pool_size, int) and size > pool_size:
        raise ConfigError(
            f"selection.size={size} but the pool has only data.pool.size={pool_size} rows "
            f"before any filter; lower selection.size or raise data.pool.size"
        )


def _check_size(size: int, available: int, what: str) -> None:
    """Fail early, naming the config key, when the pool cannot supply ``size`` rows."""
    check_requested_size(size)
    if size > available:
        raise ConfigError(
            f"selection.size={size} but only {available} rows are available ({what}); "
            f"lower selection.size to at most {available} or use a larger pool"
        )


def _by_domain(rows: Iterable[PoolRow]) -> dict[str, list[PoolRow]]:
    """Group rows by domain, domains in sorted order so draws do not depend on dict history."""
    groups: dict[str, list[PoolRow]] = {}
    for r in rows:
        groups.setdefault(r["domain"], []).append(r)
    return {d: groups[d] for d in sorted(groups)}


def _finish(rows: list[PoolRow], funnel: dict[str, int]) -> Selected:
    funnel["selected"] = len(rows)
    funnel["domains"] = len({r["domain"] for r in rows})
    return Selected(rows, funnel)


# Does the variant switch to benchmark-matched domain draws after `matched_after` rows?
VARIANT_SWITCHES: dict[str, bool] = {"paper": False, "notebook": True}


def geometric_rank(m: int, rng: random.Random) -> int:
    """Draw rank r in [0, m) with probability proportional to 2^-r, in O(1) expected time.

    floor(-log2(u)) for u uniform in (0, 1] is r with probability 2^-(r+1) on r >= 0; rejecting
    r >= m leaves exactly the truncated weights 2^-r / sum_{j<m} 2^-j (at most 2 tries expected).
    """
    if m <= 0:
        raise ValueError("cannot draw from an empty domain")
    while True:
        r = math.floor(-math.log2(1.0 - rng.random()))
        if r < m:
            return r


def _tuple(xs: Iterable[str]) -> tuple[str, ...]:
    return tuple(str(x) for x in xs)  # Hydra hands ListConfig; keep the dataclass hashable/plain


@dataclass
class _Base:
    keep_asy_sources: Sequence[str] = KEEP_ASY_SOURCES
    uses_size: ClassVar[bool] = True  # selects `selection.size` rows (s1exp.preflight checks it)

    def __post_init__(self) -> None:
        self.keep_asy_sources = _tuple(self.keep_asy_sources)


@dataclass
class S1KSelection(_Base):
    """Algorithm 1: quality + difficulty filters, pre-select benchmark-like rows, then sample.

    Diversity stage: until |S| = size, pick a domain uniformly among non-exhausted ones; within it
    rank the remaining rows by thinking length (rank 0 = longest, ties by pool order) and draw rank
    r with weight 2^-r; remove it. Ranks are over the *remaining* rows, which is what keeping each
    domain sorted (longest last) and popping the drawn position gives.

    If pre-selection alone reaches ``size``, the first ``size`` pre-selected rows in pool order are
    kept (deterministic; no draw). ``require_teacher_correct`` restricts the diversity stage to
    rows the teacher got right (the paper does not). ``variant="notebook"`` is the public
    notebook's variant: once |S| >= ``matched_after`` (pre-selected rows count), the domain is
    drawn with weights = AIME domain counts + GPQA domain counts scaled to 0.5x the AIME total,
    both counted among the pre-selected rows (falls back to uniform when no matched domain is
    left). Source lists match source types by substring (S1_DATA trap 3).
    """

    preselect_sources: Sequence[str] = ("toy/aime", "toy/gpqa")
    long_sources: Sequence[str] = ("toy/math_train",)
    long_threshold: int = 5600
    require_teacher_correct: bool = False
    variant: str = "paper"
    matched_after: int = 700
    aime_sources: Sequence[str] = ("toy/aime", "AIME")
    gpqa_sources: Sequence[str] = ("toy/gpqa", "gpqa")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.variant not in VARIANT_SWITCHES:
            raise ConfigError(
                f"selection.strategy.variant={self.variant!r} is not one of "
                f"{sorted(VARIANT_SWITCHES)}"
            )
        switches = VARIANT_SWITCHES[self.variant]
        self.benchmark_matched_after = self.matched_after if switches else None
        self.preselect_sources = _tuple(self.preselect_sources)
        self.long_sources = _tuple(self.long_sources)
        self.aime_sources = _tuple(self.aime_sources)
        self.gpqa_sources = _tuple(self.gpqa_sources)

    def is_preselected(self, r: PoolRow) -> bool:
        """Teacher-correct and benchmark-like: AIME/GPQA source, or a long MATH-train trace."""
        if not r["teacher_correct"]:
            return False
        if source_matches(r["source"], self.preselect_sources):
            return True
        return (
            source_matches(r["source"], self.long_sources)
            and r["thinking_tokens"] > self.long_threshold
        )

    def matched_weights(self, preselected: list[PoolRow]) -> dict[str, float]:
        """Notebook variant: AIME domain counts + GPQA counts scaled to half the AIME total."""
        aime: dict[str, int] = {}
        gpqa: dict[str, int] = {}
        for r in preselected:
            if source_matches(r["source"], self.aime_sources):
                aime[r["domain"]] = aime.get(r["domain"], 0) + 1
            elif source_matches(r["source"], self.gpqa_sources):
                gpqa[r["domain"]] = gpqa.get(r["domain"], 0) + 1
        n_aime, n_gpqa = sum(aime.values()), sum(gpqa.values())
        scale = 0.5 * n_aime / n_gpqa if n_gpqa else 0.0
        weights = {d: float(c) for d, c in aime.items()}
        for d, c in gpqa.items():
            weights[d] = weights.get(d, 0.0) + c * scale
        return {d: w for d, w in weights.items() if w > 0}

    def __call__(self, rows: list[PoolRow], size: int, rng: random.Random) -> Selected:
        pool, funnel = apply_stages(rows, difficulty_stages(self.keep_asy_sources))
        pre = [r for r in pool if self.is_preselected(r)]
        funnel["preselected"] = len(pre)
        if size <= len(pre):
            _check_size(size, len(pre), "pre-selected")
            return _finish(pre[:size], funnel)

        pre_ids = {id(r) for r in pre}
        rest = [r for r in pool if id(r) not in pre_ids]
        if self.require_teacher_correct:
            rest = [r for r in rest if r["teacher_correct"]]
        funnel["candidates"] = len(rest)
        _check_size(size, len(pre) + len(rest), "pre-selected + diversity candidates")

        # Each domain sorted shortest -> longest (ties: later pool rows first), so rank r is
        # position m-1-r and popping near the end is O(r), not O(m).
        order = {id(r): i for i, r in enumerate(rest)}
        domains = {
            d: sorted(g, key=lambda r: (r["thinking_tokens"], -order[id(r)]))
            for d, g in _by_domain(rest).items()
        }
        active = list(domains)
        matched = self.matched_weights(pre) if self.benchmark_matched_after is not None else {}

        selected = list(pre)
        while len(selected) < size:
            d = self._pick_domain(active, matched, len(selected), rng)
            group = domains[d]
            r = geometric_rank(len(group), rng)
            selected.append(group.pop(len(group) - 1 - r))
            if not group:
                active.remove(d)
        return _finish(selected, funnel)

    def _pick_domain(
        self, active: list[str], matched: dict[str, float], n_selected: int, rng: random.Random
    ) -> str:
        after = self.benchmark_matched_after
        if after is not None and n_selected >= after:
            doms = [d for d in active if d in matched]
            if doms:
                return rng.choices(doms, weights=[matched[d] for d in doms])[0]
        return active[rng.randrange(len(active))]


@dataclass
class RandomSelection(_Base):
    """1K-random: ``size`` uniformly random quality-filtered rows (no difficulty filter)."""

    def __call__(self, rows: list[PoolRow], size: int, rng: random.Random) -> Selected:
        pool, funnel = apply_stages(rows, quality_stages(self.keep_asy_sources))
        _check_size(size, len(pool), "quality-filtered")
        return _finish(rng.sample(pool, size), funnel)


@dataclass
class DiverseSelection(_Base):
    """1K-diverse: pick a domain uniformly (non-exhausted), then a uniform row in it.

    No difficulty filter and no length preference, isolating the effect of domain diversity.
    """

    def __call__(self, rows: list[PoolRow], size: int, rng: random.Random) -> Selected:
        pool, funnel = apply_stages(rows, quality_stages(self.keep_asy_sources))
        _check_size(size, len(pool), "quality-filtered")
        domains = _by_domain(pool)
        active = list(domains)
        selected: list[PoolRow] = []
        while len(selected) < size:
            d = active[rng.randrange(len(active))]
            group = domains[d]
            i = rng.randrange(len(group))
            group[i], group[-1] = group[-1], group[i]  # swap-pop: O(1) removal
            selected.append(group.pop())
            if not group:
                active.remove(d)
        return _finish(selected, funnel)


@dataclass
class LongestSelection(_Base):
    """1K-longest: the ``size`` longest thinking traces after quality filtering (ties: pool order).

    Deterministic; ``rng`` is unused.
    """

    def __call__(self, rows: list[PoolRow], size: int, rng: random.Random) -> Selected:
        pool, funnel = apply_stages(rows, quality_stages(self.keep_asy_sources))
        _check_size(size, len(pool), "quality-filtered")
        ranked = sorted(pool, key=lambda r: -r["thinking_tokens"])  # stable: pool order on ties
        return _finish(ranked[:size], funnel)


@dataclass
class FullSelection(_Base):
    """59K-full: the whole pool in pool order, as the paper trained it (its 59K-full row is the
    published pool, not the quality-filtered one). Only rows without a trace or attempt go, since
    there is nothing to train on; ``size`` and ``rng`` are ignored."""

    uses_size: ClassVar[bool] = False

    def __call__(self, rows: list[PoolRow], size: int, rng: random.Random) -> Selected:
        trainable = [r for r in rows if r["thinking"] is not None and r["attempt"] is not None]
        return _finish(trainable, {"pool": len(rows), "with_trace": len(trainable)})


# Name -> class, for code that has an option name rather than a `_target_` (e.g. the report).
SELECTIONS: dict[str, type] = {
    "s1k": S1KSelection,
    "random": RandomSelection,
    "diverse": DiverseSelection,
    "longest": LongestSelection,
    "full": FullSelection,
}
