"""Quality and difficulty filters of S1_SPEC section 1 (59K pool -> 24,496 hard questions).

Each filter is a small pure function ``list[PoolRow] -> list[PoolRow]`` that keeps the input order,
so the selection strategies can chain them and report the funnel (pool -> quality1 -> quality2 ->
difficulty) that S1_SPEC's table lists.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

from s1exp.data.schema import REQUIRED_FOR_SELECTION, PoolRow

Filter = Callable[[list[PoolRow]], list[PoolRow]]

# Source-type substrings whose "[asy]" figures are kept: AIME questions are often stated with
# Asymptote code. The notebook keeps a row when its source_type contains "AIME".
KEEP_ASY_SOURCES: tuple[str, ...] = ("AIME", "toy/aime")

ASY_MARKER = "[asy]"
# One combined pattern for the other quality-2 problems, so 59K questions take one scan each:
#   "![Image]"             a markdown image the model cannot see;
#   p(?:[1-9]\d{0,2})\.    the notebook's substring loop over "p{i}." for i in 1..999 (no leading
#                          zeros, at most three digits; "p1234." matches no "p{i}." either);
#   \*\*(?=.*\d)[^\s\]]*\*\*   the notebook's bold-with-digit regex, verbatim.
FORMATTING_PATTERN = re.compile(
    r"!\[Image\]"
    r"|p(?:[1-9]\d{0,2})\."
    r"|\*\*(?=.*\d)[^\s\]]*\*\*"
)


def drop_api_errors(rows: list[PoolRow]) -> list[PoolRow]:
    """Quality 1: drop rows with any feature missing (None or absent), i.e. a failed API call."""
    return [r for r in rows if all(r.get(k) is not None for k in REQUIRED_FOR_SELECTION)]


def source_matches(source: str, patterns: Iterable[str]) -> bool:
    """Source types are matched by substring: released prefixes differ from the notebook's
    ("simplescaling/openaimath/..." vs "qfq/openaimath", S1_DATA trap 3)."""
    return any(p in source for p in patterns)


def has_formatting_problem(
    question: str, source: str, keep_asy_sources: Iterable[str] = KEEP_ASY_SOURCES
) -> bool:
    """True when the question matches a quality-2 pattern ("[asy]" is fine for AIME sources)."""
    if ASY_MARKER in question and not source_matches(source, keep_asy_sources):
        return True
    return FORMATTING_PATTERN.search(question) is not None


def drop_formatting(
    rows: list[PoolRow], keep_asy_sources: Iterable[str] = KEEP_ASY_SOURCES
) -> list[PoolRow]:
    """Quality 2: drop questions with formatting problems (figures, images, list markers, bold)."""
    keep = tuple(keep_asy_sources)
    out = []
    for r in rows:
        q = r["question"]
        if ASY_MARKER in q and not source_matches(r["source"], keep):
            continue
        if FORMATTING_PATTERN.search(q) is not None:
            continue
        out.append(r)
    return out


def drop_solved(rows: list[PoolRow]) -> list[PoolRow]:
    """Difficulty: drop questions that either base model (7B or 32B stand-in) already solves."""
    return [r for r in rows if not (r["base_small_correct"] or r["base_large_correct"])]


def quality_stages(keep_asy_sources: Iterable[str] = KEEP_ASY_SOURCES) -> list[tuple[str, Filter]]:
    """The two quality stages, named as in the funnel."""
    keep = tuple(keep_asy_sources)
    return [
        ("quality1", drop_api_errors),
        ("quality2", lambda rows: drop_formatting(rows, keep)),
    ]


def difficulty_stages(
    keep_asy_sources: Iterable[str] = KEEP_ASY_SOURCES,
) -> list[tuple[str, Filter]]:
    """Quality stages followed by the difficulty filter (the input of Algorithm 1)."""
    return [*quality_stages(keep_asy_sources), ("difficulty", drop_solved)]


def apply_stages(
    rows: list[PoolRow], stages: Sequence[tuple[str, Filter]]
) -> tuple[list[PoolRow], dict[str, int]]:
    """Run the filters in order; return the kept rows and the funnel {"pool": n, stage: n, ...}."""
    funnel = {"pool": len(rows)}
    for name, stage in stages:
        rows = stage(rows)
        funnel[name] = len(rows)
    return rows, funnel


def filter_counts(
    rows: list[PoolRow],
    difficulty: bool = True,
    keep_asy_sources: Iterable[str] = KEEP_ASY_SOURCES,
) -> dict[str, int]:
    """Only the funnel counts: pool -> quality1 -> quality2 (-> difficulty)."""
    stages = difficulty_stages(keep_asy_sources) if difficulty else quality_stages(keep_asy_sources)
    return apply_stages(rows, stages)[1]
