"""data=s1k / s1k_1.1 through `hub_pool` and `datasets.load_dataset`, offline: a local folder laid
out as the hub repositories are (data/<split>-00000-of-00001.parquet, the published columns and
types) stands in for simplescaling/s1K and simplescaling/s1K-1.1 (S1_DATA sections 1 and 6).
No mocks: the real config is composed, `data.pool.path` pointed at the folder, and instantiated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

from s1exp.data.sources import hub_pool
from s1exp.errors import ConfigError

CONF = Path(__file__).resolve().parent.parent / "conf"


@pytest.fixture(autouse=True)
def own_datasets_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the Arrow cache load_dataset writes inside the test's folder."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))


def write_repo(folder: Path, splits: dict[str, list[dict[str, Any]]], schema: pa.Schema) -> str:
    """A dataset repository as the hub stores it: one Parquet file per split under data/."""
    (folder / "data").mkdir(parents=True)
    for split, rows in splits.items():
        table = pa.Table.from_pylist(rows, schema=schema)
        pq.write_table(table, folder / "data" / f"{split}-00000-of-00001.parquet")
    return str(folder)


def pool_from_config(data: str, path: str, *overrides: str) -> list[dict[str, Any]]:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[f"data={data}", f"data.pool.path={path}", *overrides])
    assert cfg.data.pool._target_ == "s1exp.data.sources.hub_pool"
    return instantiate(cfg.data.pool, _convert_="all")


# simplescaling/s1K: 8 columns, thinking_trajectories a list of strings, metadata a Python repr.
S1K_SCHEMA = pa.schema(
    [
        ("solution", pa.string()),
        ("question", pa.string()),
        ("cot_type", pa.string()),
        ("source_type", pa.string()),
        ("metadata", pa.string()),
        ("cot", pa.null()),
        ("thinking_trajectories", pa.list_(pa.string())),
        ("attempt", pa.string()),
    ]
)


def s1k_row(i: int) -> dict[str, Any]:
    return {
        "solution": f"S{i}",
        "question": f"What is {i} + {i}?",
        "cot_type": "math",
        "source_type": "qfq/openaimath/Algebra",
        "metadata": f"{{'level': {i}, 'type': 'Algebra'}}",
        "cot": None,
        "thinking_trajectories": [f"First {i}.", f"Then {2 * i}."],
        "attempt": f"{2 * i}",
    }


@pytest.fixture
def s1k_repo(tmp_path: Path) -> str:
    splits = {"train": [s1k_row(i) for i in range(3)], "test": [s1k_row(9)]}
    return write_repo(tmp_path / "s1K", splits, S1K_SCHEMA)


def test_data_s1k_reads_the_hub_layout(s1k_repo: str) -> None:
    """data=s1k: the train split only, in order; list traces joined by newlines (as s1's
    tokenization does), metadata parsed, ids from the repository name; the fields s1K lacks are
    left for the featurize stage."""
    pool = pool_from_config("s1k", s1k_repo)
    assert [r["id"] for r in pool] == ["s1K-0", "s1K-1", "s1K-2"]
    assert pool[1] == {
        "id": "s1K-1",
        "question": "What is 1 + 1?",
        "solution": "S1",
        "thinking": "First 1.\nThen 2.",
        "attempt": "2",
        "source": "qfq/openaimath/Algebra",
        "cot_type": "math",
        "metadata": {"level": 1, "type": "Algebra"},
    }
    for field in ("domain", "teacher_correct", "thinking_tokens", "base_small_correct"):
        assert field not in pool[0]


def test_split_and_column_overrides_reach_the_loader(s1k_repo: str) -> None:
    """data.pool.split picks the split file; data.pool.columns remaps a field onto another
    column and unmaps one with null."""
    pool = pool_from_config(
        "s1k",
        s1k_repo,
        "data.pool.split=test",
        "+data.pool.columns.answer=attempt",
        "+data.pool.columns.cot_type=null",
    )
    assert [r["question"] for r in pool] == ["What is 9 + 9?"]
    assert pool[0]["answer"] == pool[0]["attempt"] == "18" and "cot_type" not in pool[0]


def test_missing_split_and_missing_column_name_the_setting(s1k_repo: str, tmp_path: Path) -> None:
    """A split the dataset lacks fails as a config error on data.pool.path; so does a folder
    without the s1K trace column, naming data.pool.columns.thinking."""
    with pytest.raises(ConfigError, match=r"data\.pool\.path=.*cannot load split 'validation'"):
        hub_pool(s1k_repo, "validation", "s1k")
    schema = pa.schema([f for f in S1K_SCHEMA if f.name != "thinking_trajectories"])
    rows = [{k: v for k, v in s1k_row(0).items() if k != "thinking_trajectories"}]
    bare = write_repo(tmp_path / "bare", {"train": rows}, schema)
    with pytest.raises(ConfigError, match=r"data\.pool\.columns\.thinking=<column>"):
        hub_pool(bare, "train", "s1k")


# simplescaling/s1K-1.1: 13 string columns; DeepSeek-R1 traces as plain strings, Claude's grades
# "Yes"/"No".
S11_COLUMNS = (
    "solution",
    "question",
    "cot_type",
    "source_type",
    "metadata",
    "gemini_thinking_trajectory",
    "gemini_attempt",
    "deepseek_thinking_trajectory",
    "deepseek_attempt",
    "gemini_grade",
    "gemini_grade_reason",
    "deepseek_grade",
    "deepseek_grade_reason",
)


def s11_row(i: int) -> dict[str, Any]:
    return {
        "solution": f"S{i}",
        "question": f"Q{i}?",
        "cot_type": "science",
        "source_type": "Idavidrein/gpqa",
        "metadata": "{'Subdomain': 'Physics'}",
        "gemini_thinking_trajectory": f"gemini thinks {i}",
        "gemini_attempt": f"G{i}",
        "deepseek_thinking_trajectory": f"Okay, so {i}.\nWait, {i}.",
        "deepseek_attempt": f"D{i}",
        "gemini_grade": "No" if i else "Yes",
        "gemini_grade_reason": "...",
        "deepseek_grade": "Yes" if i else "No",
        "deepseek_grade_reason": "...",
    }


def test_data_s1k_1_1_reads_string_traces_and_grades(tmp_path: Path) -> None:
    """data=s1k_1.1: the DeepSeek trace kept as one string (joining a str would put a newline
    between every character) and its Yes/No grade as a bool; pointing thinking/attempt/
    teacher_correct at the gemini_* columns gives the Gemini traces of the same questions."""
    schema = pa.schema([(c, pa.string()) for c in S11_COLUMNS])
    repo = write_repo(tmp_path / "s1K-1.1", {"train": [s11_row(0), s11_row(1)]}, schema)
    pool = pool_from_config("s1k_1.1", repo)
    assert [r["id"] for r in pool] == ["s1K-1.1-0", "s1K-1.1-1"]
    assert [r["thinking"] for r in pool] == ["Okay, so 0.\nWait, 0.", "Okay, so 1.\nWait, 1."]
    assert [r["attempt"] for r in pool] == ["D0", "D1"]
    assert [r["teacher_correct"] for r in pool] == [False, True]
    assert pool[0]["metadata"] == {"Subdomain": "Physics"}
    gemini = pool_from_config(
        "s1k_1.1",
        repo,
        "+data.pool.columns.thinking=gemini_thinking_trajectory",
        "+data.pool.columns.attempt=gemini_attempt",
        "+data.pool.columns.teacher_correct=gemini_grade",
    )
    assert [(r["thinking"], r["attempt"], r["teacher_correct"]) for r in gemini] == [
        ("gemini thinks 0", "G0", True),
        ("gemini thinks 1", "G1", False),
    ]


def test_s1k_1_1_commit_with_list_wrapped_deepseek_columns(tmp_path: Path) -> None:
    """One official s1K-1.1 commit typed the deepseek_* columns as sequence[str] (1 element):
    the same pool comes out."""
    wrapped = ("deepseek_thinking_trajectory", "deepseek_attempt", "deepseek_grade")
    schema = pa.schema(
        [(c, pa.list_(pa.string()) if c in wrapped else pa.string()) for c in S11_COLUMNS]
    )
    rows = [{k: [v] if k in wrapped else v for k, v in s11_row(i).items()} for i in range(2)]
    repo = write_repo(tmp_path / "s1K-1.1", {"train": rows}, schema)
    pool = hub_pool(repo, "train", "s1k_1.1")
    assert [(r["thinking"], r["attempt"], r["teacher_correct"]) for r in pool] == [
        ("Okay, so 0.\nWait, 0.", "D0", False),
        ("Okay, so 1.\nWait, 1.", "D1", True),
    ]


def test_unreachable_traces_dataset_is_a_config_error(tmp_path: Path) -> None:
    """data=featurized59k joins traces from a second dataset (data.pool.traces); when that one
    cannot be loaded the run must stop with the one-line config error, not a traceback."""
    schema = pa.schema(
        [*(f for f in S1K_SCHEMA if f.name not in ("thinking_trajectories", "attempt"))]
        + [("domain", pa.string()), ("isgeminicorrect", pa.bool_()), ("gemini_length", pa.int64())]
    )
    rows = [
        {k: v for k, v in s1k_row(0).items() if k not in ("thinking_trajectories", "attempt")}
        | {"domain": "Algebra", "isgeminicorrect": True, "gemini_length": 100}
    ]
    featurized = write_repo(tmp_path / "train_featurized", {"train": rows}, schema)
    absent = str(tmp_path / "no_traces")
    with pytest.raises(ConfigError, match=r"data\.pool\.traces\.path=.*no_traces"):
        hub_pool(featurized, "train", "featurized59k", traces={"path": absent, "split": "train"})
