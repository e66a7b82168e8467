"""Benchmark decontamination and exact-duplicate removal of pool questions (S1_DATA section 3).

Why: a training question that shares a word 8-gram with an evaluation question would leak the
benchmark into SFT, so s1 dropped it before any selection. The functions here are pure (no I/O):
the pipeline loads the benchmark questions and writes the report of what went and why.

What s1exp does, against S1_DATA section 3:

- Normalization as s1: lowercase, strip, collapse whitespace runs to one space; punctuation is
  kept, so "x+y=1" and "x + y = 1" are different words. Words are the whitespace-split tokens.
- One shared word n-gram (n = 8, ``data.decontaminate.ngram``) between a question and any
  reference drops the question. A text with fewer than n words has no n-gram and never matches,
  even when it equals a benchmark question word for word (s1 behaves the same).
- Only the question text is compared (``field``), never solutions or teacher traces.
- Exact duplicates: a later row whose question string equals an earlier one is dropped (exact
  string equality, no normalization), as s1 did after concatenating its sources.
What it does not do:

- s1 also added each processed source's surviving questions to the reference list, so a later
  source was checked against the earlier ones (a cross-source near-duplicate filter). The
  released pools already went through it; s1exp loads one pool, so only the benchmark
  references and exact duplicates are applied.

- s1 dropped GPQA-extended rows whose question equals a GPQA Diamond question exactly. That is
  covered by the 8-gram check for every diamond question of 8 words or more, and the pool's GPQA
  rows were rewritten with appended answer choices (S1_DATA trap 5), so no exact check is kept.
- Which benchmark questions form the reference list is the caller's choice (s1: AIME validation,
  GPQA Diamond, openaimath test, LiveCodeBench v4; S1_DATA section 3).

Dropped rows are reported as small dicts (`Dropped`), in input order, so a report can say why
each row went without copying the row.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

from s1exp.errors import ConfigError

DEFAULT_NGRAM = 8
NGRAM_KEY = "data.decontaminate.ngram"
FIELD_KEY = "data.decontaminate.field"

Ngram = tuple[str, ...]
Row = dict[str, Any]


class Dropped(TypedDict):
    """Why one row was dropped; every key is always present (None where it does not apply)."""

    id: str | None
    reason: Literal["ngram_overlap", "exact_duplicate"]
    ngram: str | None  # the shared n-gram, words joined by one space
    reference_index: int | None  # index into `references` when a benchmark question matched
    matched_id: str | None  # id of the earlier pool row it duplicates


@dataclass(frozen=True)
class Match:
    """The first n-gram of a text found in an index, and the first reference that contains it."""

    reference: int  # position of the reference in the order it was added to the index
    ngram: Ngram


def check_ngram(n: int) -> int:
    """Return n when it is a usable n-gram size; ConfigError otherwise."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(
            f"{NGRAM_KEY}={n!r} must be an integer >= 1 (s1 uses 8): set {NGRAM_KEY}=8"
        )
    return n


def normalize(text: str) -> str:
    """s1's normalization: lowercase, strip, one space per whitespace run (punctuation kept)."""
    return " ".join(text.lower().split())


def _words(text: str | None) -> list[str]:
    """Words of the normalized text (splitting already strips and collapses whitespace)."""
    return text.lower().split() if text else []


def _windows(words: list[str], n: int) -> Iterator[Ngram]:
    """Consecutive n-word tuples, in text order; none when there are fewer than n words."""
    return zip(*(words[i:] for i in range(n)), strict=False)


def word_ngrams(text: str, n: int = DEFAULT_NGRAM) -> set[Ngram]:
    """Word n-grams of the normalized text; empty when the text has fewer than n words."""
    return set(_windows(_words(text), check_ngram(n)))


class NgramIndex:
    """Word n-grams of reference texts, for fast "shares an n-gram?" checks.

    Each n-gram maps to the first reference holding it, so a match can name its reference.
    A lookup is one C-level set probe per window of the queried text: 59K pool questions against
    ~730 benchmark questions take about a second.
    """

    def __init__(self, references: Iterable[str] = (), n: int = DEFAULT_NGRAM) -> None:
        self.n = check_ngram(n)
        self._first: dict[Ngram, int] = {}
        self._count = 0
        for text in references:
            self.add(text)

    def __len__(self) -> int:
        """Number of references added (including ones too short to have an n-gram)."""
        return self._count

    def add(self, text: str | None) -> int:
        """Add one reference; return its index (the order of addition)."""
        index = self._count
        for gram in _windows(_words(text), self.n):
            self._first.setdefault(gram, index)
        self._count += 1
        return index

    def overlaps(self, text: str | None) -> bool:
        """True when the text shares at least one n-gram with any reference."""
        return not self._first.keys().isdisjoint(_windows(_words(text), self.n))

    def first_match(self, text: str | None) -> Match | None:
        """The text's first n-gram (in text order) found in the index, or None."""
        get = self._first.get
        for gram in _windows(_words(text), self.n):
            reference = get(gram)
            if reference is not None:
                return Match(reference, gram)
        return None


def _text(row: Row, field: str) -> str | None:
    """The compared text of a row; ConfigError when the row has no such field."""
    try:
        return row[field]
    except KeyError:
        raise ConfigError(
            f"{FIELD_KEY}={field!r}: row {row.get('id')!r} has no field {field!r}; "
            f"set {FIELD_KEY} to the question field (s1: question)"
        ) from None


def _overlap_drop(
    row: Row, match: Match, reference_index: int | None, matched_id: str | None
) -> Dropped:
    """The report entry of a row dropped for sharing `match` with a reference."""
    return Dropped(
        id=row.get("id"),
        reason="ngram_overlap",
        ngram=" ".join(match.ngram),
        reference_index=reference_index,
        matched_id=matched_id,
    )


def decontaminate(
    rows: list[Row],
    references: Sequence[str],
    n: int = DEFAULT_NGRAM,
    field: str = "question",
) -> tuple[list[Row], list[Dropped]]:
    """Keep rows whose `field` shares no word n-gram with any reference; (kept, dropped) in order.

    `references` are benchmark question texts; a dropped entry's reference_index points into it.
    """
    index = NgramIndex(references, n)
    kept: list[Row] = []
    dropped: list[Dropped] = []
    for row in rows:
        text = _text(row, field)
        if not index.overlaps(text):
            kept.append(row)
            continue
        match = index.first_match(text)
        assert match is not None  # overlaps() found one
        dropped.append(_overlap_drop(row, match, match.reference, None))
    return kept, dropped


def drop_exact_duplicates(
    rows: list[Row], field: str = "question"
) -> tuple[list[Row], list[Dropped]]:
    """Drop each row whose `field` string equals an earlier row's exactly; keep the first.

    No normalization (s1 compared the raw question strings). Returns (kept, dropped) in order.
    """
    first_id: dict[Any, str | None] = {}
    kept: list[Row] = []
    dropped: list[Dropped] = []
    for row in rows:
        text = _text(row, field)
        if text in first_id:
            dropped.append(
                Dropped(
                    id=row.get("id"),
                    reason="exact_duplicate",
                    ngram=None,
                    reference_index=None,
                    matched_id=first_id[text],
                )
            )
            continue
        first_id[text] = row.get("id")
        kept.append(row)
    return kept, dropped
