"""Pool loaders on small files in the published schemas (S1_DATA sections 1 and 6).

The hub is out of reach, so each test writes a few made-up rows in one real schema (s1K and the
59K ablation pool, s1K-1.1, the featurized 59K pool, s1exp's own) to JSONL or Parquet and reads
them back through `local_pool` or `to_pool_rows`, checking the schema traps and that bad input
fails with a ConfigError that names the row and the column or setting to fix.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import run_s1exp

from s1exp.data.schema import FEATURE_FIELDS, POOL_FIELDS
from s1exp.data.sources import column_map, detect_format, hub_pool, local_pool, to_pool_rows
from s1exp.data.toy import make_pool
from s1exp.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent

# simplescaling/s1K and data_ablation_full59K: 8 columns, traces wrapped in a list, metadata a
# Python repr (single quotes, None), cot always null.
S1K_ROWS: list[dict[str, Any]] = [
    {
        "question": "How many positive divisors does 360 have?",
        "solution": "24",
        "cot_type": "math",
        "source_type": "qq8933/AIME_1983_2024",
        "metadata": "{'year': 1983, 'id': 'x', 'part': None}",
        "cot": None,
        "thinking_trajectories": ["360 = 2^3 * 3^2 * 5, so (3+1)(2+1)(1+1) divisors."],
        "attempt": "The answer is 24.",
    },
    {
        "question": "Which gas makes up most of the air we breathe?",
        "solution": "Nitrogen",
        "cot_type": "science",
        "source_type": "Idavidrein/gpqa",
        "metadata": "{'Record ID': 'rec7', 'tags': ['air', 'gas'], 'level': 2.5}",
        "cot": None,
        "thinking_trajectories": ["Oxygen is about a fifth.", "Nitrogen is the rest, mostly."],
        "attempt": "Answer: Nitrogen",
    },
    {
        "question": "Fill the crossword clue: feline pet (3)",
        "solution": None,
        "cot_type": "crossword",
        "source_type": "0xharib/xword1",
        "metadata": "{'instruction': None}",
        "cot": None,
        "thinking_trajectories": ["Three letters: cat."],
        "attempt": "CAT",
    },
]

# simplescaling/s1K-1.1: 13 columns, every one a string, deepseek_* traces plain strings.
DEEPSEEK_THINKING = ["Hmm, 7 * 6.\nThat is 42.\nWait, check: 6 * 7 = 42.", "Area: 3 * 4 = 12."]
S1K11_ROWS: list[dict[str, Any]] = [
    {
        "solution": "42",
        "question": "What is 7 times 6?",
        "cot_type": "math",
        "source_type": "AI-MO/NuminaMath-CoT/aops_forum",
        "metadata": "{'problem_id': 11}",
        "gemini_thinking_trajectory": "Seven sixes are forty-two.",
        "gemini_attempt": "42",
        "deepseek_thinking_trajectory": DEEPSEEK_THINKING[0],
        "deepseek_attempt": "**Answer:** 42",
        "gemini_grade": "No",
        "gemini_grade_reason": "The attempt lacks working.",
        "deepseek_grade": "Yes",
        "deepseek_grade_reason": "Matches the correct answer.",
    },
    {
        "solution": "12",
        "question": "What is the area of a 3 by 4 rectangle?",
        "cot_type": "math",
        "source_type": "simplescaling/openaimath/Geometry",
        "metadata": "{'level': 1}",
        "gemini_thinking_trajectory": "Width times height.",
        "gemini_attempt": "12",
        "deepseek_thinking_trajectory": DEEPSEEK_THINKING[1],
        "deepseek_attempt": "The area is 13.",
        "gemini_grade": "Yes",
        "gemini_grade_reason": "Correct.",
        "deepseek_grade": "No",
        "deepseek_grade_reason": "13 is not 12.",
    },
]

# qfq/train_featurized (qfq/train columns and the notebook's features), with the 59K traces
# joined on: None is "undefined" (no reference solution, an API error), never False.
FEATURIZED_ROWS: list[dict[str, Any]] = [
    {
        "question": "Find the remainder of 2^10 divided by 7.",
        "solution": "2",
        "cot_type": "math",
        "source_type": "qq8933/AIME_1983_2024",
        "metadata": "{'year': 1990}",
        "cot": None,
        "thinking_trajectories": ["2^3 = 8 = 1 mod 7, so 2^10 = 2 mod 7."],
        "attempt": "2",
        "domain": "Number theory",
        "isgeminicorrect": True,
        "isqwen7bcorrect": False,
        "isqwen32bcorrect": True,
        "gemini_length": 812,
    },
    {
        "question": "Name a noble gas.",
        "solution": None,
        "cot_type": "science",
        "source_type": "camel-ai/chemistry",
        "metadata": "{}",
        "cot": None,
        "thinking_trajectories": ["Helium, neon, argon."],
        "attempt": "Argon",
        "domain": None,
        "isgeminicorrect": None,
        "isqwen7bcorrect": None,
        "isqwen32bcorrect": None,
        "gemini_length": None,
    },
    {
        "question": "How many ways can 3 books be ordered on a shelf?",
        "solution": "6",
        "cot_type": "math",
        "source_type": "simplescaling/openaimath/Counting & Probability",
        "metadata": "{'level': 2}",
        "cot": None,
        "thinking_trajectories": ["3! = 6."],
        "attempt": "6",
        "domain": "Combinatorics",
        "isgeminicorrect": False,
        "isqwen7bcorrect": True,
        "isqwen32bcorrect": False,
        "gemini_length": 15,
    },
]


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _parquet(path: Path, rows: list[dict[str, Any]]) -> str:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return str(path)


WRITERS = {"jsonl": _jsonl, "parquet": _parquet}


def _write(tmp_path: Path, rows: list[dict[str, Any]], kind: str = "jsonl") -> str:
    return WRITERS[kind](tmp_path / f"pool.{kind}", rows)


def _error(path: str, **kwargs: Any) -> str:
    """The message of the ConfigError that loading `path` must raise."""
    with pytest.raises(ConfigError) as info:
        local_pool(path, **kwargs)
    return str(info.value)


# --- s1K / data_ablation_full59K ---------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(WRITERS))
@pytest.mark.parametrize("format", ["s1k", "auto"])
def test_s1k_schema_unwraps_traces_parses_metadata_and_leaves_features(
    tmp_path: Path, kind: str, format: str
):
    rows = local_pool(_write(tmp_path, S1K_ROWS, kind), format=format)
    assert [r["question"] for r in rows] == [r["question"] for r in S1K_ROWS]
    thinking = [r["thinking"] for r in rows]
    assert thinking[0] == S1K_ROWS[0]["thinking_trajectories"][0]  # a str, not "['...']"
    assert thinking[1] == "Oxygen is about a fifth.\nNitrogen is the rest, mostly."
    assert [r["attempt"] for r in rows] == [r["attempt"] for r in S1K_ROWS]
    assert [r["source"] for r in rows] == [r["source_type"] for r in S1K_ROWS]
    assert [r["cot_type"] for r in rows] == ["math", "science", "crossword"]
    assert [r["solution"] for r in rows] == ["24", "Nitrogen", None]
    assert rows[0]["metadata"] == {"year": 1983, "id": "x", "part": None}
    assert rows[1]["metadata"] == {"Record ID": "rec7", "tags": ["air", "gas"], "level": 2.5}
    assert rows[2]["metadata"] == {"instruction": None}
    ids = [r["id"] for r in rows]
    assert all(isinstance(i, str) for i in ids) and len(set(ids)) == len(rows)
    for row in rows:
        assert set(row) <= set(POOL_FIELDS)  # cot and the raw column names are gone
        assert not set(FEATURE_FIELDS) & set(row), "features must be absent, not None"


def test_to_pool_rows_maps_records_with_generated_ids():
    columns = sorted(S1K_ROWS[0])
    rows = to_pool_rows(S1K_ROWS, column_map("s1k", None), columns, "the s1K file", "s1K")
    assert [r["id"] for r in rows] == ["s1K-0", "s1K-1", "s1K-2"]
    assert rows[1]["thinking"].count("\n") == 1
    assert rows[0]["metadata"]["year"] == 1983
    assert all("teacher_correct" not in r for r in rows)


def test_unparseable_metadata_is_kept_as_text(tmp_path: Path):
    records = [dict(S1K_ROWS[0], metadata="{'when': datetime.date(2020, 1, 1)}")]
    (row,) = local_pool(_write(tmp_path, records), format="s1k")
    assert row["metadata"] == "{'when': datetime.date(2020, 1, 1)}"


# --- s1K-1.1 -----------------------------------------------------------------------------------


def test_s1k_11_keeps_string_traces_whole_and_maps_grades(tmp_path: Path):
    rows = local_pool(_write(tmp_path, S1K11_ROWS), format="s1k_1.1")
    assert [r["thinking"] for r in rows] == DEEPSEEK_THINKING  # not split per character
    assert rows[0]["thinking"].count("\n") == 2
    assert [r["attempt"] for r in rows] == ["**Answer:** 42", "The area is 13."]
    assert [r["teacher_correct"] for r in rows] == [True, False]  # deepseek_grade Yes / No
    assert [r["metadata"] for r in rows] == [{"problem_id": 11}, {"level": 1}]
    assert [r["source"] for r in rows] == [r["source_type"] for r in S1K11_ROWS]
    assert all(set(r) <= set(POOL_FIELDS) for r in rows)
    assert not {"domain", "thinking_tokens", "base_small_correct"} & set(rows[0])


def test_s1k_11_remaps_to_the_gemini_columns(tmp_path: Path):
    gemini = {
        "thinking": "gemini_thinking_trajectory",
        "attempt": "gemini_attempt",
        "teacher_correct": "gemini_grade",
    }
    rows = local_pool(_write(tmp_path, S1K11_ROWS), format="auto", columns=gemini)
    assert [r["thinking"] for r in rows] == ["Seven sixes are forty-two.", "Width times height."]
    assert [r["attempt"] for r in rows] == ["42", "12"]
    assert [r["teacher_correct"] for r in rows] == [False, True]  # gemini_grade No / Yes


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_s1k_11_with_list_typed_deepseek_trace_loads(tmp_path: Path, kind: str):
    records = [
        dict(r, deepseek_thinking_trajectory=[r["deepseek_thinking_trajectory"]])
        for r in S1K11_ROWS
    ]
    rows = local_pool(_write(tmp_path, records, kind), format="s1k_1.1")
    assert [r["thinking"] for r in rows] == DEEPSEEK_THINKING


def test_s1k_11_with_every_deepseek_column_list_typed_loads(tmp_path: Path):
    deepseek = [c for c in S1K11_ROWS[0] if c.startswith("deepseek_")]
    records = [{k: [v] if k in deepseek else v for k, v in r.items()} for r in S1K11_ROWS]
    rows = local_pool(_write(tmp_path, records), format="s1k_1.1")
    assert [r["thinking"] for r in rows] == DEEPSEEK_THINKING
    assert [r["attempt"] for r in rows] == ["**Answer:** 42", "The area is 13."]
    assert [r["teacher_correct"] for r in rows] == [True, False]


# --- featurized 59K ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_featurized59k_keeps_none_apart_from_false(tmp_path: Path, kind: str):
    rows = local_pool(_write(tmp_path, FEATURIZED_ROWS, kind), format="featurized59k")
    assert [r["teacher_correct"] for r in rows] == [True, None, False]
    assert [r["base_small_correct"] for r in rows] == [False, None, True]
    assert [r["base_large_correct"] for r in rows] == [True, None, False]
    assert [r["thinking_tokens"] for r in rows] == [812, None, 15]
    assert [r["domain"] for r in rows] == ["Number theory", None, "Combinatorics"]
    for row in rows:
        for field in ("teacher_correct", "base_small_correct", "base_large_correct"):
            assert row[field] is None or type(row[field]) is bool
        assert row["thinking_tokens"] is None or type(row["thinking_tokens"]) is int
    assert rows[0]["thinking"] == FEATURIZED_ROWS[0]["thinking_trajectories"][0]
    assert rows[1]["solution"] is None


# --- s1exp's own schema ------------------------------------------------------------------------


@pytest.mark.parametrize("format", ["pool", "auto"])
def test_own_schema_round_trips_exactly(tmp_path: Path, format: str):
    pool = make_pool(20, 0)
    assert any(r["thinking"] is None for r in pool)  # None values must survive too
    rows = local_pool(_write(tmp_path, pool), format=format)
    assert rows == pool


# --- format detection --------------------------------------------------------------------------


SCHEMAS = {
    "featurized59k": FEATURIZED_ROWS,
    "s1k_1.1": S1K11_ROWS,
    "s1k": S1K_ROWS,
}


@pytest.mark.parametrize(
    "name",
    [
        "featurized59k",
        "s1k_1.1",
        "s1k",
        "pool",
    ],
)
def test_auto_detects_each_schema_from_its_columns(name: str):
    rows = SCHEMAS[name] if name in SCHEMAS else make_pool(3, 0)
    assert detect_format({c for r in rows for c in r}) == name


@pytest.mark.parametrize("name", ["featurized59k", "s1k_1.1", "s1k"])
def test_auto_loads_like_the_named_format(tmp_path: Path, name: str):
    path = _write(tmp_path, SCHEMAS[name])
    assert local_pool(path, format="auto") == local_pool(path, format=name)


# --- bad input ---------------------------------------------------------------------------------


def _without(rows: list[dict[str, Any]], column: str, only: int | None = None) -> list[dict]:
    return [
        {k: v for k, v in r.items() if k != column or (only is not None and i != only)}
        for i, r in enumerate(rows)
    ]


def test_missing_column_names_it_and_the_columns_setting(tmp_path: Path):
    message = _error(_write(tmp_path, _without(S1K_ROWS, "attempt")), format="s1k")
    assert "'attempt'" in message and "data.pool.columns.attempt" in message


def test_missing_column_under_auto_names_it(tmp_path: Path):
    message = _error(_write(tmp_path, _without(S1K_ROWS, "attempt")), format="auto")
    assert "data.pool.columns" in message
    assert "'attempt'" in message and "data.pool.columns.attempt" in message


def test_row_missing_a_column_others_have_names_row_and_column(tmp_path: Path):
    message = _error(_write(tmp_path, _without(S1K_ROWS, "metadata", only=1)), format="s1k")
    assert "row 1" in message and "'metadata'" in message


def test_null_question_names_row_and_field(tmp_path: Path):
    records = [*S1K11_ROWS, dict(S1K11_ROWS[0], question=None)]
    message = _error(_write(tmp_path, records), format="s1k_1.1")
    assert "row 2" in message and "'question'" in message


@pytest.mark.parametrize(
    ("rows", "format", "column", "value"),
    [
        (S1K_ROWS, "s1k", "thinking_trajectories", 5),
        (S1K_ROWS, "s1k", "thinking_trajectories", ["fine", 3]),
        (S1K11_ROWS, "s1k_1.1", "deepseek_grade", "Maybe"),
        (FEATURIZED_ROWS, "featurized59k", "gemini_length", "long"),
        (FEATURIZED_ROWS, "featurized59k", "isqwen7bcorrect", 1),
    ],
)
def test_mistyped_value_names_row_and_column(
    tmp_path: Path, rows: list[dict], format: str, column: str, value: Any
):
    records = [dict(r) for r in rows]
    records[1][column] = value
    message = _error(_write(tmp_path, records), format=format)
    assert "row 1" in message and f"'{column}'" in message


def test_nan_length_names_row_and_column(tmp_path: Path):
    records = [dict(r) for r in FEATURIZED_ROWS]
    records[1]["gemini_length"] = float("nan")
    message = _error(_write(tmp_path, records), format="featurized59k")
    assert "row 1" in message and "'gemini_length'" in message


def test_duplicate_ids_name_the_id_setting(tmp_path: Path):
    records = [dict(r) for r in S1K_ROWS]
    records[2]["cot_type"] = "math"  # as the first row: not a unique column
    message = _error(_write(tmp_path, records), format="s1k", columns={"id": "cot_type"})
    assert "data.pool.columns.id" in message
    pool = make_pool(3, 0)
    pool[2]["id"] = pool[0]["id"]
    assert "data.pool.columns.id" in _error(_write(tmp_path, pool), format="pool")


def test_duplicate_ids_name_the_rows(tmp_path: Path):
    pool = make_pool(3, 0)
    pool[2]["id"] = pool[0]["id"]
    message = _error(_write(tmp_path, pool), format="pool")
    assert "row 2" in message and repr(pool[0]["id"]) in message


def test_missing_path_names_the_setting(tmp_path: Path):
    message = _error(str(tmp_path / "nope.jsonl"))
    assert "data.pool.path" in message and "nope.jsonl" in message


def test_broken_json_line_names_the_line(tmp_path: Path):
    path = tmp_path / "pool.jsonl"
    path.write_text(json.dumps(S1K_ROWS[0]) + "\n" + '{"question": "cut off\n')
    message = _error(str(path))
    assert "data.pool.path" in message and "line 2" in message


@pytest.mark.parametrize("line", ["[1, 2]", "5", "null"])
def test_non_object_json_line_names_the_line(tmp_path: Path, line: str):
    path = tmp_path / "pool.jsonl"
    path.write_text(json.dumps(S1K_ROWS[0]) + "\n" + line + "\n")
    message = _error(str(path))
    assert "data.pool.path" in message and "line 2" in message


def test_unknown_format_names_the_setting(tmp_path: Path):
    message = _error(_write(tmp_path, S1K_ROWS), format="s1k_2")
    assert "data.pool.format" in message and "'s1k_2'" in message


def test_unknown_field_in_columns_names_the_setting(tmp_path: Path):
    message = _error(_write(tmp_path, S1K_ROWS), columns={"thoughts": "thinking_trajectories"})
    assert "data.pool.columns.thoughts" in message


def test_override_naming_a_missing_column_fails(tmp_path: Path):
    message = _error(_write(tmp_path, S1K11_ROWS), columns={"teacher_correct": "gemini_grad"})
    assert "'gemini_grad'" in message and "data.pool.columns.teacher_correct" in message


# --- through the CLI ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_missing_column(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One `python -m s1exp data=local` run on an s1K file without its attempt column."""
    tmp = tmp_path_factory.mktemp("cli_missing_column")
    path = _jsonl(tmp / "pool.jsonl", _without(S1K_ROWS, "attempt"))
    env = os.environ | {"WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    env["TOKENIZERS_PARALLELISM"] = "false"
    args = [
        "data=local",
        f"data.pool.path={path}",
        "logger=none",
        f"paths.store={tmp / 'store'}",
        f"paths.cache={tmp / 'cache'}",
        f"hydra.run.dir={tmp / 'run'}",
    ]
    proc = run_s1exp(args, tmp, env, timeout=300)
    return {"proc": proc, "store": tmp / "store"}


def test_cli_missing_column_fails_before_publishing(cli_missing_column: dict[str, Any]):
    proc, store = cli_missing_column["proc"], cli_missing_column["store"]
    assert proc.returncode != 0
    assert "data.pool.columns" in proc.stderr
    assert (store / "features").is_dir(), "the run must have reached the features stage"
    assert not list(store.rglob("_COMPLETE.json"))


def test_cli_missing_column_is_one_line_and_exit_2(cli_missing_column: dict[str, Any]):
    proc = cli_missing_column["proc"]
    lines = proc.stderr.strip().splitlines()
    errors = [x for x in lines if x.startswith("s1exp: error:")]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(errors) == 1 and "data.pool.columns" in errors[0]
    assert "Traceback" not in proc.stderr


def test_hub_pool_reads_a_dataset_folder_and_joins_traces_by_question(tmp_path: Path):
    """data=featurized59k's path through `datasets.load_dataset` (a local dataset folder stands
    in for the hub): features come from the featurized pool, traces from the 59K pool by exact
    question; a question without a trace keeps None (quality 1 drops it), not a wrong trace."""
    featurized = tmp_path / "featurized"
    traces = tmp_path / "traces"
    featurized.mkdir()
    traces.mkdir()
    rows = [
        {
            "question": f"Question {i}?",
            "solution": f"S{i}",
            "cot_type": "math",
            "source_type": "qfq/openaimath/Algebra",
            "metadata": "{'level': 3}",
            "cot": None,
            "domain": "Number theory",
            "isgeminicorrect": True,
            "isqwen7bcorrect": None if i == 1 else False,
            "isqwen32bcorrect": i == 2,
            "gemini_length": 100 + i,
        }
        for i in range(3)
    ]
    with_traces = [
        {"question": f"Question {i}?", "thinking_trajectories": [f"T{i}"], "attempt": f"A{i}"}
        for i in (2, 0)
    ]
    (featurized / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (traces / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in with_traces))
    pool = hub_pool(
        str(featurized), "train", "featurized59k", traces={"path": str(traces), "split": "train"}
    )
    assert [(r["thinking"], r["attempt"]) for r in pool] == [
        ("T0", "A0"),
        (None, None),
        ("T2", "A2"),
    ]
    assert [r["base_small_correct"] for r in pool] == [False, None, False]
    assert [r["base_large_correct"] for r in pool] == [False, False, True]
    assert [r["thinking_tokens"] for r in pool] == [100, 101, 102]
    assert pool[0]["metadata"] == {"level": 3} and pool[0]["id"] == "featurized-0"
    with pytest.raises(ConfigError, match="data.pool.path"):
        hub_pool(str(tmp_path / "absent"), "train", "s1k")


def test_data_local_without_a_path_is_refused_before_anything_runs():
    from hydra import compose, initialize_config_dir

    from s1exp import preflight

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["data=local"])
    with pytest.raises(ConfigError, match=r"^data\.pool\.path must be set.*path=<value>"):
        preflight.check(cfg)
