"""Benchmarks: the questions, how each is put to the model, and how an answer is graded.

The toy benchmark is generated locally and graded exactly. The paper's benchmarks load from the
Hugging Face hub with the ids, splits and columns s1 used (S1_DATA section 5), or from a local
JSONL/Parquet file with the same columns (`local_path`, for offline clusters); answers are graded
with math-verify, GPQA by the chosen letter.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from s1exp.data import toy
from s1exp.data.schema import BenchmarkItem
from s1exp.errors import ConfigError, brief
from s1exp.evaluate import grading

Grade = tuple[str | None, bool]  # (the extracted answer, None when unparseable; correct)


@dataclass
class ToyBenchmark:
    """The held-out toy benchmark (disjoint from the toy pool by construction)."""

    size: int = 64
    seed: int = 1234
    answer_max_tokens: int = 32
    name: str = "toy"

    def items(self) -> list[BenchmarkItem]:
        return toy.make_benchmark(size=self.size, seed=self.seed)

    def grade(self, answer_text: str, gold: str) -> Grade:
        predicted = grading.extract_answer(answer_text)
        return predicted, grading.exact_match(predicted, gold)


@dataclass
class MathBenchmark:
    """AIME24/25 and MATH500: a question column and an answer column, graded by math-verify."""

    path: str | None = None  # hub dataset id
    name: str = "benchmark"  # the key under `benchmark.` (the pipeline sets it)
    subset: str | None = None
    split: str = "test"
    question_field: str = "problem"
    answer_field: str = "answer"
    id_field: str | None = None  # None: the row number
    local_path: str | None = None
    answer_max_tokens: int | None = None

    def where(self) -> str:
        return self.local_path or f"{self.path} ({self.subset or 'default'}, split {self.split})"

    def rows(self) -> list[dict[str, Any]]:
        """The benchmark's records, checked for the columns this config reads."""
        if self.local_path:
            from s1exp.data.sources import read_records

            records, columns = read_records(
                Path(self.local_path).expanduser(), field=f"benchmark.{self.name}.local_path"
            )
        elif self.path:
            records, columns = self.hub_records()
        else:
            raise ConfigError(
                f"benchmark.{self.name}: set path (a hub dataset) or local_path (a JSONL/Parquet "
                "file)"
            )
        self.check_columns(columns)
        return records

    def hub_records(self) -> tuple[list[dict[str, Any]], list[str]]:
        from datasets import load_dataset

        try:
            dataset = load_dataset(self.path, self.subset, split=self.split)
        except Exception as error:  # offline, gated, misspelt id, unknown split or subset
            raise ConfigError(
                f"benchmark.{self.name}: cannot load {self.where()} ({brief(error)}); check "
                f"benchmark.{self.name}.path/subset/split and hub access, or set "
                f"benchmark.{self.name}.local_path to a JSONL/Parquet copy"
            ) from error
        return list(dataset), list(dataset.column_names)

    def fields(self) -> dict[str, str | None]:
        """Config field -> the column it names (the columns a file must have)."""
        return {
            "question_field": self.question_field,
            "answer_field": self.answer_field,
            "id_field": self.id_field,
        }

    def fixed_columns(self) -> tuple[str, ...]:
        """Columns the benchmark's format needs under their own names."""
        return ()

    def check_columns(self, columns: list[str]) -> None:
        have = f"{self.where()} has columns {', '.join(sorted(map(str, columns)))}"
        for setting, column in self.fields().items():
            if column is not None and column not in columns:
                raise ConfigError(
                    f"benchmark.{self.name}.{setting}={column!r}: no such column ({have}); set "
                    f"benchmark.{self.name}.{setting} to one of them"
                )
        for column in self.fixed_columns():
            if column not in columns:
                raise ConfigError(
                    f"benchmark.{self.name}: {self.where()} lacks the column {column!r} that "
                    f"this benchmark needs ({have}); rename the file's column to {column!r}"
                )

    def item_id(self, row: dict[str, Any], index: int) -> str:
        return self.value(row, index, "id_field") if self.id_field else str(index)

    def value(self, row: dict[str, Any], index: int, setting: str) -> str:
        """A row's text in the column `setting` names; a missing or null value is refused (a
        question with gold "None" would be graded against the string "None")."""
        column = getattr(self, setting)
        if row.get(column) is None:
            raise ConfigError(
                f"benchmark.{self.name}.{setting}={column!r}: row {index} of {self.where()} has "
                f"no value there; fix the file or name another column"
            )
        return str(row[column])

    def items(self) -> list[BenchmarkItem]:
        rows = self.rows()
        items = [
            BenchmarkItem(
                id=self.item_id(r, i),
                question=self.value(r, i, "question_field"),
                answer=self.value(r, i, "answer_field"),
                domain=self.name,
            )
            for i, r in enumerate(rows)
        ]
        check_unique_ids(items, f"benchmark.{self.name}.id_field")
        return items

    def grade(self, answer_text: str, gold: str) -> Grade:
        predicted = grading.extract_answer(answer_text)
        return predicted, predicted is not None and grading.math_equal(predicted, gold)


def load_benchmark(name: str, benchmark_cfg: Any) -> Any:
    """The benchmark object of `benchmark.<name>` (its name goes into its error messages)."""
    from hydra.utils import instantiate

    return instantiate(benchmark_cfg, name=name)


def check_unique_ids(items: list[BenchmarkItem], setting: str) -> None:
    """Samples are paired across runs by id: a repeated id would pair the wrong questions."""
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        if (j := seen.setdefault(item["id"], i)) != i:
            raise ConfigError(
                f"{setting}: rows {j} and {i} share the id {item['id']!r}; name a unique column "
                f"or null (the row number)"
            )


INCORRECT_COLUMNS = ("Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")
LETTERS = "ABCD"


@dataclass
class ChoiceBenchmark(MathBenchmark):
    """GPQA Diamond: four choices shuffled by a seeded RNG, graded by the chosen letter.

    As s1's lm-eval task: the choices [Incorrect 1, 2, 3, Correct] are shuffled with one RNG in
    row order (s1 used the global `random`, seeded 0 by lm-eval; s1exp a private
    random.Random(seed), so the order does not depend on what else ran), not stripped (S1_DATA
    trap 7), and the prompt is "{Question}\\n\\nA) ..\\nB) ..\\nC) ..\\nD) ..". Each item records
    which column each letter shows, so a sample can be checked by hand.
    """

    path: str = "Idavidrein/gpqa"
    subset: str | None = "gpqa_diamond"
    split: str = "train"
    question_field: str = "Question"
    answer_field: str = "Correct Answer"
    seed: int = 0

    def fixed_columns(self) -> tuple[str, ...]:
        return INCORRECT_COLUMNS

    def items(self) -> list[BenchmarkItem]:
        rng = random.Random(self.seed)
        items = []
        for i, r in enumerate(self.rows()):
            columns = [*INCORRECT_COLUMNS, self.answer_field]
            self.value(r, i, "answer_field")
            for column in INCORRECT_COLUMNS:
                if r.get(column) is None:
                    raise ConfigError(
                        f"benchmark.{self.name}: row {i} of {self.where()} has no {column!r}"
                    )
            rng.shuffle(columns)
            lines = "\n".join(f"{LETTERS[k]}) {r[c]}" for k, c in enumerate(columns))
            items.append(
                BenchmarkItem(
                    id=self.item_id(r, i),
                    question=f"{self.value(r, i, 'question_field')}\n\n{lines}",
                    answer=LETTERS[columns.index(self.answer_field)],
                    domain=self.name,
                    choices=dict(zip(LETTERS, columns, strict=True)),
                )
            )
        check_unique_ids(items, f"benchmark.{self.name}.id_field")
        return items

    def grade(self, answer_text: str, gold: str) -> Grade:
        letter = grading.extract_choice(answer_text)
        return letter, letter == gold
