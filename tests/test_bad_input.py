"""Bad input through the real CLI: one line on stderr, exit 2, nothing published, no traceback.

Each row is a setting a user gets wrong (an unknown option, a value out of range, a broken local
pool, a model that cannot be loaded, GPU-only settings on CPU, a selection larger than the pool).
`python -m s1exp` must end with exactly one `s1exp: error:` line naming the setting and the fix,
exit code 2, no Python traceback, no complete artifact in the store and no results.json. Every
row fails before a model is built (Hydra composition, preflight, or loading the pool); one fails
after featurization, which publishes its (valid, reusable) features and nothing after them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from conftest import run_s1exp

from s1exp.store import COMPLETE_MARKER

ERROR = "s1exp: error:"
CUDA = torch.cuda.is_available()

GOOD = {  # one valid row of the s1K schema
    "question": "What is 2 + 3?",
    "solution": "5",
    "thinking_trajectories": ["2 plus 3 is 5."],
    "attempt": "5",
    "source_type": "toy/local",
    "cot_type": "math",
    "metadata": "{}",
}
NOT_JSON = json.dumps(GOOD) + "\n" + '{"question": "cut off\n'
NO_QUESTION = "\n".join(
    json.dumps(r) for r in [GOOD, {k: v for k, v in GOOD.items() if k != "question"}]
)


@dataclass(frozen=True)
class Row:
    """One bad input: the overrides, the setting its error line must name, and what else."""

    args: tuple[str, ...]
    setting: str
    also: tuple[str, ...] = ()  # more text the error line must hold ({pool}: the pool file)
    env: dict[str, str] = field(default_factory=dict)  # {tmp}: the test's folder
    pool: str | None = None  # JSONL written to {tmp}/pool.jsonl for data=local
    published: tuple[str, ...] = ()  # artifact kinds the run may publish before it fails
    cpu_only: bool = False  # GPU-only settings are fine where there is CUDA


def local(pool: str, setting: str, also: tuple[str, ...]) -> Row:
    return Row(("data=local", "data.pool.path={pool}"), setting, ("{pool}", *also), pool=pool)


HUB_MODEL = ("model=qwen2.5-0.5b-instruct",)
ROWS = {
    # a. unknown options: Hydra's composition error, as one line listing the valid ones
    "unknown_ablation": Row(("+ablation=nope",), "ablation=nope", ("wait_vs_hmm",)),
    "unknown_budget": Row(("budget=nope",), "budget=nope", ("cap4000", "toy64")),
    "unknown_model": Row(("model=nope",), "model=nope", ("tiny", "s1-32b")),
    "unknown_option_in_sweep": Row(("-m", "budget=toy16,nope"), "budget=nope", ("toy64",)),
    # b. values out of range, refused by preflight (the method's and recipe's own checks)
    "zero_thinking_cap": Row(("budget.cap=0",), "budget.cap=0"),
    "negative_min_thinking": Row(("budget.min_tokens=-1",), "budget.min_tokens=-1"),
    "min_above_cap": Row(("budget=toy16", "budget.min_tokens=32"), "budget.min_tokens=32"),
    "negative_ignores": Row(
        ("extrapolation=wait", "extrapolation.ignore=-1"), "extrapolation.ignore=-1"
    ),
    "zero_selection": Row(("selection.size=0",), "selection.size=0"),
    "zero_lr": Row(("train.lr=0",), "train.lr=0"),
    "lr_not_a_number": Row(("train.lr=fast",), "train.lr='fast'"),
    "zero_block_size": Row(("train.block_size=0",), "train.block_size=0"),
    "block_above_max_length": Row(
        ("train.block_size=4096",), "train.block_size=4096", ("model.max_length=512",)
    ),
    "zero_global_batch": Row(("train.global_batch_size=0",), "train.global_batch_size=0"),
    "zero_samples": Row(("method=majority_voting", "method.n=0"), "method.n=0"),
    # c. a malformed local pool: the file, the line and the field
    "local_row_not_json": local(NOT_JSON, "data.pool.path", ("line 2", "not JSON")),
    "local_row_missing_field": local(
        NO_QUESTION, "data.pool.columns.question", ("row 1 (line 2)", "'question'")
    ),
    # d. a model that cannot be loaded, refused before the data stages
    "missing_model_folder": Row(
        (*HUB_MODEL, "model.base.repo_id=/nonexistent/qwen"), "model.base.repo_id"
    ),
    "hub_model_offline": Row(
        HUB_MODEL,
        "model.base.repo_id",
        ("HF_HUB_OFFLINE", "hf download Qwen/Qwen2.5-0.5B-Instruct"),
        env={"HF_HUB_OFFLINE": "1", "HF_HOME": "{tmp}/hf"},  # an empty Hugging Face cache
    ),
    # e. GPU-only settings on a machine without CUDA
    "gpu_training_on_cpu": Row(("train.accelerator=gpu",), "train.accelerator=gpu", cpu_only=True),
    "zero3_on_cpu": Row(("strategy=deepspeed_zero3",), "strategy=ZeRO3Strategy", cpu_only=True),
    # f. a selection larger than the pool: before any filter (preflight), after the filters
    "selection_above_pool": Row(("selection.size=7000",), "selection.size=7000", ("6000",)),
    "selection_above_filtered_pool": Row(
        ("data.pool.size=300", "selection.size=295"),
        "selection.size=295",
        ("rows are available", "at most"),
        published=("features",),  # valid for any selection: kept; selection and model are not
    ),
}


def run_row(row: Row, tmp: Path, base_env: dict[str, str], extra: dict[str, str] | None = None):
    """Run the CLI on one row with its own store; returns the process and the store."""
    pool = tmp / "pool.jsonl"
    if row.pool is not None:
        pool.write_text(row.pool + "\n")
    store = tmp / "store"
    env = base_env | {"S1EXP_STORE": str(store)}
    env |= {k: v.format(tmp=tmp) for k, v in row.env.items()} | (extra or {})
    args = [a.format(pool=pool) for a in row.args]
    proc = run_s1exp([*args, "logger=none", f"hydra.run.dir={tmp / 'run'}"], tmp, env, 300)
    return proc, store


@pytest.mark.parametrize("name", list(ROWS))
def test_bad_input_is_one_line_exit_2_and_publishes_nothing(
    name: str, tmp_path: Path, s1_env: dict[str, str]
):
    row = ROWS[name]
    if row.cpu_only and CUDA:
        pytest.skip("GPU-only settings are valid on a machine with CUDA")
    proc, store = run_row(row, tmp_path, s1_env)
    errors = [line for line in proc.stderr.splitlines() if line.startswith(ERROR)]
    print(f"| {name} | {' '.join(row.args)} | {errors} | {proc.returncode} |")  # the report
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert len(errors) == 1, proc.stderr[-3000:]
    for text in (row.setting, *row.also):
        assert text.format(pool=tmp_path / "pool.jsonl") in errors[0], errors[0]
    assert "Traceback" not in proc.stderr + proc.stdout
    complete = sorted(p.parent.relative_to(store) for p in store.rglob(COMPLETE_MARKER))
    assert {p.parts[0] for p in complete} <= set(row.published), complete
    assert not list(tmp_path.rglob("results.json"))


@pytest.mark.parametrize(
    ("name", "code"), [("unknown_model", 1), ("zero_thinking_cap", 2)], ids=["hydra", "s1exp"]
)
def test_hydra_full_error_shows_the_traceback(
    name: str, code: int, tmp_path: Path, s1_env: dict[str, str]
):
    """HYDRA_FULL_ERROR=1 keeps the traceback: Hydra's own report for an unknown option (exit 1,
    as Hydra exits), and for s1exp's ConfigError the traceback before its line (still exit 2)."""
    proc, _ = run_row(ROWS[name], tmp_path, s1_env, {"HYDRA_FULL_ERROR": "1"})
    assert proc.returncode == code, proc.stderr[-3000:]
    assert "Traceback" in proc.stderr, proc.stderr[-3000:]
    assert ROWS[name].setting.split("=")[0] in proc.stderr
