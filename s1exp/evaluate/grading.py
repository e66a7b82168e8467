"""Answer extraction and grading (S1_SPEC section 5, S1_DATA section 5).

Extraction follows s1's lm-evaluation-harness tasks (aime, openai_math, gpqa): cut the reply to
its answer turn, take the last boxed answer, else the text after "Answer:". Grading is exact
match for the toy, math-verify for math answers and the chosen letter for GPQA. s1 hands what
its rules cannot read to a gpt-4o-mini judge; s1exp has no judge, so the rules below go a little
further than s1's and anything still unreadable is None (graded wrong, and visible as such).

math-verify times out with signal.alarm, which only works in the main thread. `math_equal` uses
its own alarm there and, from any other thread, grades in a helper process that it kills when an
answer takes too long, so that grading inside Lightning, vLLM or a thread pool neither raises
nor hangs.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation

from s1exp.data.format import ANSWER_START, END_OF_THINKING
from s1exp.data.format import END_OF_TURN as CHAT_END_OF_TURN

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)")

# ---------------------------------------------------------------------------------------------
# Exact match (the toy)


def normalize_answer(text: str) -> str:
    """Canonical form for exact match: case, spaces, trailing '.', thousands commas, 9.90 == 9.9."""
    s = re.sub(r"\s+", "", text.strip().rstrip(".").strip().lower())
    if re.fullmatch(r"[+-]?\d{1,3}(,\d{3})+(\.\d*)?", s):
        s = s.replace(",", "")
    if _NUMBER.fullmatch(s):
        try:
            d = Decimal(s)
        except InvalidOperation:
            return s
        s = str(int(d)) if d == d.to_integral_value() else format(d.normalize(), "f")
    return s


def exact_match(predicted: str | None, gold: str) -> bool:
    """Exact match after normalization ("023" == "23" as in s1); no answer is wrong."""
    return predicted is not None and normalize_answer(predicted) == normalize_answer(gold)


# ---------------------------------------------------------------------------------------------
# Extraction

ANSWER_TURN = ANSWER_START + "\n"
TURN = END_OF_THINKING  # any `<|im_start|>` opens a new section
END_OF_TURN = (CHAT_END_OF_TURN, "<|endoftext|>")
BOX_COMMANDS = ("\\boxed", "\\fbox")
_ANSWER_LABEL = re.compile(r"answer\s*:", re.IGNORECASE)
# Pairs that wrap a whole answer without being part of it: display math and markdown emphasis.
_WRAPPERS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"), ("**", "**"), ("*", "*"))


def answer_section(text: str) -> str:
    """The reply's answer turn, cut as s1 cuts it: after the last "<|im_start|>answer\\n", else
    after the last "<|im_start|>" minus that turn's first line (its role); the end of turn and
    anything after it dropped. A reply without delimiters is all answer."""
    if ANSWER_TURN in text:
        text = text.rsplit(ANSWER_TURN, 1)[1]
    elif TURN in text:
        text = text.rsplit(TURN, 1)[1]
        if "\n" in text:
            text = text.split("\n", 1)[1]
    for end in END_OF_TURN:
        text = text.split(end, 1)[0]
    return text


def _box_content(text: str, start: int, command: str) -> str | None:
    """The content of the box whose command starts at `start`: brace-matched for `\\boxed{..}`,
    up to "$" or the end of the line for s1's `\\boxed 5` form; None when open or empty."""
    rest = text[start + len(command) :]
    body = rest.lstrip(" ")
    if body.startswith("{"):
        depth = 0
        for i, char in enumerate(body):
            depth += {"{": 1, "}": -1}.get(char, 0)
            if depth == 0:
                return body[1:i].strip() or None
        return None
    if rest.startswith(" "):
        return re.split(r"[$\n]", body, maxsplit=1)[0].strip() or None
    return None


def last_boxed(text: str) -> str | None:
    """Content of the last usable `\\boxed{...}` / `\\fbox{...}` / `\\boxed ...`, braces nested.

    Like s1's last_boxed_only_string, except that a box left open (a reply cut off inside it) or
    empty falls back to the box before it instead of to nothing, and the box that comes last wins
    whatever its form (s1 prefers any `\\boxed ` over a later `\\boxed{}`).
    """
    starts = sorted(
        (m.start(), command)
        for command in BOX_COMMANDS
        for m in re.finditer(re.escape(command) + r"(?![A-Za-z])", text)
    )
    for start, command in reversed(starts):
        if (content := _box_content(text, start, command)) is not None:
            return content
    return None


def _unwrap(text: str) -> str:
    """A bare answer without what surrounds it: whitespace, trailing periods, `$..$`, `\\(..\\)`,
    `**..**` (when the opener does not recur inside unescaped, so "$5$ or $6$" and "$\\$5$"
    keep their meaning), and an emphasis marker whose pair lies outside the line ("C**")."""
    previous = None
    while text != previous:
        previous = text
        text = text.strip().rstrip(".").strip()
        for left, right in _WRAPPERS:
            inner = text[len(left) : len(text) - len(right)]
            if (
                len(text) >= len(left) + len(right)
                and text.startswith(left)
                and text.endswith(right)
                and not re.search(r"(?<!\\)" + re.escape(left), inner)
            ):
                text = inner
        for marker in ("**", "*"):  # an emphasis whose other half is outside this line
            if text.startswith(marker) and marker not in text[len(marker) :]:
                text = text[len(marker) :]
            if text.endswith(marker) and marker not in text[: -len(marker)]:
                text = text[: -len(marker)]
    return text


def _after_last_label(text: str) -> str | None:
    """The answer after the LAST "Answer:" (so "Final Answer:" too): the rest of its line, or the
    next non-empty line when that rest is empty."""
    hits = list(_ANSWER_LABEL.finditer(text))
    if not hits:
        return None
    rest = re.sub(r"^\*+", "", text[hits[-1].end() :])  # the "**" closing "**Answer:**"
    for line in rest.split("\n"):
        if answer := _unwrap(line):
            return answer
    return None


def extract_answer(text: str) -> str | None:
    """The final answer of a model reply as s1 extracts it, or None when it has none.

    Steps: the answer turn (`answer_section`); its last boxed answer (`last_boxed`); else the
    text after "Answer:" (`Answer\\s*:`, any case, so "Answer : 5" and "Final Answer: 5" too);
    else, as s1 does for AIME, a section that is just a number.

    Which "Answer:" counts: s1 runs re.findall with DOTALL, whose only match runs from the FIRST
    "Answer:" to the end of the text, and gives that to an LLM judge (S1_DATA trap 6). Without a
    judge s1exp takes the LAST "Answer:" and only the rest of its line (or the next non-empty
    line): the model's final statement is its answer, and budget forcing writes "Final Answer:"
    last, so what follows it is what the model answered when forced to stop. Trailing periods,
    whitespace and `$...$` / `**...**` around the answer are removed.
    """
    section = answer_section(text)
    for rule in (last_boxed, _after_last_label):
        if (answer := rule(section)) is not None:
            return answer
    bare = _unwrap(section)
    return bare if _NUMBER.fullmatch(bare) else None


# GPQA: a letter A-D. Letters are upper case except where the letter is the whole answer, so that
# the article "a" or the word "I" is never read as a choice.
_LATEX_TEXT = re.compile(r"\\(?:text|textbf|textit|textrm|math(?:rm|bf|it)|mbox)\s*\{([^{}]*)\}")
_WHOLE_LETTER = re.compile(r"\(?([A-Da-d])\)?[.:)]?")
_LEADING_LETTER = re.compile(r"\(([A-D])\)|([A-D])[).:,;]")
_VERB = r"(?i:is|would|should|must|be|therefore|thus|then|clearly|definitely)"
# "the correct option is C", "answer: (B)": a keyword, then ":" or verbs, then the letter.
_STATED_LETTER = re.compile(
    rf"(?i:answer|option|choice)(?:\s*:|(?:\s+{_VERB})+)\s*\(?([A-D])\)?(?!\w)"
)
# "option (B)", "choice D": a keyword right before the letter.
_NAMED_LETTER = re.compile(r"(?i:option|choice)\s*\(?([A-D])\)?(?!\w)")


def _one_letter(pattern: re.Pattern[str], text: str) -> str | None:
    """The letter a pattern names, when all its matches in the text agree."""
    letters = {m.group(1) for m in pattern.finditer(text)}
    return letters.pop() if len(letters) == 1 else None


def _choice_in(answer: str) -> str | None:
    """The letter of an answer: the whole answer ("C", "(c)", "C."), a leading "C) 4.2 eV",
    else "the correct option is C" / "option (B)"; None when none or several."""
    if whole := _WHOLE_LETTER.fullmatch(answer):
        return whole.group(1).upper()
    if leading := _LEADING_LETTER.match(answer):
        return leading.group(1) or leading.group(2)
    return _one_letter(_STATED_LETTER, answer) or _one_letter(_NAMED_LETTER, answer)


def extract_choice(text: str) -> str | None:
    """The letter A-D a GPQA reply chose, or None when it cannot be read.

    Read from `extract_answer`'s answer (or the whole answer turn when it has none), with LaTeX
    text commands and markdown removed: "C", "(C)", "C.", "\\text{C}", "**C**", "C) 4.2 eV",
    "The correct option is C", "option (B)", "c" when it is the whole answer. s1 sends what is
    not a bare letter to gpt-4o-mini and, failing that, scores the reply as "A"; s1exp has no
    judge and returns None instead, which grades as wrong and shows up as an unparsed answer
    rather than as a lucky guess of "A".
    """
    answer = extract_answer(text)
    candidate = answer if answer is not None else answer_section(text)
    previous = None
    while candidate != previous:
        previous = candidate
        candidate = _unwrap(_LATEX_TEXT.sub(r"\1", candidate))
    return _choice_in(candidate)


# ---------------------------------------------------------------------------------------------
# Mathematical equivalence

_DIGITS = re.compile(r"[0-9]+")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
# Two plain words in a row: an answer written as prose ("The value is 5"), not as LaTeX.
_PROSE = re.compile(r"(?<![\\\w])[A-Za-z]{2,}\s+[A-Za-z]{2,}\b")
# Longer answers are not answers but runaway text; sympy would spend its whole timeout on them,
# and a request this size could fill the helper's pipe while it is busy.
MAX_ANSWER_CHARS = 10_000
_HELPER_GRACE_S = 2.0  # beyond timeout_s, before a helper that stopped answering is killed
_HELPER_START_S = 120.0  # a cold sympy import on a busy machine


class _Timeout(BaseException):
    """The alarm went off. A BaseException, so that math-verify's and sympy's `except Exception`
    handlers cannot swallow it (math-verify's own TimeoutException is one for the same reason)."""


def _on_alarm(signum: int, frame: object) -> None:
    raise _Timeout


class _DropDisabledTimeoutWarning(logging.Filter):
    """math-verify warns once that its timeouts are off; s1exp turns them off on purpose and
    enforces its own."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Timeout is disabled")


for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_DropDisabledTimeoutWarning())


def _check_timeout(timeout_s: float) -> None:
    if not (isinstance(timeout_s, int | float) and 0 < timeout_s < math.inf):
        raise ValueError(
            f"math_equal: timeout_s={timeout_s!r} must be a positive, finite number of seconds "
            "(the time one comparison may take before it counts as not equal); pass e.g. 5.0"
        )


def _integer_text(digits: str) -> str:
    """A digit string's integer value as text ("023" -> "23"), as s1's str(int(.)) but for any
    length (int() refuses strings of over 4300 digits)."""
    return digits.lstrip("0") or "0"


def _quick_equal(predicted: str, gold: str) -> bool | None:
    """The verdict when it needs no sympy, else None: identical up to spaces; digit strings
    compared as integers as s1 does ("023" == "23"); plain decimals equal as decimals
    ("1.2e3" == "1200", which math-verify's LaTeX parser misreads as 1.2*e*3); an answer over
    MAX_ANSWER_CHARS is not equal."""
    compact_pred, compact_gold = re.sub(r"\s+", "", predicted), re.sub(r"\s+", "", gold)
    if compact_pred == compact_gold:
        return True
    if max(len(predicted), len(gold)) > MAX_ANSWER_CHARS:
        return False
    if _DIGITS.fullmatch(compact_pred) and _DIGITS.fullmatch(compact_gold):
        return _integer_text(compact_pred) == _integer_text(compact_gold)
    if _PLAIN_NUMBER.fullmatch(compact_pred) and _PLAIN_NUMBER.fullmatch(compact_gold):
        return True if Decimal(compact_pred) == Decimal(compact_gold) else None
    return None


def _verify(predicted: str, gold: str) -> bool:
    """math-verify with its own (signal) timeouts off: the caller bounds the time. Both sides are
    read as LaTeX; an answer written as prose is also read as text, where math-verify finds the
    expression in it (its first one: "not 5 but 6" reads as 5, a judge's job that s1exp lacks)."""
    from math_verify import parse, verify

    gold_parsed = parse(f"${gold}$", parsing_timeout=None)
    if verify(gold_parsed, parse(f"${predicted}$", parsing_timeout=None), timeout_seconds=None):
        return True
    return bool(_PROSE.search(predicted)) and bool(
        verify(gold_parsed, parse(predicted, parsing_timeout=None), timeout_seconds=None)
    )


@contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    """Raise _Timeout in the main thread after `seconds`; the caller's SIGALRM handler and any
    pending timer of its own are put back afterwards (its timer less the time spent here)."""
    started = time.monotonic()
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        while True:  # an alarm that fires between the body's end and this cancel is moot
            try:
                signal.setitimer(signal.ITIMER_REAL, 0)
                break
            except _Timeout:
                continue
        signal.signal(signal.SIGALRM, signal.SIG_DFL if previous is None else previous)
        if old_delay > 0:
            left = max(old_delay - (time.monotonic() - started), 1e-3)
            signal.setitimer(signal.ITIMER_REAL, left, old_interval)


def _verify_with_alarm(predicted: str, gold: str, timeout_s: float) -> bool:
    """`_verify` bounded by a main-thread alarm; a timeout is not equal."""
    try:
        with _alarm(timeout_s):
            return _verify(predicted, gold)
    except _Timeout:
        return False


def _grade_here(pairs: list[tuple[str, str]], timeout_s: float) -> list[bool]:
    """Main thread: math-verify in this process under an alarm (thousands of answers a minute)."""
    return [_verify_with_alarm(p, g, timeout_s) for p, g in pairs]


class _Helper:
    """A child Python that grades one pair per request under its own main-thread alarm.

    Started with subprocess, not multiprocessing, so that it also starts from daemonic workers
    (which may not have multiprocessing children). It is this file run as a script, so starting
    it imports math-verify but nothing of s1exp. The parent gives each answer timeout_s plus a
    grace and kills the child when it is silent past that (a C-level loop that the alarm cannot
    interrupt); the next request starts a new one.
    """

    def __init__(self) -> None:
        self.proc = subprocess.Popen(  # -P: not this folder (s1exp/evaluate) on sys.path
            [sys.executable, "-P", os.path.abspath(__file__), "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
        )
        self.pending = b""
        if self.read_line(time.monotonic() + _HELPER_START_S) != b"ready":
            code = self.stop()
            raise RuntimeError(
                f"math_equal: the grading helper process ({sys.executable} {__file__} --serve) "
                f"did not start within {_HELPER_START_S:.0f} s (exit code {code}); check that "
                "math-verify imports in this environment"
            )

    def read_line(self, deadline: float) -> bytes | None:
        """One line from the child, or None at the deadline or when it has exited."""
        assert self.proc.stdout is not None
        while b"\n" not in self.pending:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                return None
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                return None
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return line

    def grade(self, predicted: str, gold: str, timeout_s: float) -> bool | None:
        """The child's verdict, or None when it did not answer in time or died."""
        assert self.proc.stdin is not None
        request = {"predicted": predicted, "gold": gold, "timeout_s": timeout_s}
        try:
            self.proc.stdin.write(json.dumps(request).encode() + b"\n")
        except (BrokenPipeError, OSError):
            return None
        reply = self.read_line(time.monotonic() + timeout_s + _HELPER_GRACE_S)
        return None if reply not in (b"1", b"0") else reply == b"1"

    def stop(self) -> int | None:
        """Kill the child and reap it; its exit code."""
        self.proc.kill()
        return self.proc.wait()


_helper: _Helper | None = None
_helper_lock = threading.Lock()


def _forget_helper() -> None:
    """In a forked child: the parent's helper and lock are the parent's (a half-read pipe or a
    lock held by a thread that does not exist here); start afresh."""
    global _helper, _helper_lock
    _helper, _helper_lock = None, threading.Lock()


def _stop_helper() -> None:
    global _helper
    if _helper is not None:
        _helper.stop()
        _helper = None


os.register_at_fork(after_in_child=_forget_helper)
atexit.register(_stop_helper)


def _grade_in_helper(pairs: list[tuple[str, str]], timeout_s: float) -> list[bool]:
    """Any thread but the main one: each pair in the helper process, one caller at a time; a
    pair the helper did not answer in time is not equal, and the helper is replaced."""
    global _helper
    verdicts = []
    with _helper_lock:
        for predicted, gold in pairs:
            if _helper is None:
                _helper = _Helper()
            verdict = _helper.grade(predicted, gold, timeout_s)
            if verdict is None:
                _stop_helper()
            verdicts.append(bool(verdict))
    return verdicts


def _grader() -> Callable[[list[tuple[str, str]], float], list[bool]]:
    """Alarms work only in the main thread of the main interpreter (and on POSIX)."""
    main = threading.current_thread() is threading.main_thread()
    return _grade_here if main and hasattr(signal, "setitimer") else _grade_in_helper


def math_equal_many(pairs: list[tuple[str, str]], timeout_s: float = 5.0) -> list[bool]:
    """`math_equal` of each (predicted, gold) pair, in order; one helper round trip per pair
    off the main thread, no per-call setup in it."""
    _check_timeout(timeout_s)
    verdicts = [_quick_equal(p, g) for p, g in pairs]
    todo = [i for i, verdict in enumerate(verdicts) if verdict is None]
    for i, verdict in zip(todo, _grader()([pairs[i] for i in todo], timeout_s), strict=True):
        verdicts[i] = verdict
    return [bool(verdict) for verdict in verdicts]


def math_equal(predicted: str, gold: str, timeout_s: float = 5.0) -> bool:
    """Whether a predicted answer equals the gold one mathematically, by math-verify (s1 used an
    LLM judge instead). A comparison that takes longer than timeout_s (parsing both sides and
    comparing, together) counts as not equal; it works from any thread or process.

    In the main thread the time limit is a SIGALRM timer, which interrupts sympy between Python
    bytecodes; elsewhere the pair is graded in a helper process (`_Helper`) that is killed when
    it overruns, which also ends a loop inside C code.
    """
    return math_equal_many([(predicted, gold)], timeout_s)[0]


def _serve() -> None:
    """The helper's loop: one JSON request per line in, "1" or "0" per line out."""
    import math_verify  # noqa: F401  (import before "ready": requests then only grade)

    out = sys.stdout.buffer
    out.write(b"ready\n")
    out.flush()
    for line in sys.stdin.buffer:
        request = json.loads(line)
        equal = _verify_with_alarm(request["predicted"], request["gold"], request["timeout_s"])
        out.write(b"1\n" if equal else b"0\n")
        out.flush()


if __name__ == "__main__" and sys.argv[1:] == ["--serve"]:
    _serve()
