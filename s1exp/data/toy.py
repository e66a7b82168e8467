"""The toy world: a seeded synthetic stand-in for the s1 59K pool, a held-out benchmark, a grader.

Each question asks for a counting walk ("Count up by 3 from 247 in 5 steps."): one short,
regular step per line that a tiny CPU transformer learns within minutes. The teacher states an
answer whenever a multiple of three steps is left, so on long walks it often stops before the
work is done; only sometimes does it notice, after "Wait", that steps are left. That
is the mechanism the paper's budget forcing relies on (a model that ends its thinking too early
and, made to go on, finishes or fixes its work), built in so that the toy sweeps can show it,
and show its absence when extending thinking is broken. Rows follow `schema.PoolRow` exactly, so
the real-pool filters and Algorithm 1 run unchanged on the toy pool. Everything is a pure function
of the seed (`random.Random` instances only, never global state).
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass

from s1exp.data.schema import BenchmarkItem, PoolRow

TOKEN_RE = re.compile(r"\d|[^\W\d]+|[^\w\s]")
ROUND = 3  # the teacher states an answer whenever a multiple of ROUND steps is left
MAX_STEPS = 9  # walks take 1..MAX_STEPS steps: up to three rounds
MAX_LOOKS = 4  # closing looks after "Wait" once every step is done


@dataclass(frozen=True)
class Problem:
    """A walk: its question, one line per step, and the value after each step."""

    question: str
    steps: tuple[str, ...]
    values: tuple[int, ...]

    @property
    def answer(self) -> str:
        return str(self.values[-1])


@dataclass(frozen=True)
class Family:
    """A task family = one diversity domain: walks with one stride and direction; `weight` skews
    the pool like real source mixes."""

    stride: int
    weight: float

    def make(self, rng: random.Random) -> Problem:
        steps = rng.randint(1, MAX_STEPS)
        reach = abs(self.stride) * MAX_STEPS  # every walk stays within three digits
        start = rng.randint(100, 999 - reach) if self.stride > 0 else rng.randint(100 + reach, 999)
        verb, sign = ("up", "+") if self.stride > 0 else ("down", "-")
        values, lines, v = [], [], start
        for j in range(1, steps + 1):
            w = v + self.stride
            lines.append(f"{v}{sign}{abs(self.stride)}={w}, {steps - j} left.")
            values.append(w)
            v = w
        question = f"Count {verb} by {abs(self.stride)} from {start} in {steps} steps."
        return Problem(question, tuple(lines), tuple(values))


FAMILIES: dict[str, Family] = {
    "up1": Family(1, 10),
    "up2": Family(2, 8),
    "up3": Family(3, 6),
    "down1": Family(-1, 8),
    "down2": Family(-2, 6),
    "down3": Family(-3, 4),
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


def _solution(p: Problem) -> str:
    """The clean step-by-step solution: every step, then the answer (no rounds, no "Wait")."""
    return "\n".join([*p.steps, f"The answer is {p.answer}."])


def make_problem(domain: str, rng: random.Random) -> tuple[str, str, str]:
    """One (question, clean step-by-step solution, answer) of a family; no benchmark split."""
    p = FAMILIES[domain].make(rng)
    return p.question, _solution(p), p.answer


@dataclass(frozen=True)
class Teacher:
    """How a teacher ends its rounds. `resume[i]`: the chance that, having stated an answer at its
    (i+1)-th pause with steps left, it notices after "Wait" and goes on (else it stops there,
    wrong); `check`: the chance of a closing look after "Wait" once every step is done, and
    `recheck` that of one more after each look (budget forcing's extra "Wait"s need examples)."""

    resume: tuple[float, ...]
    check: float
    recheck: float = 0.0


# s1K's teacher (gemini) notices unfinished work at its first pause about a third of the time
# and hardly ever at its second: a model trained on its traces learns to stop early, and
# extending its thinking pays. s1K-1.1's DeepSeek-R1 traces are longer and go on far more often
# (Table 5's second trace source: data=toy_1.1).
TEACHERS = {
    "gemini": Teacher(resume=(0.35, 0.1), check=0.8, recheck=0.4),
    "r1": Teacher(resume=(0.8, 0.5), check=0.95, recheck=0.6),
}
# The toy base model's own habit: the same pauses and looks, but it always goes on. A model this
# small learns to carry on after "Wait" (and to copy across its pauses and looks) only from
# thousands of examples; SFT on a few hundred traces then only has to change how often it goes on.
CAREFUL = Teacher(resume=(1.0, 1.0), check=0.6, recheck=0.4)


def _teacher(p: Problem, rng: random.Random, t: Teacher) -> tuple[str, str]:
    """Teacher trace and final answer: after each step that leaves a multiple of ROUND steps it
    states an answer, then goes on after "Wait" with chance `t.resume[pause]`, else stops there."""
    lines: list[str] = []
    total, pause = len(p.steps), 0
    for j, step in enumerate(p.steps, 1):
        lines.append(step)
        left = total - j
        if left == 0 or left % ROUND:
            continue
        value = str(p.values[j - 1])
        lines.append(f"So the answer is {value}.")
        resume = t.resume[pause] if pause < len(t.resume) else 0.0
        if rng.random() >= resume:
            return "\n".join(lines), value
        lines.append(f"Wait, {left} steps are left from {value}.")
        pause += 1
    lines.append(f"So the answer is {p.answer}.")
    looks = 0
    while looks < MAX_LOOKS and rng.random() < (t.recheck if looks else t.check):
        lines.append(f"Wait, 0 steps are left, so it is {p.answer}.")
        looks += 1
    return "\n".join(lines), p.answer


def _difficulty(p: Problem) -> float:
    """0 (one step) .. 1 (MAX_STEPS): longer walks mean more rounds to stop early in."""
    return (len(p.steps) - 1) / (MAX_STEPS - 1)


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
        x = _difficulty(p)
        thinking, final = _teacher(p, rng, TEACHERS["gemini"])
        if other is not None:
            thinking, final = _teacher(p, other, TEACHERS[teacher])
        hard = rng.random() < 0.15 * x**2
        source = (
            rng.choice(("toy/aime", "toy/gpqa")) if hard else rng.choices(SOURCES, (9, 6, 3))[0]
        )
        p_large = min(0.95, max(0.03, 0.85 - x))
        row: PoolRow = {
            "id": f"toy-{seed}-{i}",
            "question": p.question,
            "solution": _solution(p),
            "answer": p.answer,
            "thinking": thinking,
            "attempt": f"Answer: {final}",
            "teacher_correct": final == p.answer,
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


def instruct_corpus(size: int, seed: int) -> list[tuple[str, str, str]]:
    """(question, thinking, answer) triples the toy base model is trained on: careful traces."""
    rng = random.Random(f"pretrain:{seed}")
    domains = sorted(FAMILIES)
    out = []
    for _ in range(size):
        _, p = _draw(domains, rng, set())
        thinking, answer = _teacher(p, rng, CAREFUL)
        out.append((p.question, thinking, answer))
    return out


def pretrain_corpus(size: int, seed: int) -> list[tuple[str, str]]:
    """(question, clean solution) pairs: plain answers for throwaway test models."""
    rng = random.Random(f"pretrain:{seed}")
    domains = sorted(FAMILIES)
    problems = (_draw(domains, rng, set())[1] for _ in range(size))
    return [(p.question, _solution(p)) for p in problems]
