"""The toy world: a seeded synthetic stand-in for the s1 59K pool, a held-out benchmark, a grader.

Every task family writes a very regular step-by-step trace that a tiny CPU transformer can learn.
Teacher traces sometimes slip and repair themselves after "Wait", and often re-check the answer
after "Wait", so that extending thinking at test time has something to pay off. Rows follow
`schema.PoolRow` exactly, so the real-pool filters and Algorithm 1 run unchanged on the toy pool.
Everything is a pure function of the seed (`random.Random` instances only, never global state).
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from s1exp.data.schema import BenchmarkItem, PoolRow

TOKEN_RE = re.compile(r"\d|[^\W\d]+|[^\w\s]")
Slip = tuple[int, int]  # (index of the step that goes wrong, direction of the error: +1 or -1)


class Step(NamedTuple):
    """One written step; `claim`/`value` name the checkable fact ("4+8+1=13", "13") if any."""

    text: str
    claim: str | None = None
    value: str | None = None


@dataclass(frozen=True)
class Problem:
    """A question plus a solver that can replay its steps with one deliberate slip."""

    question: str
    answer: str
    solve: Callable[[Slip | None], tuple[list[Step], str]]  # slipped steps stay self-consistent
    check: str  # the family's verification sentence, appended after "Wait"


@dataclass(frozen=True)
class Family:
    """A task family = one diversity domain; `weight` skews the pool like real source mixes."""

    make: Callable[[random.Random], Problem]
    weight: float


def _bump(slip: Slip | None, idx: int, v: int, lo: int = 0, hi: int | None = None) -> int:
    """Apply the slip to value `v` of step `idx`, staying inside [lo, hi] (flip sign if needed)."""
    if slip is None or slip[0] != idx:
        return v
    w = v + slip[1]
    return v - slip[1] if w < lo or (hi is not None and w > hi) else w


def _num(rng: random.Random, digits: int) -> int:
    return rng.randint(10 ** (digits - 1), 10**digits - 1)


def _column(a: int, b: int, op: str) -> Callable[[Slip | None], tuple[list[Step], str]]:
    """Column addition (op "+") or subtraction with borrow (op "-"), right to left."""

    def solve(slip: Slip | None) -> tuple[list[Step], str]:
        verb = "Add" if op == "+" else "Subtract"
        steps = [Step(f"{verb} {b} {'to' if op == '+' else 'from'} {a} from the right.")]
        da, db = str(a)[::-1], str(b)[::-1]
        out, carry = [], 0
        for i, t in enumerate(da):
            last = i == len(da) - 1
            d = int(db[i]) if i < len(db) else None
            if op == "+":
                parts = [t] + ([str(d)] if d is not None else []) + ([str(carry)] if carry else [])
                true = int(t) + (d or 0) + carry
            else:
                need = int(t) - carry < (d or 0)
                parts = [("1" if need else "") + t] + ([str(d)] if d is not None else [])
                parts += ["1"] if carry else []
                true = int(t) + 10 * need - (d or 0) - carry
            if len(parts) == 1:
                steps.append(Step(f"Bring down {t}."))
                out.append(t)
                carry = 0
                continue
            expr = op.join(parts)
            if op == "+":
                v = _bump(slip, len(steps), true)
                tail = (
                    f"write {v}"
                    if last
                    else f"write {v % 10}" + (f" carry {v // 10}" if v >= 10 else "")
                )
                out.append(str(v)[::-1] if last else str(v % 10))
                carry = v // 10
            else:
                v = _bump(slip, len(steps), true, 0, 9)
                tail = f"write {v}" + (" borrow 1" if need else "")
                out.append(str(v))
                carry = int(need)
            steps.append(Step(f"{expr}={v}, {tail}.", f"{expr}={true}", str(v)))
        return steps, str(int("".join(out)[::-1]))

    return solve


def _add(n: int) -> Callable[[random.Random], Problem]:
    def make(rng: random.Random) -> Problem:
        a, b = _num(rng, n), _num(rng, rng.randint(2, n))
        return Problem(
            f"What is {a} + {b}?",
            str(a + b),
            _column(a, b, "+"),
            f"Wait, let me check: {a + b}-{b}={a}. Yes.",
        )

    return make


def _sub(n: int) -> Callable[[random.Random], Problem]:
    def make(rng: random.Random) -> Problem:
        a, b = _num(rng, n), _num(rng, rng.randint(2, n))
        a, b = max(a, b), min(a, b)
        return Problem(
            f"What is {a} - {b}?",
            str(a - b),
            _column(a, b, "-"),
            f"Wait, let me check: {a - b}+{b}={a}. Yes.",
        )

    return make


def _mul(n: int) -> Callable[[random.Random], Problem]:
    def make(rng: random.Random) -> Problem:
        a, m = _num(rng, n), rng.randint(2, 9)

        def solve(slip: Slip | None) -> tuple[list[Step], str]:
            steps, out, carry = [Step(f"Multiply {a} by {m} from the right.")], "", 0
            for i, t in enumerate(str(a)[::-1]):
                expr = f"{t}*{m}" + (f"+{carry}" if carry else "")
                true = int(t) * m + carry
                v = _bump(slip, len(steps), true)
                last = i == n - 1
                tail = (
                    f"write {v}"
                    if last
                    else f"write {v % 10}" + (f" carry {v // 10}" if v >= 10 else "")
                )
                out = (str(v) if last else str(v % 10)) + out
                carry = v // 10
                steps.append(Step(f"{expr}={v}, {tail}.", f"{expr}={true}", str(v)))
            return steps, str(int(out))

        return Problem(
            f"What is {a} * {m}?", str(a * m), solve, f"Wait, let me check: {a * m}/{m}={a}. Yes."
        )

    return make


def _mod(rng: random.Random) -> Problem:
    m = rng.randint(2, 12)
    a = rng.randint(m + 1, 199)
    q = a // m

    def solve(slip: Slip | None) -> tuple[list[Step], str]:
        steps = [Step(f"Divide {a} by {m}.")]
        p = _bump(slip, 1, m * q, 0, a)
        steps.append(Step(f"{m}*{q}={p}.", f"{m}*{q}={m * q}", str(p)))
        steps.append(Step(f"{m}*{q + 1}={m * (q + 1)}, too big."))
        r = _bump(slip, 3, a - p, 0)
        steps.append(Step(f"{a}-{p}={r}.", f"{a}-{p}={a - p}", str(r)))
        return steps, str(r)

    return Problem(
        f"What is {a} mod {m}?", str(a % m), solve, f"Wait, let me check: {m}*{q}+{a % m}={a}. Yes."
    )


def _compare(rng: random.Random) -> Problem:
    while True:
        whole = rng.randint(0, 20)
        xs = [
            f"{whole if rng.random() < 0.7 else rng.randint(0, 20)}."
            + str(rng.randint(0, 99)).zfill(2)[: rng.randint(1, 2)]
            for _ in range(2)
        ]
        if Decimal(xs[0]) != Decimal(xs[1]):
            break
    x, y = xs
    big, small = (x, y) if Decimal(x) > Decimal(y) else (y, x)

    def solve(slip: Slip | None) -> tuple[list[Step], str]:
        (ix, fx), (iy, fy) = x.split("."), y.split(".")
        fx, fy = fx.ljust(2, "0"), fy.ljust(2, "0")
        steps = [Step(f"Compare {ix}.{fx} and {iy}.{fy}.")]
        for name, p, q in (
            ("Whole", ix, iy),
            ("Tenths", fx[0], fy[0]),
            ("Hundredths", fx[1], fy[1]),
        ):
            a, b = int(p), int(q)
            if a == b:
                steps.append(Step(f"{name}: {a}={b}."))
                continue
            rel = ">" if a > b else "<"
            said = rel if _bump(slip, len(steps), 0, -1, 1) == 0 else {"<": ">", ">": "<"}[rel]
            steps.append(Step(f"{name}: {a}{said}{b}.", f"{a}{rel}{b}", f"{a}{said}{b}"))
            return steps, x if said == ">" else y
        raise AssertionError("numbers are distinct")

    return Problem(
        f"Which is larger, {x} or {y}?", big, solve, f"Wait, let me check: {big}>{small}. Yes."
    )


# fmt: off
WORDS = (
    "raspberry", "strawberry", "banana", "apple", "orange", "cherry", "lemon", "mango",
    "papaya", "coconut", "tomato", "potato", "carrot", "pepper", "onion", "garlic", "letter",
    "bottle", "coffee", "balloon", "committee", "mississippi", "address", "success",
    "parallel", "occurrence", "accommodate", "necessary", "embarrass", "bookkeeper",
    "assessment", "tennessee", "giraffe", "hippopotamus", "elephant", "kangaroo", "alligator",
    "butterfly", "caterpillar", "grasshopper", "woodpecker", "penguin", "dolphin", "mammal",
    "puppy", "kitten", "rabbit", "squirrel", "pineapple", "blueberry", "cranberry",
    "gooseberry", "broccoli", "zucchini", "spaghetti", "macaroni", "cinnamon", "vanilla",
    "chocolate", "marshmallow", "lollipop", "bubblegum", "popcorn", "pizza", "cheese",
    "yellow", "purple", "crimson", "scissors", "pepperoni", "umbrella", "banner", "summer",
    "winter", "autumn", "september", "november", "december", "tomorrow", "yesterday", "barrel",
    "mirror", "terror", "error", "horror", "narrow", "arrow", "sorrow", "borrow", "referee",
    "coffee", "toffee", "happiness", "goodness", "illness", "assassin", "possession",
    "programming", "engineering", "beginning", "running", "swimming", "millennium",
)
# fmt: on


def _count(rng: random.Random) -> Problem:
    word = rng.choice(WORDS)
    pool = sorted(set(word)) if rng.random() < 0.85 else "abcdefghijklmnopqrstuvwxyz"
    letter = rng.choice(pool)
    n = word.count(letter)

    def solve(slip: Slip | None) -> tuple[list[Step], str]:
        steps, c = [Step(f"Spell {word}: {' '.join(word)}.")], 0
        for pos, ch in enumerate(word, 1):
            if ch == letter:
                v = _bump(slip, len(steps), c + 1)
                steps.append(Step(f"{letter} at {pos}: {c}+1={v}.", f"{c}+1={c + 1}", str(v)))
                c = v
        if len(steps) == 1:
            steps.append(Step(f"No {letter} found."))
        return steps, str(c)

    return Problem(
        f"How many {letter} are in {word}?",
        str(n),
        solve,
        f"Wait, let me check: {word} has {n} {letter}. Yes.",
    )


def _sort(rng: random.Random) -> Problem:
    nums = rng.sample(range(10, 100), rng.choice((3, 3, 4)))
    gold = " < ".join(map(str, sorted(nums)))

    def solve(slip: Slip | None) -> tuple[list[Step], str]:
        steps, rest, order = [Step(f"Sort {len(nums)} numbers, smallest first.")], list(nums), []
        while len(rest) > 1:
            claim = f"min({','.join(map(str, rest))})"
            pick = sorted(rest)[_bump(slip, len(steps), 0, 0, 1)]
            steps.append(Step(f"{claim}={pick}.", f"{claim}={min(rest)}", str(pick)))
            rest.remove(pick)
            order.append(pick)
        steps.append(Step(f"Last is {rest[0]}."))
        return steps, " < ".join(map(str, order + rest))

    return Problem(
        f"Sort {', '.join(map(str, nums))} from smallest to largest.",
        gold,
        solve,
        f"Wait, let me check: {gold}. Yes.",
    )


FAMILIES: dict[str, Family] = {
    "add2": Family(_add(2), 14),
    "add3": Family(_add(3), 12),
    "add4": Family(_add(4), 8),
    "sub2": Family(_sub(2), 12),
    "sub3": Family(_sub(3), 8),
    "mul2": Family(_mul(2), 10),
    "mul3": Family(_mul(3), 6),
    "mod": Family(_mod, 8),
    "compare": Family(_compare, 8),
    "count": Family(_count, 8),
    "sort": Family(_sort, 6),
}
SOURCES = ("toy/math_train", "toy/numina", "toy/olympiad")
FORMAT_FLAWS = ("asy", "image", "enum", "bold")
API_FLAWS = ("missing_all", "missing_tokens", "missing_base")


def is_benchmark_question(question: str) -> bool:
    """Structural split of the question space: the benchmark owns 1/10 of it, by hash."""
    return int(hashlib.sha1(question.encode()).hexdigest(), 16) % 10 == 0


def count_tokens(text: str) -> int:
    """Tokenizer-free proxy for trace length (digits count one by one, like Qwen's tokenizer)."""
    return len(TOKEN_RE.findall(text))


def _solution(steps: list[Step], answer: str) -> str:
    return "\n".join([s.text for s in steps] + [f"The answer is {answer}."])


def make_problem(domain: str, rng: random.Random) -> tuple[str, str, str]:
    """One (question, clean step-by-step solution, answer) of a family; no benchmark split."""
    p = FAMILIES[domain].make(rng)
    steps, answer = p.solve(None)
    return p.question, _solution(steps, answer), answer


def _find_slip(
    p: Problem, steps: list[Step], rng: random.Random, wrong: bool
) -> tuple[int, list[Step], str] | None:
    """A slip that changes step k (and, if `wrong`, the final answer); None if there is none."""
    points = [i for i, s in enumerate(steps) if s.claim]
    for _ in range(8 if points else 0):
        k = rng.choice(points)
        bad, bad_answer = p.solve((k, rng.choice((-1, 1))))
        if bad[k].text != steps[k].text and (not wrong or bad_answer != p.answer):
            return k, bad, bad_answer
    return None


@dataclass(frozen=True)
class Teacher:
    """Cumulative rates of a teacher's trace endings (see `_teacher`): `wrong` (+ `wrong_slope` x
    difficulty) left wrong, up to `inline` a slip fixed inline, up to `late` a slip caught after
    "Wait" once an answer is stated; `check` re-checks the answer after "Wait", `recheck` twice."""

    wrong: float
    wrong_slope: float
    inline: float
    late: float
    check: float
    recheck: float = 0.0


# Rates matter: a small model cannot tell when a slip happened, so frequent corrections teach it
# to "correct" right answers at random; s1K's (gemini) keep them rare (~8%). s1K-1.1's DeepSeek-R1
# traces are longer and re-check far more (Table 5's second trace source: data=toy_1.1).
TEACHERS = {
    "gemini": Teacher(wrong=0.03, wrong_slope=0.06, inline=0.14, late=0.17, check=0.5),
    "r1": Teacher(wrong=0.02, wrong_slope=0.03, inline=0.2, late=0.3, check=0.9, recheck=0.4),
}


def _teacher(p: Problem, x: float, rng: random.Random, t: Teacher) -> tuple[str, str]:
    """Teacher trace and final answer: clean, slip fixed inline, caught late, or left wrong."""
    steps, answer = p.solve(None)
    lines = [s.text for s in steps]
    u = rng.random()
    if u < t.wrong + t.wrong_slope * x and (found := _find_slip(p, steps, rng, wrong=True)):
        _, bad, bad_answer = found
        return "\n".join([s.text for s in bad] + [f"So the answer is {bad_answer}."]), bad_answer
    if u < t.late and (found := _find_slip(p, steps, rng, wrong=u >= t.inline)):
        k, bad, bad_answer = found
        fix = f"Wait, {steps[k].claim}, not {bad[k].value}."
        if u < t.inline:  # inline: the slip is noticed right away
            lines = lines[:k] + [bad[k].text, fix] + lines[k:]
        else:  # late: an answer is stated, then the re-check after "Wait" finds the slip
            lines = [s.text for s in bad] + [f"So the answer is {bad_answer}.", fix] + lines[k:]
    lines.append(f"So the answer is {answer}.")
    v = rng.random()
    if v < t.check:
        lines.append(p.check)
        if v < t.recheck:
            lines.append(p.check.replace("Wait, let me check", "Wait, let me check again", 1))
    return "\n".join(lines), answer


def _difficulty(solution: str) -> float:
    """0 (trivial) .. 1 (hardest): longer clean solutions mean more steps to get wrong."""
    return min(1.0, max(0.0, (count_tokens(solution) - 20) / 50))


def _draw(domains: list[str], rng: random.Random, seen: set[str]) -> tuple[str, Problem]:
    """A weighted-random family's problem outside the benchmark split and unseen so far."""
    weights = [FAMILIES[d].weight for d in domains]
    for _ in range(10_000):
        domain = rng.choices(domains, weights)[0]
        p = FAMILIES[domain].make(rng)
        if p.question not in seen and not is_benchmark_question(p.question):
            return domain, p
    raise ValueError("toy question space exhausted")


def _flaw_question(question: str, kind: str, rng: random.Random) -> str:
    """S1_SPEC quality-2 formatting patterns the filter must catch."""
    return {
        "asy": f"{question} [asy]draw((0,0)--(1,1));[/asy]",
        "image": f"![Image](fig.png) {question}",
        "enum": f"p{rng.randint(1, 999)}. {question}",
        "bold": f"**x{rng.randint(0, 9)}** {question}",
    }[kind]


def make_pool(
    size: int = 5000, seed: int = 0, flawed_fraction: float = 0.08, teacher: str = "gemini"
) -> list[PoolRow]:
    """The featurized toy pool: unique non-benchmark questions, teacher traces, base columns.

    `teacher` names the trace source (`TEACHERS`). Every teacher gets the same questions and base
    columns, as s1K and s1K-1.1 share theirs: the draws of the s1K teacher run for every pool
    (so the pool stream never changes) and another teacher writes its traces from its own stream.
    """
    if teacher not in TEACHERS:
        raise ValueError(f"data.pool.teacher={teacher!r}: choose one of {sorted(TEACHERS)}")
    other = random.Random(f"{seed}:{teacher}") if teacher != "gemini" else None
    rng = random.Random(seed)
    domains = sorted(FAMILIES)
    n_flawed = round(size * flawed_fraction)
    flawed = rng.sample(range(size), n_flawed)
    kinds = {
        i: (API_FLAWS if j % 2 else FORMAT_FLAWS)[(j // 2) % 3 if j % 2 else (j // 2) % 4]
        for j, i in enumerate(flawed)
    }
    seen: set[str] = set()
    rows: list[PoolRow] = []
    for i in range(size):
        domain, p = _draw(domains, rng, seen)
        seen.add(p.question)
        steps, answer = p.solve(None)
        solution = _solution(steps, answer)
        x = _difficulty(solution)
        thinking, final = _teacher(p, x, rng, TEACHERS["gemini"])
        if other is not None:
            thinking, final = _teacher(p, x, other, TEACHERS[teacher])
        hard = rng.random() < 0.35 * x**2
        source = (
            rng.choice(("toy/aime", "toy/gpqa")) if hard else rng.choices(SOURCES, (9, 6, 3))[0]
        )
        p_large = min(0.95, max(0.03, 0.85 - x))
        row: PoolRow = {
            "id": f"toy-{seed}-{i}",
            "question": p.question,
            "solution": solution,
            "answer": answer,
            "thinking": thinking,
            "attempt": f"Answer: {final}",
            "teacher_correct": final == answer,
            "source": source,
            "domain": domain,
            "thinking_tokens": count_tokens(thinking),
            "base_small_correct": rng.random() < 0.6 * p_large,
            "base_large_correct": rng.random() < p_large,
        }
        kind = kinds.get(i)
        if kind in FORMAT_FLAWS:
            row["question"] = _flaw_question(p.question, kind, rng)
            if kind == "asy" and rng.random() < 0.5:
                row["source"] = "toy/aime"  # AIME [asy] questions survive quality-2
        elif kind == "missing_all":
            row.update(thinking=None, attempt=None, teacher_correct=None, thinking_tokens=None)
        elif kind == "missing_tokens":
            row["thinking_tokens"] = None
        elif kind == "missing_base":
            row["base_small_correct"] = None
        rows.append(row)
    return rows


def make_benchmark(size: int = 64, seed: int = 1234) -> list[BenchmarkItem]:
    """Held-out questions (benchmark hash split only), domains round-robin for balance."""
    rng = random.Random(seed)
    domains = sorted(FAMILIES)
    seen: set[str] = set()
    items: list[BenchmarkItem] = []
    for i in range(size):
        for offset in range(len(domains)):  # a domain whose space is used up yields to the next
            domain = domains[(i + offset) % len(domains)]
            p = next(
                (
                    q
                    for q in (FAMILIES[domain].make(rng) for _ in range(2000))
                    if is_benchmark_question(q.question) and q.question not in seen
                ),
                None,
            )
            if p is not None:
                break
        else:
            raise ValueError("toy benchmark space exhausted")
        seen.add(p.question)
        items.append(
            {
                "id": f"bench-{seed}-{i}",
                "question": p.question,
                "answer": p.answer,
                "domain": domain,
            }
        )
    return items


def pretrain_corpus(size: int, seed: int) -> list[tuple[str, str]]:
    """(question, clean solution) pairs that teach the base model to answer without thinking."""
    rng = random.Random(f"pretrain:{seed}")
    domains = sorted(FAMILIES)
    out = []
    for _ in range(size):
        _, p = _draw(domains, rng, set())
        steps, answer = p.solve(None)
        out.append((p.question, _solution(steps, answer)))
    return out
