"""Answer extraction and grading as s1's evaluation does it, with real math-verify.

Every math case goes the whole way: a model reply -> extract_answer -> math_equal. The timeout
tests run math_equal where math-verify's own signal.alarm cannot: worker threads, daemonic
multiprocessing workers (fork and spawn), and on inputs that make sympy run for hours.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from s1exp.evaluate import grading
from s1exp.evaluate.grading import (
    exact_match,
    extract_answer,
    extract_choice,
    last_boxed,
    math_equal,
    math_equal_many,
)

THINK = "<|im_start|>think\nLet me work it out. First guess \\boxed{999}.\n"

# How models write a final answer: in the answer turn with a box, after the forced
# "Final Answer:" in display math, and as a bare "Answer :" line without delimiters.
TEMPLATES = (
    THINK + "<|im_start|>answer\nAnswer: The value is $\\boxed{ANSWER}$.<|im_end|>",
    THINK + "<|im_start|>answer\nFinal Answer: $$ANSWER$$<|im_end|>",
    "So we are done.\n**Final Answer:** ANSWER\n",
    "Answer : ANSWER",
)

# (predicted, gold, equal): MATH500 / AIME style answers and how math-verify should judge them.
MATH_CASES = [
    ("\\frac{3}{4}", "0.75", True),
    ("\\dfrac{3}{4}", "\\frac34", True),
    ("3/4", "\\frac{3}{4}", True),
    ("\\frac{3}{4}", "\\frac{4}{3}", False),
    ("\\dfrac{14}{3}", "\\frac{14}{3}", True),
    ("2\\sqrt{3}", "\\sqrt{12}", True),
    ("2\\sqrt{3}", "3\\sqrt{2}", False),
    ("6\\sqrt{2}", "\\sqrt{72}", True),
    ("\\frac{1}{\\sqrt{2}}", "\\frac{\\sqrt{2}}{2}", True),
    ("\\sqrt[3]{2}", "2^{1/3}", True),
    ("(-\\infty, 3]", "(-\\infty,3]", True),
    ("[2,5)", "(2,5]", False),
    ("(-\\infty,0)\\cup(1,\\infty)", "(-\\infty, 0) \\cup (1, \\infty)", True),
    ("(-\\infty,0)\\cup(1,\\infty)", "(-\\infty, 1) \\cup (0, \\infty)", False),
    ("\\{1,2\\}", "\\{2,1\\}", True),
    ("\\{1,2\\}", "\\{1,2,3\\}", False),
    ("2, -3", "-3, 2", True),
    ("2, -3", "3, -2", False),
    ("30^\\circ", "30", True),
    ("90", "90^\\circ", True),
    ("\\text{Evelyn}", "\\text{Evelyn}", True),
    ("\\text{Evelyn}", "\\text{Emily}", False),
    ("(C)", "\\text{(C)}", True),
    ("\\text{(B)}", "\\text{(C)}", False),
    ("\\frac{\\sqrt{3}}{2}", "\\frac{\\sqrt3}{2}", True),
    ("\\frac{9}{4}\\pi", "\\frac{9\\pi}{4}", True),
    ("4\\pi", "2\\pi", False),
    ("(1,2)", "(2,1)", False),
    ("(3, -\\frac{1}{2})", "\\left(3, -\\frac12\\right)", True),
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}", True),
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix}2\\\\1\\end{pmatrix}", False),
    ("50\\%", "50", True),
    ("023", "23", True),
    ("017", "17", True),
    ("204", "240", False),
    ("-\\frac{1}{2}", "-0.5", True),
    ("-\\frac{1}{2}", "0.5", False),
    ("-5", "5", False),
    ("1.2 \\times 10^{3}", "1200", True),
    ("1.2e3", "1200", True),
    ("2.5 \\times 10^{-3}", "0.0025", True),
    ("1.2 \\times 10^{3}", "120", False),
    ("5\\text{ cm}", "5", True),
    ("18\\text{ days}", "18", True),
    ("5\\text{ cm}", "6", False),
    ("x^2+2x+1", "(x+1)^2", True),
    ("x^2+2x+1", "(x-1)^2", False),
    ("y = 2x + 3", "y=2x+3", True),
    ("y = 2x + 3", "y = 3x + 2", False),
    ("x=3", "3", True),
    ("10,000", "10000", True),
    ("\\$18.90", "18.90", True),
    ("12^{\\mathrm{th}}", "12", True),
    ("\\binom{5}{2}", "10", True),
    ("\\pi", "3.14", False),
    ("0.333", "\\frac13", False),
    ("3+4i", "4i+3", True),
    ("0.\\overline{3}", "\\frac13", True),
    ("\\sin 30^\\circ", "\\frac12", True),
    ("0.8660254", "\\frac{\\sqrt{3}}{2}", False),
]

# Cases math-verify 0.9 gets wrong: kept with the right outcome, expected to fail.
MATH_VERIFY_WRONG = {
    ("0.\\overline{3}", "\\frac13"): "math-verify parses 0.\\overline{3} as 0",
    ("\\sin 30^\\circ", "\\frac12"): "math-verify drops ^\\circ: sin of 30 radians",
    ("0.8660254", "\\frac{\\sqrt{3}}{2}"): (
        "math-verify rounds to 6 places, so a decimal passes for an irrational gold; MATH "
        "graders and s1's judge prompt ask for an equivalent answer"
    ),
}
SOUND_CASES = [c for c in MATH_CASES if c[:2] not in MATH_VERIFY_WRONG]


def _math_params() -> list:
    """Each case with its index (which picks the reply template), xfail where noted."""
    return [
        pytest.param(
            i,
            case,
            id=f"{case[0]}|{case[1]}",
            marks=[pytest.mark.xfail(strict=True, reason=MATH_VERIFY_WRONG[case[:2]])]
            if case[:2] in MATH_VERIFY_WRONG
            else [],
        )
        for i, case in enumerate(MATH_CASES)
    ]


@pytest.mark.parametrize("index, case", _math_params())
def test_math_reply_extract_then_grade(index: int, case: tuple[str, str, bool]) -> None:
    predicted, gold, equal = case
    reply = TEMPLATES[index % len(TEMPLATES)].replace("ANSWER", predicted)
    assert extract_answer(reply) == predicted
    assert math_equal(extract_answer(reply), gold) is equal


def test_enough_math_cases_of_both_outcomes() -> None:
    outcomes = [c[2] for c in SOUND_CASES]
    assert len(outcomes) >= 40 and outcomes.count(False) >= 15 and outcomes.count(True) >= 15


def test_prose_answer_is_read_as_text() -> None:
    """No box and a sentence after "Answer:": math-verify finds the number in the prose."""
    reply = "<|im_start|>answer\nAnswer: The value is 5.<|im_end|>"
    assert extract_answer(reply) == "The value is 5"
    assert math_equal(extract_answer(reply), "5")
    assert not math_equal(extract_answer(reply), "6")


def test_math_equal_many_matches_math_equal() -> None:
    pairs = [(p, g) for p, g, _ in SOUND_CASES[:20]]
    assert math_equal_many(pairs) == [math_equal(p, g) for p, g in pairs]
    assert math_equal_many([]) == []


# (reply, gold letter, graded correct)
GPQA_CASES = [
    ("<|im_start|>think\nB looks wrong.\n<|im_start|>answer\nAnswer: C<|im_end|>", "C", True),
    ("<|im_start|>answer\nAnswer: The correct option is C<|im_end|>", "C", True),
    ("<|im_start|>answer\nAnswer: (B)", "B", True),
    ("<|im_start|>answer\nAnswer: D) 4.2 eV", "D", True),
    ("<|im_start|>answer\nAnswer: D), because the spin flips", "D", True),
    ("<|im_start|>answer\nThe answer is $\\boxed{\\text{A}}$.", "A", True),
    ("<|im_start|>answer\nFinal Answer: \\textbf{B}", "B", True),
    ("<|im_start|>answer\n**Answer:** **C**", "C", True),
    ("<|im_start|>answer\nAnswer: c<|im_end|>", "C", True),
    ("<|im_start|>answer\nOption A is ruled out; the correct option is (B).", "B", True),
    ("<|im_start|>answer\nI pick option (D).", "D", True),
    ("<|im_start|>answer\nAnswer: C.", "A", False),
    ("<|im_start|>answer\nAnswer: The correct option is C", "B", False),
    ("<|im_start|>answer\nAnswer: None of the above", "A", False),
]


@pytest.mark.parametrize("reply, gold, correct", GPQA_CASES)
def test_gpqa_reply_graded_by_letter(reply: str, gold: str, correct: bool) -> None:
    assert (extract_choice(reply) == gold) is correct


@pytest.mark.parametrize(
    "answer, letter",
    [
        ("C", "C"),
        ("(C)", "C"),
        ("C)", "C"),
        ("C.", "C"),
        ("\\text{C}", "C"),
        ("\\textbf{C}", "C"),
        ("**C**", "C"),
        ("C) 4.2 eV", "C"),
        ("The correct option is C", "C"),
        ("option (B)", "B"),
        ("c", "C"),
        ("None of the above", None),
        ("I cannot tell", None),
        ("E", None),
        ("(E) 7", None),
        ("A good case can be made either way", None),
        ("option A or option B", None),
    ],
)
def test_extract_choice_forms(answer: str, letter: str | None) -> None:
    assert extract_choice(f"Answer: {answer}") == letter
    assert extract_choice(f"<|im_start|>answer\n{answer}<|im_end|>") == letter


def test_answer_label_and_the_correct_option() -> None:
    """The case that read "T" (the first letter of "The") before."""
    assert extract_choice("Answer: The correct option is C") == "C"


@pytest.mark.parametrize(
    "reply, answer",
    [
        ("Answer : 5", "5"),
        ("Final Answer: 5", "5"),
        ("ANSWER:5.", "5"),
        ("First \\boxed{1}, then \\boxed{2}", "2"),
        ("\\boxed{\\frac{\\sqrt{3}}{2}}", "\\frac{\\sqrt{3}}{2}"),
        ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),
        ("\\fbox{7}", "7"),
        ("so $\\boxed 42$ it is", "42"),
        ("\\boxed{5} and then the budget ran out \\boxed{\\frac{1", "5"),
        ("Answer: 3\nwait, no.\nAnswer: 4", "4"),
        ("Final Answer:\n\n  12  \n", "12"),
        ("**Final Answer:** $\\frac{1}{2}$.", "\\frac{1}{2}"),
        ("Answer: $5$ or $6$", "$5$ or $6$"),
        (THINK + "<|im_start|>answer\nAnswer: \\boxed{4}<|im_end|>", "4"),
        (THINK + "<|im_start|>answer\nAnswer: 4<|im_end|>", "4"),
        ("Answer: 1\n<|im_start|>answer\nAnswer: 2<|im_end|>\nAnswer: 3", "2"),
        ("<|im_start|>assistant\n\\boxed{8}", "8"),
        ("<|im_start|>answer\n023<|im_end|>", "023"),
        ("no answer here", None),
        ("Answer: ", None),
        ("\\boxed{}", None),
        ("<|im_start|>answer\nThe value is five", None),
    ],
)
def test_extract_answer_edge_cases(reply: str, answer: str | None) -> None:
    assert extract_answer(reply) == answer


def test_thinking_box_not_taken_when_answer_turn_has_one() -> None:
    reply = "<|im_start|>think\n\\boxed{3}\n<|im_start|>answer\nThe answer is \\boxed{4}"
    assert extract_answer(reply) == "4"
    assert last_boxed(reply) == "4"


def test_integer_answers_compare_as_integers() -> None:
    """s1 compares digit strings via int; the toy's exact match normalizes the same way."""
    assert math_equal("023", "23") and exact_match("023", "23")
    assert not math_equal("023", "32") and not exact_match("023", "32")
    long = "7" * 5000  # past CPython's 4300-digit limit for int()
    assert math_equal("0" + long, long) and not math_equal(long + "1", long + "2")


def test_runaway_answer_is_not_equal() -> None:
    assert not math_equal("1+" * 6000 + "1", "6001")


def test_bad_timeout_names_the_field() -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        math_equal("1", "1.0", timeout_s=0)


def test_main_thread_alarm_leaves_the_callers_timer_and_handler() -> None:
    def handler(signum: int, frame: object) -> None:
        raise AssertionError("the caller's alarm fired during the test")

    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 100.0)
    try:
        assert math_equal("\\frac{1}{2}", "0.5")
        assert signal.getsignal(signal.SIGALRM) is handler
        assert 90.0 < signal.getitimer(signal.ITIMER_REAL)[0] <= 100.0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# sympy would evaluate 9^(9^(9^9)) for hours; math-verify must give up.
TOWER = ("9^{9^{9^{9}}}", "1")


def test_pathological_input_times_out_in_main_thread() -> None:
    started = time.monotonic()
    assert math_equal(*TOWER, timeout_s=2) is False
    assert time.monotonic() - started < 30


def test_worker_thread_grades_and_times_out() -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        assert pool.submit(math_equal, "\\frac{1}{2}", "0.5").result() is True
        assert pool.submit(math_equal, "\\frac{1}{2}", "0.4").result() is False
        started = time.monotonic()
        assert pool.submit(math_equal, *TOWER, 2).result() is False
        assert time.monotonic() - started < 30
        pairs = [(p, g) for p, g, _ in SOUND_CASES]
        expected = [equal for _, _, equal in SOUND_CASES]
        assert list(pool.map(lambda pair: math_equal(*pair), pairs)) == expected
        assert pool.submit(math_equal_many, pairs).result() == expected


def test_helper_that_stops_answering_is_killed_and_replaced() -> None:
    """A helper stuck where its own alarm cannot reach (C code; here: stopped) is killed at
    timeout_s plus the grace, the pair counts as not equal, and the next call gets a new one."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        assert pool.submit(math_equal, "\\frac{1}{2}", "0.5").result() is True
        stuck = grading._helper
        assert stuck is not None
        os.kill(stuck.proc.pid, signal.SIGSTOP)
        started = time.monotonic()
        assert pool.submit(math_equal, "\\sqrt{4}", "2", 1.0).result() is False
        assert time.monotonic() - started < 1.0 + grading._HELPER_GRACE_S + 5
        assert stuck.proc.poll() is not None
        assert pool.submit(math_equal, "\\sqrt{4}", "2", 1.0).result() is True
        assert grading._helper is not stuck


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_multiprocessing_worker(method: str) -> None:
    with multiprocessing.get_context(method).Pool(1) as pool:
        assert pool.apply(math_equal, ("\\frac{1}{2}", "0.5")) is True
        assert pool.apply(math_equal, ("\\frac{1}{2}", "0.4")) is False
        assert pool.apply(math_equal, (*TOWER, 2)) is False


def _grade_in_thread(predicted: str, gold: str) -> bool:
    """A thread inside a (daemonic) pool worker: the helper must start by subprocess there."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(math_equal, predicted, gold).result()


def test_thread_in_forked_daemonic_worker_gets_its_own_helper() -> None:
    with ThreadPoolExecutor(max_workers=1) as pool:  # the parent has a helper before the fork
        assert pool.submit(math_equal, "\\frac{1}{2}", "0.5").result() is True
    parent_helper = grading._helper
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.apply(_grade_in_thread, ("2\\sqrt{3}", "\\sqrt{12}")) is True
        assert pool.apply(_grade_in_thread, ("2\\sqrt{3}", "\\sqrt{13}")) is False
    assert grading._helper is parent_helper and parent_helper.proc.poll() is None
    assert threading.current_thread() is threading.main_thread()
