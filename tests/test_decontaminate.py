"""Benchmark decontamination and exact-duplicate removal (S1_DATA section 3) on planted overlaps."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence

import pytest

from s1exp.data.decontaminate import (
    NgramIndex,
    check_ngram,
    decontaminate,
    drop_exact_duplicates,
    normalize,
    word_ngrams,
)
from s1exp.errors import ConfigError

BENCH = (
    "Find the number of ordered pairs of positive integers whose product equals one thousand "
    "and whose sum is a perfect square."
)
# Eight consecutive words of BENCH: "ordered pairs of positive integers whose product equals".
EIGHT = "ordered pairs of positive integers whose product equals"
SEVEN = "ordered pairs of positive integers whose product"


def row(i: int, question: str, source: str = "toy/src") -> dict[str, object]:
    return {"id": f"q{i}", "question": question, "source": source}


def ids(rows: Sequence[Mapping[str, object]]) -> list[object]:
    return [r["id"] for r in rows]


def test_normalize_lowercases_strips_and_collapses_whitespace_only() -> None:
    assert normalize("  Hello,\tWORLD \n\n again!  ") == "hello, world again!"
    assert normalize("x+y=1") == "x+y=1"  # punctuation stays


def test_word_ngrams_counts_windows_and_short_texts_have_none() -> None:
    grams = word_ngrams("a b c d", n=2)
    assert grams == {("a", "b"), ("b", "c"), ("c", "d")}
    assert word_ngrams("one two three four five six seven") == set()  # 7 words, n = 8
    assert len(word_ngrams(EIGHT)) == 1


def test_planted_eight_word_overlap_is_dropped_and_reported() -> None:
    rows = [
        row(0, f"Consider the {EIGHT} twelve; what is the answer?"),
        row(1, "A completely different question about triangles and their circumscribed circles."),
    ]
    kept, dropped = decontaminate(rows, ["unrelated reference text of many more words here", BENCH])
    assert ids(kept) == ["q1"]
    assert dropped == [
        {
            "id": "q0",
            "reason": "ngram_overlap",
            "ngram": EIGHT,
            "reference_index": 1,
            "matched_id": None,
        }
    ]


def test_seven_word_overlap_is_kept() -> None:
    rows = [row(0, f"Consider the {SEVEN} xyzzy twelve; what is the answer?")]
    kept, dropped = decontaminate(rows, [BENCH])
    assert ids(kept) == ["q0"] and dropped == []
    # The same question is dropped once n is 7: the overlap, not the wording, decides.
    kept7, dropped7 = decontaminate(rows, [BENCH], n=7)
    assert kept7 == [] and dropped7[0]["ngram"] == SEVEN


def test_case_and_whitespace_differences_still_match() -> None:
    shouted = "  CONSIDER   THE\n" + "\t".join(EIGHT.upper().split()) + "  now.  "
    kept, dropped = decontaminate([row(0, shouted)], [BENCH])
    assert kept == [] and ids(dropped) == ["q0"]


def test_punctuation_differences_do_not_match() -> None:
    # A comma glued to one word makes it a different word, so no 8-gram survives intact.
    punctuated = "Consider the ordered pairs of positive, integers whose product equals twelve."
    kept, dropped = decontaminate([row(0, punctuated)], [BENCH])
    assert ids(kept) == ["q0"] and dropped == []


def test_question_under_n_words_never_matches_even_when_identical() -> None:
    short = "What is two plus two equal to?"  # 7 words
    kept, dropped = decontaminate([row(0, short)], [short])
    assert ids(kept) == ["q0"] and dropped == []
    assert not NgramIndex([short]).overlaps(short)


def test_exact_duplicates_drop_later_rows_and_keep_order() -> None:
    rows = [
        row(0, "What is 1+1?"),
        row(1, "What is 2+2?"),
        row(2, "What is 1+1?"),
        row(3, "what is 1+1?"),  # differs in case: not an exact duplicate
        row(4, "What is 2+2?"),
        row(5, "What is 3+3?"),
    ]
    kept, dropped = drop_exact_duplicates(rows)
    assert ids(kept) == ["q0", "q1", "q3", "q5"]
    assert [(d["id"], d["reason"], d["matched_id"]) for d in dropped] == [
        ("q2", "exact_duplicate", "q0"),
        ("q4", "exact_duplicate", "q1"),
    ]


def test_decontaminate_keeps_input_order_of_kept_and_dropped() -> None:
    clean = "A question about the area of a regular hexagon inscribed in a unit circle."
    rows = [
        row(i, f"Variant {i}: the {EIGHT} x" if i % 3 == 0 else f"{clean} {i}") for i in range(9)
    ]
    kept, dropped = decontaminate(rows, [BENCH])
    assert ids(kept) == ["q1", "q2", "q4", "q5", "q7", "q8"]
    assert [d["id"] for d in dropped] == ["q0", "q3", "q6"]


def test_custom_field_and_missing_field_error() -> None:
    rows = [{"id": "a", "problem": f"the {EIGHT} now"}]
    kept, dropped = decontaminate(rows, [BENCH], field="problem")
    assert kept == [] and len(dropped) == 1
    with pytest.raises(ConfigError, match="data.decontaminate.field"):
        decontaminate(rows, [BENCH])


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_ngram_names_the_config_field(bad: object) -> None:
    with pytest.raises(ConfigError, match="data.decontaminate.ngram"):
        decontaminate([row(0, BENCH)], [BENCH], n=bad)
    with pytest.raises(ConfigError, match="data.decontaminate.ngram"):
        check_ngram(bad)


def test_index_first_match_names_the_first_reference_holding_the_ngram() -> None:
    index = NgramIndex(["short one", BENCH, f"also has {EIGHT} inside"])
    assert len(index) == 3
    match = index.first_match(f"the {EIGHT}")
    assert match is not None and match.reference == 1 and " ".join(match.ngram) == EIGHT
    assert index.first_match("nothing shared with any reference at all, not even close") is None


def test_speed_59k_questions_against_700_references() -> None:
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(20_000)]  # random 8-grams never collide by chance

    def text(k: int) -> str:
        return " ".join(rng.choices(vocab, k=k))

    references = [text(rng.randint(20, 120)) for _ in range(700)]
    rows = [row(i, text(rng.randint(5, 150))) for i in range(59_000)]
    planted = sorted(rng.sample(range(59_000), 200))
    for i in planted:
        ref = references[rng.randrange(700)].split()
        start = rng.randrange(len(ref) - 8 + 1)
        rows[i]["question"] = f"{rows[i]['question']} {' '.join(ref[start : start + 8]).upper()}"
    start_s = time.perf_counter()
    kept, dropped = decontaminate(rows, references)
    elapsed = time.perf_counter() - start_s
    print(f"decontaminate: 59,000 questions vs 700 references in {elapsed:.2f} s")
    assert [d["id"] for d in dropped] == [f"q{i}" for i in planted]
    assert len(kept) == 59_000 - 200
    assert elapsed < 30
