"""The toy world: determinism, schema, flawed rows, benchmark split, traces, grader."""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest

from s1exp.data.schema import FEATURE_FIELDS, RAW_FIELDS, REQUIRED_FOR_SELECTION
from s1exp.data.toy import (
    FAMILIES,
    MAX_STEPS,
    ROUND,
    TOKEN_RE,
    count_tokens,
    instruct_corpus,
    is_benchmark_question,
    make_benchmark,
    make_pool,
    make_problem,
    pretrain_corpus,
)
from s1exp.evaluate.grading import exact_match as grade
from s1exp.evaluate.grading import extract_answer, normalize_answer

BOLD_RE = re.compile(r"\*\*(?=.*\d)[^\s\]]*\*\*")
ENUM_RE = re.compile(r"p(?:[1-9]\d{0,2})\.")

TOY_FIELDS = (*RAW_FIELDS, "answer", *FEATURE_FIELDS)  # the toy pool is born featurized


def _format_flaw(q: str) -> str | None:
    if "[asy]" in q:
        return "asy"
    if "![Image]" in q:
        return "image"
    if ENUM_RE.search(q):
        return "enum"
    if BOLD_RE.search(q):
        return "bold"
    return None


def _api_error(row: dict) -> bool:
    return any(row[k] is None for k in REQUIRED_FOR_SELECTION)


@pytest.fixture(scope="module")
def pool() -> list[dict]:
    return make_pool(size=2000, seed=0)


def _clean(pool: list[dict]) -> list[dict]:
    return [r for r in pool if not _api_error(r) and _format_flaw(r["question"]) is None]


def test_deterministic(pool):
    assert make_pool(size=2000, seed=0) == pool
    other = make_pool(size=2000, seed=1)
    assert [r["question"] for r in other] != [r["question"] for r in pool]
    assert make_benchmark(seed=5) == make_benchmark(seed=5)
    assert pretrain_corpus(50, 3) == pretrain_corpus(50, 3)


def test_does_not_touch_global_random():
    random.seed(99)
    before = random.random()
    random.seed(99)
    make_pool(size=100, seed=0)
    make_benchmark(size=10)
    pretrain_corpus(10, 0)
    assert random.random() == before


def test_schema_and_ids(pool):
    for row in pool:
        assert set(row) == set(TOY_FIELDS)
        assert row["domain"] in FAMILIES
        assert row["source"] in {
            "toy/aime",
            "toy/gpqa",
            "toy/math_train",
            "toy/numina",
            "toy/olympiad",
        }
    assert len({r["id"] for r in pool}) == len(pool)
    assert pool[0]["id"] == "toy-0-0"
    assert len({r["question"] for r in pool}) == len(pool)
    assert len(FAMILIES) >= 6


def test_flawed_rows(pool):
    flaws = Counter(_format_flaw(r["question"]) for r in pool)
    for kind in ("asy", "image", "enum", "bold"):
        assert flaws[kind] > 0, kind
    assert any(
        r["thinking"] is None and r["attempt"] is None and r["teacher_correct"] is None
        for r in pool
    )
    assert any(r["thinking"] is not None and r["thinking_tokens"] is None for r in pool)
    asy_sources = {r["source"] for r in pool if _format_flaw(r["question"]) == "asy"}
    assert "toy/aime" in asy_sources and len(asy_sources) > 1
    n_bad = sum(_api_error(r) or _format_flaw(r["question"]) is not None for r in pool)
    assert n_bad == round(0.08 * len(pool))
    assert not any(_api_error(r) for r in make_pool(size=200, flawed_fraction=0.0))


def test_benchmark_disjoint():
    bench = make_benchmark()
    assert len(bench) == 64 and len({b["question"] for b in bench}) == 64
    assert all(is_benchmark_question(b["question"]) for b in bench)
    counts = Counter(b["domain"] for b in bench)
    assert set(counts) == set(FAMILIES) and max(counts.values()) - min(counts.values()) <= 1
    questions = {b["question"] for b in bench}
    for seed in range(4):
        for row in make_pool(size=1000, seed=seed):
            assert row["question"] not in questions
            if _format_flaw(row["question"]) is None:
                assert not is_benchmark_question(row["question"])
    for question, solution in pretrain_corpus(2000, 0):
        assert question not in questions and "Wait" not in solution
        assert solution.endswith(".") and "The answer is" in solution


STEP_RE = re.compile(r"(\d+)([+-])(\d)=(\d+), (\d) left\.")
QUESTION_RE = re.compile(r"Count (up|down) by (\d) from (\d+) in (\d) steps\.")


def _question(question: str) -> tuple[str, str, int, int]:
    """(direction, stride, start, steps) of a walk question."""
    verb, stride, start, steps = QUESTION_RE.fullmatch(question).groups()
    return verb, stride, int(start), int(steps)


def _walk(row: dict) -> tuple[list[tuple[int, int]], list[str]]:
    """(steps left, value) after every step line of a trace, and its other lines, checking each
    step's arithmetic and that the steps left count down from the question's walk length."""
    verb, stride, start, k = _question(row["question"])
    steps, other, value = [], [], start
    for line in row["thinking"].split("\n"):
        if m := STEP_RE.fullmatch(line):
            a, sign, d, result, left = m.groups()
            assert int(a) == value and sign == ("+" if verb == "up" else "-") and d == stride
            value = int(a) + int(d) if sign == "+" else int(a) - int(d)
            assert int(result) == value and int(left) == k - len(steps) - 1, line
            steps.append((int(left), value))
        else:
            other.append(line)
    return steps, other


def _pauses(row: dict) -> list[int]:
    """The steps left at each point where the teacher stated an answer."""
    left, stated = None, []
    for line in row["thinking"].split("\n"):
        if m := STEP_RE.fullmatch(line):
            left = int(m.group(5))
        elif line.startswith("So the answer is"):
            stated.append(left)
    return stated


def test_traces(pool):
    """Teacher traces: right arithmetic; an answer whenever a multiple of ROUND steps is left;
    there either "Wait, j steps are left." and more steps, or the end (a wrong answer)."""
    clean = _clean(pool)
    for row in clean:
        k = _question(row["question"])[3]
        steps, other = _walk(row)
        final = row["attempt"].removeprefix("Answer: ")
        assert row["attempt"].startswith("Answer: ")
        assert final == str(steps[-1][1])  # the value after the last step it wrote
        assert row["teacher_correct"] == (len(steps) == k) == (final == row["answer"])
        assert _pauses(row) == [left for left, _ in steps if left % ROUND == 0]
        for left in _pauses(row)[:-1]:
            assert any(line.startswith(f"Wait, {left} steps are left from ") for line in other)
        assert row["thinking"].endswith((f"So the answer is {final}.", f"so it is {final}."))
        assert row["solution"].endswith(f"The answer is {row['answer']}.")
        assert len(row["question"]) < 80
    long = [r for r in clean if _question(r["question"])[3] > ROUND]
    resumed = sum(len(_pauses(r)) > 1 for r in long) / len(long)
    assert 0.28 <= resumed <= 0.42  # TEACHERS["gemini"].resume[0] = 0.35
    wrong = sum(not r["teacher_correct"] for r in clean) / len(clean)
    assert 0.4 <= wrong <= 0.6
    solved = [r for r in clean if not (r["base_small_correct"] or r["base_large_correct"])]
    assert 0.3 <= len(solved) / len(clean) <= 0.6
    hard = Counter(r["source"] for r in pool)
    assert 0.02 <= hard["toy/aime"] / len(pool) <= 0.1 and hard["toy/gpqa"] > 0


def test_base_model_corpus_always_goes_on():
    """The toy base model's traces pause like the teacher's but always finish the walk, and they
    are disjoint from the benchmark."""
    questions = {b["question"] for b in make_benchmark(size=256)}
    corpus = instruct_corpus(600, 0)
    assert corpus == instruct_corpus(600, 0)
    for question, thinking, answer in corpus:
        row = {"question": question, "thinking": thinking}
        steps, _ = _walk(row)
        assert question not in questions
        assert len(steps) == _question(question)[3] and answer == str(steps[-1][1])
        assert _pauses(row)[-1] == 0  # the last stated answer comes after the last step
    paused = sum("steps are left from" in thinking for _, thinking, _ in corpus) / len(corpus)
    assert paused > 0.4


def test_second_teacher_goes_on_more():
    """s1K-1.1's kind of teacher (r1) writes longer traces that go on after "Wait" more, on the
    same questions and base columns as s1K's (Table 5's two trace sources); s1K's pool is
    unchanged."""
    gemini, r1 = make_pool(size=1500, seed=4), make_pool(size=1500, seed=4, teacher="r1")
    same = ("id", "question", "answer", "source", "domain", "base_small_correct")
    assert [[r[k] for k in same] for r in gemini] == [[r[k] for k in same] for r in r1]
    assert make_pool(size=1500, seed=4, teacher="gemini") == gemini
    g, d = _clean(gemini), _clean(r1)
    mean = lambda rows: sum(r["thinking_tokens"] or 0 for r in rows) / len(rows)  # noqa: E731
    assert mean(d) > 1.2 * mean(g)
    right = lambda rows: sum(r["teacher_correct"] for r in rows) / len(rows)  # noqa: E731
    assert right(d) > right(g) + 0.2
    assert sum("Wait" in r["thinking"] for r in d) > 1.5 * sum("Wait" in r["thinking"] for r in g)
    with pytest.raises(ValueError, match="data.pool.teacher"):
        make_pool(size=10, teacher="gpt")


def _spec_count(text: str) -> int:
    """The length proxy's rule, written without a regex: every digit is one token (as in Qwen's
    pre-tokenizer), a run of letters is one, every other visible character is one, white space
    is none."""
    n, in_word = 0, False
    for ch in text:
        word = (ch.isalnum() or ch == "_") and not ch.isdigit()
        if word:
            n += not in_word
        elif not ch.isspace():
            n += 1
        in_word = word
    return n


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        (
            "638-3=635, 2 left.",
            ["6", "3", "8", "-", "3", "=", "6", "3", "5", ",", "2", "left", "."],
        ),
        (
            "Wait, 6 steps are left from 638.",
            ["Wait", ",", "6", "steps", "are", "left", "from", "6", "3", "8", "."],
        ),
        ("So the answer is 635.", ["So", "the", "answer", "is", "6", "3", "5", "."]),
        ("Count down by 3\nfrom  641", ["Count", "down", "by", "3", "from", "6", "4", "1"]),
        ("", []),
    ],
)
def test_token_pattern_splits_toy_text(text: str, tokens: list[str]) -> None:
    """TOKEN_RE on the toy world's own lines: digits one by one, words whole, punctuation
    alone, no white space; count_tokens is the number of those pieces."""
    assert TOKEN_RE.findall(text) == tokens
    assert count_tokens(text) == len(tokens) == _spec_count(text)


def test_thinking_tokens(pool: list[dict]) -> None:
    """Every row's thinking_tokens follows the length rule (checked by a regex-free count), so
    longer walks and more rounds weigh more: rank-by-length in Algorithm 1 depends on it."""
    counted = [r for r in pool if r["thinking"] is not None and r["thinking_tokens"] is not None]
    assert len(counted) > 0.8 * len(pool)
    for row in counted:
        assert row["thinking_tokens"] == _spec_count(row["thinking"]), row["thinking"]


@pytest.mark.parametrize("domain", sorted(FAMILIES))
def test_make_problem_answers_are_right(domain):
    rng = random.Random(7)
    lengths = set()
    for _ in range(60):
        question, solution, answer = make_problem(domain, rng)
        verb, stride, start, k = _question(question)
        sign = 1 if verb == "up" else -1
        assert answer == str(start + sign * int(stride) * k)
        assert 100 <= int(answer) <= 999
        assert solution.count("\n") == k and solution.endswith(f"The answer is {answer}.")
        lengths.add(k)
    assert lengths == set(range(1, MAX_STEPS + 1))


def test_extract_answer():
    assert extract_answer("Final Answer: 42") == "42"
    assert extract_answer("blah \\boxed{7} then \\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"
    assert extract_answer("Answer: 3\nmore text\nAnswer:  5 \nend") == "5"
    assert extract_answer("Answer:\n 12") == "12"
    assert extract_answer("no answer here") is None
    assert extract_answer("Answer: ") is None


@pytest.mark.parametrize(
    "pred,gold",
    [
        ("42", "42"),
        (" 42. ", "42"),
        ("+5", "5"),
        ("9.90", "9.9"),
        ("1,234", "1234"),
        ("1 234", "1234"),
        ("Raspberry", "raspberry"),
        ("17<38<52", "17 < 38 < 52"),
        ("007", "7"),
        (extract_answer("Final Answer: 42"), "42"),
        (extract_answer("\\boxed{7}"), "7"),
    ],
)
def test_grade_right(pred, gold):
    assert grade(pred, gold)


@pytest.mark.parametrize(
    "pred,gold",
    [
        ("41", "42"),
        ("9.11", "9.9"),
        ("-5", "5"),
        (None, "42"),
        ("", "42"),
        ("38 < 17 < 52", "17 < 38 < 52"),
        (extract_answer("Answer: 13"), "12"),
    ],
)
def test_grade_wrong(pred, gold):
    assert not grade(pred, gold)


def test_normalize_answer():
    assert normalize_answer("9.50") == "9.5"
    assert normalize_answer("100") == "100"
    assert normalize_answer("1.0") == "1"
    assert normalize_answer("-0") == "0"
    assert normalize_answer("Yes.") == "yes"
