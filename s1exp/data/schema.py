"""The row schemas every data source, featurizer and selection step agrees on.

A pool row starts as what a loader can read from a dataset (the raw fields) and gains the
features the s1 filters need. A feature key that is absent means "not featurized yet" (the
featurize stage computes it); a present None means "featurized, but undefined" (an API error, no
reference solution), which quality filter 1 drops, as the public notebook does. Rows are plain
dicts (JSON-serialisable) to keep artifacts readable with `jq` and loadable without s1exp.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict


class PoolRow(TypedDict):
    """One pool question (S1_SPEC section 1, S1_DATA section 1)."""

    id: str  # unique within the pool
    question: str
    solution: str | None  # the source's reference solution; None where the source has none
    thinking: str | None  # teacher reasoning trace; None = API error
    attempt: str | None  # teacher's answer text; None = API error
    source: str  # source_type, e.g. "qq8933/AIME_1983_2024", "toy/aime"
    answer: NotRequired[str | None]  # short gold answer, where a source has one (the toy)
    cot_type: NotRequired[str | None]  # math/science/crossword/... (s1 pools)
    metadata: NotRequired[object]  # the source's leftover fields (parsed Python repr)
    teacher_correct: NotRequired[bool | None]  # teacher attempt matches the reference
    domain: NotRequired[str | None]  # diversity class: MSC title (real), task family (toy)
    thinking_tokens: NotRequired[int | None]  # tokens of the thinking trace
    base_small_correct: NotRequired[bool | None]  # "Qwen2.5-7B-Instruct solves it"
    base_large_correct: NotRequired[bool | None]  # "Qwen2.5-32B-Instruct solves it"


class BenchmarkItem(TypedDict):
    """One evaluation question with its gold answer."""

    id: str
    question: str
    answer: str
    domain: str
    choices: NotRequired[dict[str, str]]  # multiple choice: letter -> the column it shows


RAW_FIELDS: tuple[str, ...] = ("id", "question", "solution", "thinking", "attempt", "source")
"""What every loader must provide (None allowed except for id, question and source)."""

OPTIONAL_FIELDS: tuple[str, ...] = ("answer", "cot_type", "metadata")

FEATURE_FIELDS: tuple[str, ...] = (
    "teacher_correct",
    "domain",
    "thinking_tokens",
    "base_small_correct",
    "base_large_correct",
)
"""What the featurize stage adds and the filters read."""

POOL_FIELDS: tuple[str, ...] = RAW_FIELDS + OPTIONAL_FIELDS + FEATURE_FIELDS

REQUIRED_FOR_SELECTION: tuple[str, ...] = ("thinking", "attempt", *FEATURE_FIELDS)
"""Quality filter 1 drops a row where any of these is None (the notebook's API-error filter)."""
