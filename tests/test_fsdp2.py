"""The s1 recipe's FSDP for real on CPU: FSDP2 over 2 gloo processes against one process.

Each fit runs tests/sft_worker.py as its own program (Lightning re-runs it for rank 1) on a 2-layer
tiny Qwen2 with tied embeddings, 16 examples of equal length (so any split of a batch over ranks
gives the same gradient), global batch 16.

Tolerances, measured 2026-11-26 on this CPU: fp32 FSDP2 vs one process, 3 steps at lr 1e-3 with
clipping at 0.1: weights differ by at most 5e-6 where they moved 2.5e-3 (0.2%; asserted: 2% of the
largest move) and the trained models' fp32 losses by 1.7e-7 relative (asserted 1e-5). bf16-mixed
FSDP2 (bf16 gathers, exported in bf16 as the s1 recipe exports) vs one process (bf16 autocast):
losses agree to 8.6e-5 relative; asserted 1e-2.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file
from sft_worker import equal_length_examples
from transformers import AutoModelForCausalLM

from s1exp.data import toy
from s1exp.train.datamodule import pad_batch

ROOT = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "sft_worker.py"
S1 = OmegaConf.load(ROOT / "conf" / "train" / "s1.yaml")


@pytest.fixture(scope="module")
def base(two_layer_base: Path) -> Path:
    return two_layer_base


@pytest.fixture(scope="module")
def fit(base: Path):
    """fit(name, *worker args) -> output folder; each distinct fit runs once per module."""
    done: dict[str, Path] = {}

    def run(name: str, *args: str) -> Path:
        if name not in done:
            out = base.parent / name
            proc = subprocess.run(
                [sys.executable, str(WORKER), str(base), str(out), *args],
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
            done[name] = out
        return done[name]

    return run


def reports(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(out.glob("rank*.json"))]


def eval_loss(folder: Path, base: Path) -> float:
    vocab = json.loads((base / "config.json").read_text())["vocab_size"]
    batch = pad_batch(equal_length_examples(16, 64, 16, vocab, seed=0), pad_id=0)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.inference_mode():
        return model(**batch).loss.item()


def max_diff(a: Path, b: Path) -> float:
    x, y = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert x.keys() == y.keys()
    return max((x[k].float() - y[k].float()).abs().max().item() for k in x)


FSDP = ("--strategy", "fsdp", "--devices", "2")


def test_fp32_fsdp2_with_clipping_and_checkpointing_equals_one_process(fit, base):
    """Sharded gradients, global-norm clipping (0.1, below the gradient norm, so it acts every
    step), activation checkpointing and the consolidated export: the same weights as one process."""
    single = fit("single32", "--clip", "0.1")
    sharded = fit("fsdp32", *FSDP, "--clip", "0.1", "--checkpointing")
    assert json.loads((single / "metrics.json").read_text())["train/grad_norm"] > 0.1
    moved = max_diff(single, base)
    assert moved > 1e-3  # lr 1e-3 for 3 steps: the weights really moved
    assert max_diff(single, sharded) < 0.02 * moved
    assert eval_loss(sharded, base) == pytest.approx(eval_loss(single, base), rel=1e-5)


def test_bf16_mixed_fsdp2_matches_one_process(fit, base):
    single = fit("single_bf16", "--precision", "bf16-mixed", "--clip", "0.1")
    sharded = fit(
        "fsdp_bf16",
        *FSDP,
        "--precision",
        "bf16-mixed",
        "--clip",
        "0.1",
        "--export-dtype",
        "bfloat16",
    )
    assert all(r["param_dtypes"] == ["torch.float32"] for r in reports(sharded))  # fp32 masters
    exported = load_file(str(sharded / "model.safetensors"))
    assert {t.dtype for t in exported.values()} == {torch.bfloat16}
    assert json.loads((sharded / "config.json").read_text())["dtype"] == "bfloat16"
    before = eval_loss(base, base)
    after_single, after_sharded = eval_loss(single, base), eval_loss(sharded, base)
    assert after_single < before
    assert after_sharded == pytest.approx(after_single, rel=1e-2)


def test_s1_recipe_master_weights_move_as_fp32_adam_predicts(fit, base):
    """One AdamW step at the s1 recipe's lr 1e-5 with its precision settings: Adam's first update
    is lr * g / (|g| + eps), so every weight with a gradient moves by lr. In bf16 master weights
    (today's bf16-true) a weight of 0.02 cannot move by 1e-5 (bf16 spacing there is 1.2e-4)."""
    out = fit(
        "fsdp_s1_step",
        *FSDP,
        "--precision",
        S1.precision,
        "--dtype",
        S1.dtype,
        "--lr",
        str(S1.lr),
        "--epochs",
        "1",
    )
    before, after = (
        load_file(str(base / "model.safetensors")),
        load_file(str(out / "model.safetensors")),
    )
    moves = torch.cat(
        [(after[k].float() - before[k]).abs().flatten() for k in after if ".layers." in k]
    )
    ratio = moves / S1.lr
    assert ((ratio - 1).abs() < 0.01).float().mean() > 0.98


def test_meta_init_reads_weights_once_and_shards(fit, base):
    reps = reports(fit("fsdp32", *FSDP, "--clip", "0.1", "--checkpointing"))
    assert [r["rank"] for r in reps] == [0, 1]
    assert all(r["meta_before_shard"] and r["sharded"] for r in reps)
    assert [r["read_checkpoint"] for r in reps] == [1, 0]  # rank 0 reads, rank 1 receives
    full = sum(
        t.numel() * t.element_size() for t in load_file(str(base / "model.safetensors")).values()
    )
    for r in reps:  # each rank holds half of every parameter (plus padding of uneven rows)
        assert full / 2 <= r["local_param_bytes"] <= full / 2 * 1.02


def test_pipeline_fsdp2_export_gives_the_same_budget_forcing_tokens_on_both_engines(
    toy_run: Path, s1_env: dict, tmp_path: Path
):
    """`strategy=fsdp train.devices=2` through `python -m s1exp`: 2 gloo ranks train, rank 0
    exports the consolidated checkpoint and evaluates it in a fresh process; the checkpoint then
    loads in vLLM and transformers and budget forcing ("Wait" x2) gives identical greedy tokens."""
    pytest.importorskip("vllm")
    from conftest import FAST, run_s1exp
    from transformers import AutoTokenizer

    from s1exp.data.format import prompt_ids
    from s1exp.infer.budget_forcing import BudgetForcing
    from s1exp.infer.hf_engine import TransformersEngine
    from s1exp.infer.vllm_engine import VLLMEngine

    env = s1_env | {"S1EXP_STORE": str(tmp_path / "store")}  # fresh store: must train here
    args = [*FAST, "strategy=fsdp", "train.devices=2", "train.micro_batch_size=8"]
    proc = run_s1exp([*args, "benchmark.toy.size=8", "hydra.run.dir=fsdp"], tmp_path, env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "fsdp" / "results.json").read_text())
    assert not results["stages"]["train"]["reused"]
    evaluated = results["stages"]["evaluate"]["benchmarks"]["toy"]
    assert evaluated["pid"] != results["pid"]  # evaluated in its own process
    model = results["stages"]["train"]["path"]
    steps = json.loads((Path(model) / "train_metrics.json").read_text())["train/optimizer_steps"]
    assert steps == 38  # 300 examples, 2 ranks x micro-batch 8 = global 16, 2 epochs

    tok = AutoTokenizer.from_pretrained(model)
    prompts = [prompt_ids(tok, item["question"]) for item in toy.make_benchmark(size=8, seed=3)]
    settings = dict(max_length=512, answer_max_tokens=24, cap=200, ignore=2, extrapolation="Wait")
    hf = TransformersEngine(model, max_model_len=512, device="cpu")
    ref = BudgetForcing(mode="resubmit", **settings).run(hf, tok, prompts)
    engine = VLLMEngine(model, max_model_len=512, kv_cache_space=1)
    try:
        ours = BudgetForcing(mode="resubmit", **settings).run(engine, tok, prompts)
    finally:
        engine.close()
    assert [r["token_ids"] for r in ours] == [r["token_ids"] for r in ref]
    assert sum(r["ignores_used"] for r in ref) > 0  # the extension path really ran
