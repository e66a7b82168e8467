"""Benchmarks: the questions, how each is put to the model, and how an answer is graded.

The toy benchmark is generated locally and graded exactly; the paper's benchmarks load from the
Hugging Face hub (not reachable in CI) and are graded with math-verify, GPQA by choice letter.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from s1exp.data import toy
from s1exp.data.schema import BenchmarkItem
from s1exp.evaluate.grading import exact_match, extract_answer, math_equal


@dataclass
class ToyBenchmark:
    """The held-out toy benchmark (disjoint from the toy pool by construction)."""

    size: int = 64
    seed: int = 1234
    answer_max_tokens: int = 32

    def items(self) -> list[BenchmarkItem]:
        return toy.make_benchmark(size=self.size, seed=self.seed)

    def grade(self, answer_text: str, gold: str) -> tuple[str | None, bool]:
        predicted = extract_answer(answer_text)
        return predicted, exact_match(predicted, gold)


@dataclass
class HubMathBenchmark:
    """AIME24/25 and MATH500 from the hub: a problem column and an answer column."""

    path: str
    split: str = "test"
    question_field: str = "problem"
    answer_field: str = "answer"
    name: str | None = None
    answer_max_tokens: int | None = None

    def _rows(self) -> list[dict[str, Any]]:
        from datasets import load_dataset

        return list(load_dataset(self.path, self.name, split=self.split))

    def items(self) -> list[BenchmarkItem]:
        return [
            BenchmarkItem(
                id=str(i),
                question=r[self.question_field],
                answer=str(r[self.answer_field]),
                domain=self.path,
            )
            for i, r in enumerate(self._rows())
        ]

    def grade(self, answer_text: str, gold: str) -> tuple[str | None, bool]:
        predicted = extract_answer(answer_text)
        return predicted, predicted is not None and math_equal(predicted, gold)


@dataclass
class LocalBenchmark(HubMathBenchmark):
    """Questions and answers in a local JSONL file (offline clusters, planted test items)."""

    path: str = "???"
    split: str = "local"

    def _rows(self) -> list[dict[str, Any]]:
        from s1exp.store import read_jsonl

        return read_jsonl(Path(self.path).expanduser())


@dataclass
class GPQABenchmark(HubMathBenchmark):
    """GPQA Diamond: four choices shuffled by a seeded RNG, graded by the letter (S1_SPEC 5)."""

    path: str = "Idavidrein/gpqa"
    name: str | None = "gpqa_diamond"
    split: str = "train"
    seed: int = 0

    def items(self) -> list[BenchmarkItem]:
        rng = random.Random(self.seed)
        out = []
        for i, r in enumerate(self._rows()):
            choices = [
                r["Correct Answer"],
                r["Incorrect Answer 1"],
                r["Incorrect Answer 2"],
                r["Incorrect Answer 3"],
            ]
            order = list(range(4))
            rng.shuffle(order)
            lines = "\n".join(f"{'ABCD'[k]}) {choices[j].strip()}" for k, j in enumerate(order))
            gold = "ABCD"[order.index(0)]
            out.append(
                BenchmarkItem(
                    id=str(i),
                    question=f"{r['Question'].strip()}\n\n{lines}",
                    answer=gold,
                    domain="gpqa",
                )
            )
        return out

    def grade(self, answer_text: str, gold: str) -> tuple[str | None, bool]:
        predicted = extract_answer(answer_text)
        letter = predicted.strip().strip("()").upper()[:1] if predicted else None
        return letter, letter == gold
