"""The row schemas every data source and selection step agrees on.

The toy world and the real 59K pool both produce pool rows with exactly these keys, so the same
filters and Algorithm 1 run on either. Rows are plain dicts (JSON-serialisable) to keep artifacts
readable with `jq` and loadable without s1exp.
"""

from __future__ import annotations

from typing import TypedDict


class PoolRow(TypedDict):
    """One featurized pool question (S1_SPEC section 1)."""

    id: str  # unique within the pool
    question: str
    solution: str  # reference solution text
    answer: str  # gold final answer, short string graded exactly by the toy grader
    thinking: str | None  # teacher reasoning trace; None = API error
    attempt: str | None  # teacher's answer text ("Answer: ..."); None = API error
    teacher_correct: bool | None  # teacher attempt matches the gold answer
    source: str  # e.g. "toy/aime", "toy/gpqa", "toy/math_train", ...
    domain: str  # diversity class (MSC code on the real pool, task family on the toy)
    thinking_tokens: int | None  # length of the thinking trace in tokens
    base_small_correct: bool | None  # stand-in for "Qwen2.5-7B-Instruct solves it"
    base_large_correct: bool | None  # stand-in for "Qwen2.5-32B-Instruct solves it"


class BenchmarkItem(TypedDict):
    """One evaluation question with its gold answer."""

    id: str
    question: str
    answer: str
    domain: str


POOL_FIELDS: tuple[str, ...] = tuple(PoolRow.__annotations__)
