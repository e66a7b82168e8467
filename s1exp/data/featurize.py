"""The featurize stage: the columns the s1 filters read, computed where a pool lacks them.

S1_DATA section 2: difficulty = does each base model (Qwen2.5-7B/32B-Instruct; tiny and SmolLM2
on CPU) solve the question, sampled at temperature 0.05 through s1exp's own engines and graded
against the reference solution (math-verify by default; an LLM judge through the same engines as
an option); teacher_correct = the same grade of the teacher's attempt; thinking_tokens = tokens
of the thinking text under the configured tokenizer; domain = an LLM classifier answering with a
two-digit MSC code, or an existing column. A feature the pool already has (the key is present in
its rows) is never recomputed.

Every finished (row, feature) is appended to a progress file before the next batch starts, so a
killed job resumes where it stopped and redoes at most one batch.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig

from s1exp.data import prompts
from s1exp.data.format import token_ids
from s1exp.data.schema import PoolRow
from s1exp.errors import ConfigError, brief
from s1exp.evaluate.grading import exact_match, extract_answer, math_equal
from s1exp.infer.engine import SamplingParams
from s1exp.models import loading
from s1exp.store import Journal

log = logging.getLogger(__name__)

DIFFICULTY_FIELDS = ("base_small_correct", "base_large_correct")

# Grades attempts of rows against their references: True/False, None where undefined.
Grade = Callable[[Sequence[PoolRow], Sequence[str | None]], list[bool | None]]


class Progress:
    """Append-only record of finished (row id, feature) values: the resume point."""

    def __init__(self, path: Path) -> None:
        self.journal = Journal(path)
        self.done: dict[tuple[str, str], Any] = {
            (entry["id"], entry["feature"]): entry["value"] for entry in self.journal.rows
        }
        self.resumed = len(self.done)

    def record(self, feature: str, values: dict[str, Any]) -> None:
        self.journal.append(
            [{"id": row_id, "feature": feature, "value": v} for row_id, v in values.items()]
        )
        self.done.update({(row_id, feature): v for row_id, v in values.items()})


@dataclass
class ChatModel:
    """A model config (conf/model/*.yaml) served by the run's engine for short chat requests."""

    name: str
    tokenizer: Any
    engine: Any
    max_length: int

    def reply(
        self,
        conversations: list[list[dict[str, str]]],
        max_tokens: int,
        temperature: float,
        seeds: Sequence[int] | None = None,
    ) -> list[str | None]:
        """One reply per conversation; None where the prompt leaves no room to answer. `seeds`
        (one per conversation) keep a sampled reply the same however rows are batched."""
        prompts_ids = [
            token_ids(
                self.tokenizer,
                self.tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False),
            )
            for c in conversations
        ]
        stops = tuple(stop_ids(self.tokenizer))
        fits = [i for i, p in enumerate(prompts_ids) if len(p) < self.max_length - 1]
        params = [
            SamplingParams(
                max_tokens=min(max_tokens, self.max_length - len(prompts_ids[i])),
                stop_token_ids=stops,
                temperature=temperature,
                seed=seeds[i] if seeds is not None else i,
            )
            for i in fits
        ]
        if len(fits) < len(conversations):
            log.warning(
                "%s: %d of %d prompts do not fit its max_length=%d and get no reply (None); "
                "raise that model's max_length",
                self.name,
                len(conversations) - len(fits),
                len(conversations),
                self.max_length,
            )
        out: list[str | None] = [None] * len(conversations)
        completions = self.engine.generate([prompts_ids[i] for i in fits], params)
        for i, completion in zip(fits, completions, strict=True):
            ids = [t for t in completion.token_ids if t not in stops]
            out[i] = self.tokenizer.decode(ids, skip_special_tokens=False)
        return out


def row_seed(seed: int, row_id: str) -> int:
    """A sampling seed fixed by the run's seed and the row, not by its place in a batch."""
    return (int(seed) * 1_000_003 + zlib.crc32(row_id.encode())) % (2**31)


def stop_ids(tokenizer: Any) -> list[int]:
    """End of turn for chat models: the EOS id and `<|im_end|>` where the vocabulary has it."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(im_end, int) and im_end != tokenizer.unk_token_id:
        ids.add(im_end)
    return sorted(ids)


@contextmanager
def chat_model(cfg: DictConfig, model_cfg: DictConfig, what: str) -> Iterator[ChatModel]:
    """Load `model_cfg` into the featurize engine; `what` names the setting in errors."""
    path, tokenizer = load_model(cfg, model_cfg, what)
    sizing = {"max_model_len": model_cfg.max_length}
    if "tensor_parallel_size" in cfg.featurize.engine:  # vLLM: this model's GPUs per replica
        sizing["tensor_parallel_size"] = model_cfg.get("tensor_parallel_size", 1)
    trust = loading.trusts_remote_code(model_cfg)  # this model's, not the run's main model's
    engine = instantiate(cfg.featurize.engine, model_path=path, trust_remote_code=trust, **sizing)
    try:
        yield ChatModel(str(model_cfg.get("name", path)), tokenizer, engine, model_cfg.max_length)
    finally:
        close = getattr(engine, "close", None)
        if close is not None:
            close()
        del engine


def load_model(cfg: DictConfig, model_cfg: DictConfig, what: str) -> tuple[str, Any]:
    """The checkpoint path and tokenizer of a model config, or an error naming the setting."""
    try:
        path = instantiate(model_cfg.base, cache_dir=cfg.paths.cache)
        trust = loading.trusts_remote_code(model_cfg)
        return path, loading.tokenizer(path, trust_remote_code=trust)
    except ConfigError:
        raise
    except Exception as error:  # a hub id that is not there, a broken local checkpoint
        raise ConfigError(
            f"{what}: cannot load model {model_cfg.get('name')!r} ({brief(error)}); pick "
            f"another model for {what}"
        ) from error


def reference_grade(row: PoolRow, attempt: str) -> bool | None:
    """math-verify of an attempt against the reference: the gold answer where a source has one
    (the toy), else the answer read from the reference solution (its last boxed answer or
    "Answer:" line); None when the row has neither."""
    gold = row.get("answer")
    if gold is None and row["solution"] is not None:
        gold = extract_answer(row["solution"])
    if gold is None:
        return None
    predicted = extract_answer(attempt)
    if predicted is None:  # a plain reply: its last line
        lines = attempt.strip().splitlines()
        predicted = lines[-1] if lines else None
    return predicted is not None and (exact_match(predicted, gold) or math_equal(predicted, gold))


class Featurizer:
    """Runs each missing feature over the rows that lack it, batch by batch, with progress.

    One model is loaded at a time (GPU memory holds one engine): each difficulty model first
    writes its replies (recorded as `reply/<feature>`), then one grading pass (math-verify or the
    judge model) turns teacher attempts and replies into the correctness features.
    """

    def __init__(self, cfg: DictConfig, progress: Progress) -> None:
        self.cfg = cfg
        self.settings = cfg.featurize
        self.progress = progress
        self.computed: dict[str, int] = {}
        self.replies: dict[tuple[str, str], str | None] = {}

    # -- bookkeeping ------------------------------------------------------------------------
    def pending(self, rows: list[PoolRow], feature: str) -> list[PoolRow]:
        """Rows the pool gave no value and no earlier attempt recorded one (those are filled)."""
        todo = []
        for r in rows:
            if feature in r:
                continue
            key = (r["id"], feature)
            if key in self.progress.done:
                r[feature] = self.progress.done[key]  # type: ignore[literal-required]
            else:
                todo.append(r)
        return todo

    def run_batches(
        self,
        feature: str,
        todo: list[PoolRow],
        compute: Callable[[list[PoolRow]], list[Any]],
        label: str,
        store: Callable[[PoolRow, Any], None],
    ) -> None:
        """compute() each batch, store() each value, record the batch, print one progress line."""
        size = int(self.settings.batch_rows)
        start = time.perf_counter()
        for first in range(0, len(todo), size):
            batch = todo[first : first + size]
            values = compute(batch)
            for r, v in zip(batch, values, strict=True):
                store(r, v)
            self.progress.record(feature, {r["id"]: v for r, v in zip(batch, values, strict=True)})
            log.info(
                "featurize %s (%s): %d/%d rows, %.0f s",
                feature,
                label,
                first + len(batch),
                len(todo),
                time.perf_counter() - start,
            )
        self.computed[feature] = self.computed.get(feature, 0) + len(todo)

    def fill(self, feature: str, rows: list[PoolRow], compute: Callable, label: str) -> None:
        """Compute a pool feature where it is missing."""
        todo = self.pending(rows, feature)
        if todo:
            self.run_batches(feature, todo, compute, label, lambda r, v: r.__setitem__(feature, v))

    # -- the features -------------------------------------------------------------------------
    def __call__(self, rows: list[PoolRow]) -> list[PoolRow]:
        if self.pending(rows, "domain") and not self.settings.domain.get("column"):
            prompts.load_domain_table(self.settings.domain.get("table"))  # fail before any model
        self.thinking_tokens(rows)
        self.domain(rows)
        for feature in DIFFICULTY_FIELDS:
            self.solve(rows, feature)
        if not any(self.pending(rows, f) for f in ("teacher_correct", *DIFFICULTY_FIELDS)):
            return rows  # nothing to grade: the judge is never loaded
        with self.grader() as grade:
            self.fill(
                "teacher_correct", rows, lambda b: grade(b, [r["attempt"] for r in b]), "teacher"
            )
            for feature in DIFFICULTY_FIELDS:
                self.fill(feature, rows, self.grade_replies(grade, feature), "grade")
        return rows

    def grade_replies(self, grade: Grade, feature: str) -> Callable[[list[PoolRow]], list]:
        return lambda batch: grade(batch, [self.replies.get((r["id"], feature)) for r in batch])

    def thinking_tokens(self, rows: list[PoolRow]) -> None:
        if not self.pending(rows, "thinking_tokens"):
            return
        model_cfg = self.settings.length.tokenizer
        _, tokenizer = load_model(self.cfg, model_cfg, "featurize.length.tokenizer")

        def count(batch: list[PoolRow]) -> list[int | None]:
            return [
                None
                if r["thinking"] is None
                else len(tokenizer(r["thinking"], add_special_tokens=False)["input_ids"])
                for r in batch
            ]

        self.fill("thinking_tokens", rows, count, str(model_cfg.get("name")))

    def domain(self, rows: list[PoolRow]) -> None:
        if not self.pending(rows, "domain"):
            return
        column = self.settings.domain.get("column")
        if column:
            self.fill("domain", rows, lambda b: [r.get(column) for r in b], column)
            return
        table = prompts.load_domain_table(self.settings.domain.get("table"))
        classifier = self.settings.domain.classifier
        with chat_model(self.cfg, classifier, "featurize.domain.classifier") as model:

            def classify(batch: list[PoolRow]) -> list[str | None]:
                replies = model.reply(
                    [prompts.domain_messages(r["question"], table) for r in batch],
                    int(self.settings.domain.max_tokens),
                    0.0,
                )
                return [None if t is None else prompts.parse_domain(t, table) for t in replies]

            self.fill("domain", rows, classify, model.name)

    def solve(self, rows: list[PoolRow], feature: str) -> None:
        """The difficulty model's replies to the rows still missing `feature` (ungradable rows,
        without a reference, are not asked)."""
        name = f"reply/{feature}"
        todo = []
        for r in self.pending(rows, feature):
            if (r["id"], name) in self.progress.done:
                self.replies[(r["id"], feature)] = self.progress.done[(r["id"], name)]
            elif r["solution"] is not None or r.get("answer") is not None:
                todo.append(r)
        if not todo:
            return
        model_cfg = self.settings.difficulty.models[feature]
        with chat_model(self.cfg, model_cfg, f"featurize.difficulty.models.{feature}") as model:

            def ask(batch: list[PoolRow]) -> list[str | None]:
                return model.reply(
                    [[{"role": "user", "content": r["question"]}] for r in batch],
                    int(self.settings.difficulty.max_tokens),
                    float(self.settings.difficulty.temperature),
                    [row_seed(self.cfg.seed, r["id"]) for r in batch],
                )

            def keep(r: PoolRow, reply: str | None) -> None:
                self.replies[(r["id"], feature)] = reply

            self.run_batches(name, todo, ask, model.name, keep)

    @contextmanager
    def grader(self) -> Iterator[Grade]:
        """math-verify, or the configured judge model (loaded only when a grade is missing)."""
        judge_cfg = self.settings.get("judge")
        if not judge_cfg:
            yield math_verify_grade
            return
        with chat_model(self.cfg, judge_cfg, "featurize.judge") as judge:

            def judged(batch: Sequence[PoolRow], attempts: Sequence[str | None]) -> list:
                asks = [
                    i
                    for i, (r, a) in enumerate(zip(batch, attempts, strict=True))
                    if a is not None and r["solution"] is not None
                ]
                replies = judge.reply(
                    [
                        prompts.judge_messages(
                            batch[i]["question"], attempts[i], batch[i]["solution"]
                        )
                        for i in asks
                    ],
                    int(self.settings.judge_max_tokens),
                    0.0,
                )
                out: list[bool | None] = [None] * len(batch)
                for i, reply in zip(asks, replies, strict=True):
                    out[i] = None if reply is None else prompts.parse_judgement(reply)
                return out

            yield judged


def math_verify_grade(batch: Sequence[PoolRow], attempts: Sequence[str | None]) -> list:
    return [
        None if a is None else reference_grade(r, a) for r, a in zip(batch, attempts, strict=True)
    ]
