"""The paper's benchmarks on small files in their published schemas (S1_DATA section 5).

The hub is out of reach, so each test writes a few made-up rows in one real schema (AIME24/25
nofigures, openaimath and HuggingFaceH4/MATH-500, GPQA) to JSONL, Parquet or a local dataset
folder, composes the real config with `benchmark=<name>` and reads the items back through
`load_benchmark`. GPQA's shuffled choices are checked against an independent re-implementation of
s1's lm-eval task; bad input must fail with a ConfigError that names the setting to fix. Through
the CLI, a benchmark list is one job whose benchmarks are cached one by one.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import FAST, run_s1exp
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from math_verify import parse, verify
from omegaconf import DictConfig

from s1exp.errors import ConfigError
from s1exp.evaluate.benchmarks import ChoiceBenchmark, load_benchmark

ROOT = Path(__file__).resolve().parent.parent

# simplescaling/aime24_nofigures: id (int), problem, solution, answer (str), url.
AIME24_ROWS: list[dict[str, Any]] = [
    {
        "id": 60,
        "problem": "Find the remainder when $2^{10}$ is divided by $1000$.",
        "solution": "$2^{10} = 1024$, so the remainder is $\\boxed{024}$.",
        "answer": "024",
        "url": "https://artofproblemsolving.com/wiki/index.php/2024_AIME_I_Problems/Problem_1",
    },
    {
        "id": 61,
        "problem": "How many positive divisors does $360$ have?",
        "solution": "$360 = 2^3 3^2 5$, so $(3+1)(2+1)(1+1) = 24$.",
        "answer": "24",
        "url": "https://artofproblemsolving.com/wiki/index.php/2024_AIME_I_Problems/Problem_2",
    },
    {
        "id": 62,
        "problem": "Let $x + y = 10$ and $xy = 21$. Find $x^2 + y^2$.",
        "solution": "$(x+y)^2 - 2xy = 100 - 42 = 58$.",
        "answer": "58",
        "url": "https://artofproblemsolving.com/wiki/index.php/2024_AIME_II_Problems/Problem_3",
    },
]
# simplescaling/aime25_nofigures: the same columns as AIME24.
AIME25_ROWS: list[dict[str, Any]] = [
    {
        "id": 0,
        "problem": "Find the sum of all integer bases $b > 9$ for which $17_b$ divides $97_b$.",
        "solution": "$b + 7$ divides $56$: $b = 21, 49$.",
        "answer": "70",
        "url": "https://artofproblemsolving.com/wiki/index.php/2025_AIME_I_Problems/Problem_1",
    },
    {
        "id": 1,
        "problem": "What is $7 \\cdot 13 + 9$?",
        "solution": "$91 + 9 = 100$.",
        "answer": "100",
        "url": "https://artofproblemsolving.com/wiki/index.php/2025_AIME_I_Problems/Problem_2",
    },
]
# simplescaling/openaimath (split test): problem, solution, answer; no id column.
OPENAIMATH_ROWS: list[dict[str, Any]] = [
    {
        "problem": "Simplify $\\frac{6}{8}$.",
        "solution": "$\\frac{6}{8} = \\boxed{\\frac{3}{4}}$.",
        "answer": "\\frac{3}{4}",
    },
    {
        "problem": "What is $\\sqrt{49}$?",
        "solution": "$\\boxed{7}$",
        "answer": "7",
    },
    {
        "problem": "Solve $2x = 5$.",
        "solution": "$x = \\boxed{\\frac52}$",
        "answer": "\\frac52",
    },
]
# HuggingFaceH4/MATH-500: the same plus subject, level (int) and unique_id.
H4_ROWS: list[dict[str, Any]] = [
    r | {"subject": s, "level": lv, "unique_id": u}
    for r, s, lv, u in zip(
        OPENAIMATH_ROWS,
        ["Prealgebra", "Algebra", "Algebra"],
        [1, 1, 2],
        ["test/prealgebra/1.json", "test/algebra/7.json", "test/algebra/12.json"],
        strict=True,
    )
]
# Idavidrein/gpqa, config gpqa_diamond, split train. Choices keep their stray whitespace (s1 does
# not strip them, S1_DATA trap 7).
GPQA_ROWS: list[dict[str, Any]] = [
    {
        "Question": "Which particle mediates the electromagnetic force?",
        "Correct Answer": "The photon",
        "Incorrect Answer 1": "The gluon",
        "Incorrect Answer 2": " The W boson",
        "Incorrect Answer 3": "The Higgs boson\n",
        "Explanation": "Photons carry the electromagnetic interaction.",
        "Record ID": "recAAA111",
        "High-level domain": "Physics",
        "Subdomain": "Particle physics",
    },
    {
        "Question": "What is the oxidation state of Mn in KMnO4?",
        "Correct Answer": "+7",
        "Incorrect Answer 1": "+2",
        "Incorrect Answer 2": "+4",
        "Incorrect Answer 3": "+6",
        "Explanation": "K is +1, four O are -8.",
        "Record ID": "recBBB222",
        "High-level domain": "Chemistry",
        "Subdomain": "Inorganic Chemistry",
    },
    {
        "Question": "Which organelle makes most of a cell's ATP?",
        "Correct Answer": "Mitochondrion",
        "Incorrect Answer 1": "Ribosome",
        "Incorrect Answer 2": "Golgi apparatus",
        "Incorrect Answer 3": "Lysosome",
        "Explanation": "Oxidative phosphorylation.",
        "Record ID": "recCCC333",
        "High-level domain": "Biology",
        "Subdomain": "Molecular Biology",
    },
    {
        "Question": "What is the ground-state spin multiplicity of O2?",
        "Correct Answer": "3",
        "Incorrect Answer 1": "1",
        "Incorrect Answer 2": "2",
        "Incorrect Answer 3": "4",
        "Explanation": "Two unpaired electrons.",
        "Record ID": "recDDD444",
        "High-level domain": "Chemistry",
        "Subdomain": "Physical Chemistry",
    },
]


def gpqa_reference(rows: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """s1's lm-eval GPQA task re-done from S1_DATA: [Inc1, Inc2, Inc3, Correct] shuffled by one
    RNG in row order, answer = chr(65 + index of the correct text), choices not stripped."""
    rng = random.Random(seed)
    columns = ["Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3", "Correct Answer"]
    expected = []
    for row in rows:
        texts = [row[c] for c in columns]
        rng.shuffle(texts)
        prompt = "{}\n\nA) {}\nB) {}\nC) {}\nD) {}".format(row["Question"], *texts)
        by_text = {row[c]: c for c in columns}
        expected.append(
            {
                "id": row["Record ID"],
                "question": prompt,
                "answer": chr(65 + texts.index(row["Correct Answer"])),
                "choices": {chr(65 + i): by_text[t] for i, t in enumerate(texts)},
            }
        )
    return expected


def math_expected(rows: list[dict[str, Any]], id_column: str | None) -> list[dict[str, Any]]:
    """What a math benchmark's items must hold: the id (row number without an id column)."""
    return [
        {"id": str(r[id_column]) if id_column else str(i), "question": r["problem"]}
        | {"answer": r["answer"]}
        for i, r in enumerate(rows)
    ]


# name: (benchmark group option, its rows, overrides beyond the file, the items it must give)
CASES: dict[str, tuple[str, list[dict[str, Any]], list[str], list[dict[str, Any]]]] = {
    "aime24": ("aime24", AIME24_ROWS, [], math_expected(AIME24_ROWS, "id")),
    "aime25": ("aime25", AIME25_ROWS, [], math_expected(AIME25_ROWS, "id")),
    "math500": ("math500", OPENAIMATH_ROWS, [], math_expected(OPENAIMATH_ROWS, None)),
    "math500_h4": (
        "math500",
        H4_ROWS,
        ["benchmark.math500.id_field=unique_id"],
        math_expected(H4_ROWS, "unique_id"),
    ),
    "gpqa_diamond": ("gpqa_diamond", GPQA_ROWS, [], gpqa_reference(GPQA_ROWS, 0)),
}


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


WRITERS = {"jsonl": write_jsonl, "parquet": write_parquet}


def write_dataset_folder(folder: Path, rows: list[dict[str, Any]], config: str, split: str):
    """A local stand-in for a hub dataset: a Parquet file per split, named by the dataset card's
    `configs` (so a config name such as gpqa_diamond is real, not dropped)."""
    (folder / config).mkdir(parents=True)
    write_parquet(folder / config / f"{split}.parquet", rows)
    card = f"---\nconfigs:\n- config_name: {config}\n  data_files:\n  - split: {split}\n"
    (folder / "README.md").write_text(card + f"    path: {config}/{split}.parquet\n---\n")
    return folder


def compose_config(overrides: list[str]) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=overrides)


def items_of(option: str, overrides: list[str]) -> list[dict[str, Any]]:
    """The items of `benchmark=<option>` as the evaluate stage loads them."""
    cfg = compose_config([f"benchmark={option}", *overrides])
    assert list(cfg.benchmark) == [option]
    return load_benchmark(option, cfg.benchmark[option]).items()


def test_a_benchmark_list_composes_each_option_under_its_own_name():
    cfg = compose_config(["benchmark=[aime24,math500]", "benchmark.aime24.local_path=/x.jsonl"])
    assert list(cfg.benchmark) == ["aime24", "math500"]
    assert cfg.benchmark.aime24.local_path == "/x.jsonl" and cfg.benchmark.math500.split == "test"
    assert cfg.benchmark.aime24.path == "simplescaling/aime24_nofigures"
    assert compose_config([]).benchmark.keys() == {"toy"}


@pytest.mark.parametrize("suffix", sorted(WRITERS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_local_file_in_the_published_schema(tmp_path: Path, case: str, suffix: str):
    option, rows, overrides, expected = CASES[case]
    file = WRITERS[suffix](tmp_path / f"{case}.{suffix}", rows)
    items = items_of(option, [f"benchmark.{option}.local_path={file}", *overrides])
    assert [{k: it[k] for k in expected[0]} for it in items] == expected
    assert all(it["domain"] == option for it in items)


@pytest.mark.parametrize("case", sorted(CASES))
def test_hub_path_reads_the_configs_subset_and_split(tmp_path: Path, case: str):
    """The `datasets.load_dataset(path, subset, split=...)` path, with a local dataset folder; the
    folder's card declares the config's subset (or `default`) and its split."""
    option, rows, overrides, expected = CASES[case]
    cfg = compose_config([f"benchmark={option}"]).benchmark[option]
    folder = write_dataset_folder(tmp_path / case, rows, cfg.subset or "default", cfg.split)
    items = items_of(option, [f"benchmark.{option}.path={folder}", *overrides])
    assert [{k: it[k] for k in expected[0]} for it in items] == expected


def test_hub_path_asks_for_the_gpqa_diamond_config(tmp_path: Path):
    """A folder whose only config is not gpqa_diamond is refused: the subset is really passed."""
    folder = write_dataset_folder(tmp_path / "gpqa", GPQA_ROWS, "gpqa_main", "train")
    with pytest.raises(ValueError, match="gpqa_diamond"):
        items_of("gpqa_diamond", [f"benchmark.gpqa_diamond.path={folder}"])


# -- GPQA: seeded shuffle, prompt, letter grading ----------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 7])
def test_gpqa_choices_follow_the_seeded_row_by_row_shuffle(tmp_path: Path, seed: int):
    file = write_jsonl(tmp_path / "gpqa.jsonl", GPQA_ROWS)
    overrides = [f"benchmark.gpqa_diamond.local_path={file}", f"benchmark.gpqa_diamond.seed={seed}"]
    items = items_of("gpqa_diamond", overrides)
    assert [dict(it) | {"domain": None} for it in items] == [
        e | {"domain": None} for e in gpqa_reference(GPQA_ROWS, seed)
    ]
    for item, row in zip(items, GPQA_ROWS, strict=True):
        assert row[item["choices"][item["answer"]]] == row["Correct Answer"]
        lines = item["question"].split("\n\n", 1)[1].split("\n")
        assert [line[:3] for line in lines if line[:3] in {"A) ", "B) ", "C) ", "D) "}] == [
            "A) ",
            "B) ",
            "C) ",
            "D) ",
        ]
    prompts = "".join(it["question"] for it in items)  # choices are not stripped
    assert ")  The W boson" in prompts and "The Higgs boson\n" in prompts


def test_gpqa_order_depends_on_the_seed_only(tmp_path: Path):
    file = write_parquet(tmp_path / "gpqa.parquet", GPQA_ROWS)

    def orders(seed: int) -> list[dict[str, str]]:
        overrides = [f"benchmark.gpqa_diamond.local_path={file}"]
        items = items_of("gpqa_diamond", [*overrides, f"benchmark.gpqa_diamond.seed={seed}"])
        return [it["choices"] for it in items]

    assert orders(0) == orders(0)
    assert orders(0) != orders(1)
    assert orders(0) == [e["choices"] for e in gpqa_reference(GPQA_ROWS, 0)]


@pytest.mark.parametrize(
    "reply",
    [
        "<|im_start|>answer\nAnswer: The correct option is {}",
        "<|im_start|>answer\nThe answer is $\\boxed{{{}}}$",
        "<|im_start|>think\nA looks wrong.\n<|im_start|>answer\nAnswer: ({})",
    ],
)
def test_gpqa_is_graded_by_the_chosen_letter(tmp_path: Path, reply: str):
    file = write_jsonl(tmp_path / "gpqa.jsonl", GPQA_ROWS)
    cfg = compose_config(["benchmark=gpqa_diamond", f"benchmark.gpqa_diamond.local_path={file}"])
    benchmark = load_benchmark("gpqa_diamond", cfg.benchmark.gpqa_diamond)
    assert isinstance(benchmark, ChoiceBenchmark)
    golds = [it["answer"] for it in benchmark.items()]
    assert len(set(golds)) > 1  # both outcomes below are exercised
    for gold in golds:
        assert benchmark.grade(reply.format("C"), gold) == ("C", gold == "C")
    assert benchmark.grade("<|im_start|>answer\nI cannot tell.", "C") == (None, False)


# -- bad input: a ConfigError that names the setting and the fix -------------------------------
def without(rows: list[dict[str, Any]], column: str) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != column} for r in rows]


BAD_INPUT = {
    # case: (option, rows or None for no file, extra overrides, fragments the message must hold)
    "no_question_column": (
        "aime24",
        without(AIME24_ROWS, "problem"),
        [],
        ["benchmark.aime24.question_field='problem'", "answer, id, solution, url", "set "],
    ),
    "gpqa_without_incorrect_2": (
        "gpqa_diamond",
        without(GPQA_ROWS, "Incorrect Answer 2"),
        [],
        ["benchmark.gpqa_diamond", "'Incorrect Answer 2'", "rename"],
    ),
    "repeated_id": (
        "aime25",
        [AIME25_ROWS[0], AIME25_ROWS[1], AIME25_ROWS[0] | {"problem": "Another one?"}],
        [],
        ["benchmark.aime25.id_field", "rows 0 and 2", "'0'", "unique column"],
    ),
    "local_path_absent": ("math500", None, [], ["benchmark.math500.local_path=", "absent.jsonl"]),
    "no_path_no_local_path": (
        "gpqa_diamond",
        None,
        ["benchmark.gpqa_diamond.path=null", "benchmark.gpqa_diamond.local_path=null"],
        ["benchmark.gpqa_diamond", "set path", "local_path"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_is_a_config_error_naming_the_setting(tmp_path: Path, case: str):
    option, rows, overrides, fragments = BAD_INPUT[case]
    file = tmp_path / "absent.jsonl" if rows is None else write_jsonl(tmp_path / "b.jsonl", rows)
    with pytest.raises(ConfigError) as error:
        items_of(option, [f"benchmark.{option}.local_path={file}", *overrides])
    for fragment in fragments:
        assert fragment in str(error.value), (fragment, str(error.value))


def test_a_row_missing_the_question_names_the_row(tmp_path: Path):
    rows = [AIME24_ROWS[0], without(AIME24_ROWS[1:2], "problem")[0]]
    file = write_jsonl(tmp_path / "aime24.jsonl", rows)
    with pytest.raises(ConfigError, match=r"benchmark\.aime24\.question_field.*row 1"):
        items_of("aime24", [f"benchmark.aime24.local_path={file}"])


def test_a_null_answer_is_refused(tmp_path: Path):
    file = write_parquet(tmp_path / "aime24.parquet", [AIME24_ROWS[0] | {"answer": None}])
    with pytest.raises(ConfigError, match=r"benchmark\.aime24\.answer_field"):
        items_of("aime24", [f"benchmark.aime24.local_path={file}"])


def test_a_hub_path_that_cannot_load_names_the_setting(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"benchmark\.aime24\.path"):
        items_of("aime24", [f"benchmark.aime24.path={tmp_path / 'absent'}"])


def test_a_bad_file_in_a_list_fails_before_any_benchmark_is_evaluated(
    trained_model: str, tmp_path: Path
):
    from s1exp.evaluate.run import evaluate

    file = write_jsonl(tmp_path / "aime24.jsonl", without(AIME24_ROWS, "answer"))
    cfg = compose_config(
        ["benchmark=[toy,aime24]", "benchmark.toy.size=2", f"benchmark.aime24.local_path={file}"]
    )
    outs = {name: tmp_path / name for name in ("toy", "aime24")}
    for out in outs.values():
        out.mkdir()
    with pytest.raises(ConfigError, match=r"benchmark\.aime24\.answer_field"):
        evaluate(cfg, trained_model, outs, {name: tmp_path / f"j-{name}" for name in outs})
    assert not (outs["toy"] / "samples.jsonl").exists()


# -- through the CLI --------------------------------------------------------------------------
def eval_artifacts(env: dict[str, str]) -> set[str]:
    """The eval store's entries, lock files aside (taking a lock writes one)."""
    folder = Path(env["S1EXP_STORE"]) / "eval"
    return {p.name for p in folder.iterdir() if not p.name.endswith((".lock", ".owner"))}


def test_cli_bad_benchmark_file_is_one_line_and_writes_nothing(toy_run, s1_env, tmp_path: Path):
    file = write_jsonl(tmp_path / "aime24.jsonl", without(AIME24_ROWS, "answer"))
    before = eval_artifacts(s1_env)
    args = [*FAST, "benchmark=[toy,aime24]", f"benchmark.aime24.local_path={file}"]
    proc = run_s1exp([*args, "hydra.run.dir=run"], tmp_path, s1_env)
    errors = [x for x in proc.stderr.splitlines() if x.startswith("s1exp: error:")]
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert len(errors) == 1 and "benchmark.aime24.answer_field" in errors[0], errors
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run" / "results.json").exists()
    assert eval_artifacts(s1_env) == before


# AIME24 schema, toy-like arithmetic the toy model has a chance at.
TOY_AIME = [
    {"id": 90 + i, "problem": q, "solution": a, "answer": a, "url": "made-up"}
    for i, (q, a) in enumerate(
        [("What is 21 + 95?", "116"), ("What is 132 mod 4?", "0"), ("What is 463 + 355?", "818")]
    )
]


@pytest.fixture(scope="module")
def list_runs(toy_run: Path, s1_env: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`benchmark=[toy,aime24]`, then `benchmark=toy`, both on the session's trained model."""
    cwd = tmp_path_factory.mktemp("benchmark_list")
    file = write_jsonl(cwd / "aime24.jsonl", TOY_AIME)
    both = ["benchmark=[toy,aime24]", f"benchmark.aime24.local_path={file}"]
    runs = {"both": [*both, "benchmark.aime24.answer_max_tokens=16"], "toy": ["benchmark=toy"]}
    out = {}
    for name, overrides in runs.items():
        proc = run_s1exp([*FAST, *overrides, f"hydra.run.dir={name}"], cwd, s1_env)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        samples = [json.loads(line) for line in (cwd / name / "samples.jsonl").open()]
        out[name] = {"results": json.loads((cwd / name / "results.json").read_text())}
        out[name]["samples"] = samples
    out["toy_run"] = json.loads((toy_run / "results.json").read_text())
    return out


def test_a_benchmark_list_is_one_job_with_metrics_per_benchmark(list_runs: dict):
    results, samples = list_runs["both"]["results"], list_runs["both"]["samples"]
    metrics = results["metrics"]
    assert set(metrics) == {"toy", "aime24"}
    assert metrics["aime24"]["n"] == 3 and metrics["toy"]["n"] == 24
    assert all(0 <= m["accuracy"] <= 100 for m in metrics.values())
    by_benchmark = {b: [s for s in samples if s["benchmark"] == b] for b in ("toy", "aime24")}
    assert len(by_benchmark["toy"]) == 24 and len(samples) == 27
    aime = by_benchmark["aime24"]
    assert [(s["id"], s["gold"]) for s in aime] == [(str(r["id"]), r["answer"]) for r in TOY_AIME]
    assert all(s["answer_tokens"] <= 16 for s in aime)  # the benchmark's own answer limit
    assert metrics["aime24"]["accuracy"] == pytest.approx(100 * sum(s["correct"] for s in aime) / 3)
    for s in aime:  # graded with math-verify: a parsed answer is right iff it verifies
        if s["predicted"] is not None:
            assert s["correct"] == verify(parse(s["gold"]), parse(s["predicted"])), s


def test_adding_or_dropping_a_benchmark_reuses_the_others(list_runs: dict):
    both = list_runs["both"]["results"]["stages"]["evaluate"]
    alone = list_runs["toy"]["results"]["stages"]["evaluate"]
    first = list_runs["toy_run"]["stages"]["evaluate"]["benchmarks"]["toy"]
    assert both["benchmarks"]["toy"]["key"] != both["benchmarks"]["aime24"]["key"]
    # adding aime24 to the session's toy run: toy reused, aime24 evaluated
    assert both["benchmarks"]["toy"]["key"] == first["key"] and both["benchmarks"]["toy"]["reused"]
    assert not both["benchmarks"]["aime24"]["reused"] and not both["reused"]
    # dropping it again: nothing evaluated, the same toy artifact
    assert alone["reused"] and set(alone["benchmarks"]) == {"toy"}
    assert alone["benchmarks"]["toy"]["key"] == first["key"]
    assert list_runs["toy"]["results"]["metrics"]["toy"] == list_runs["toy_run"]["metrics"]["toy"]
    assert {s["benchmark"] for s in list_runs["toy"]["samples"]} == {"toy"}
