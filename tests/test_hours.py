"""GPU-hours from the planner (s1exp/planning/hours.py): the paper's anchor comes back exactly,
training scales linearly with tokens and FLOPs, decoding follows its memory-bound model, and bad
settings are refused with the setting's name."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from transformers import Qwen2Config

from s1exp import plan
from s1exp.errors import ConfigError
from s1exp.planning import hours
from s1exp.planning.memory import kv_bytes_per_token
from s1exp.train.flops import dense_params

ROOT = Path(__file__).resolve().parent.parent
PAPER_RUN = ("model=qwen2.5-32b-instruct", "train=s1", "strategy=fsdp", "engine=vllm")
EVAL_32B = ("model=s1-32b", "train=none", "engine=vllm")


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def _train(*overrides: str, **flags) -> hours.TrainHours:
    cfg = _compose(*overrides)
    return hours.train_hours(cfg, hours.settings(cfg, **flags))


# -- training ------------------------------------------------------------------------------------
def test_the_paper_run_takes_26_minutes_on_16_h100():
    t = _train(*PAPER_RUN)
    assert t.gpus == 16 and t.examples == 1000 and t.epochs == 5
    assert t.wall_hours * 60 == pytest.approx(26.0, rel=1e-12)
    assert t.gpu_hours == pytest.approx(16 * 26 / 60, rel=1e-12)  # 6.93 H100-hours


@pytest.mark.parametrize("tokens_per_example", [1000.0, 4700.0, 20000.0])
def test_the_anchor_holds_whatever_the_assumed_example_length(tokens_per_example: float):
    """The MFU is calibrated on the anchor at the same length, so the anchor always comes back;
    the MFU itself moves with the assumption (longer examples: more FLOPs in the same 26 min)."""
    t = _train(*PAPER_RUN, tokens_per_example=tokens_per_example)
    assert t.wall_hours * 60 == pytest.approx(26.0, rel=1e-12)
    assert t.tokens == 5 * 1000 * tokens_per_example
    assert 0 < t.mfu < 1


def test_mfu_is_the_anchor_flops_over_what_16_h100_deliver_in_26_minutes():
    arch = hours.anchor_architecture()
    config = Qwen2Config(
        hidden_size=arch.hidden_size,
        num_hidden_layers=arch.num_hidden_layers,
        num_attention_heads=arch.num_attention_heads,
        num_key_value_heads=arch.num_key_value_heads,
        intermediate_size=arch.intermediate_size,
        vocab_size=arch.vocab_size,
        tie_word_embeddings=False,
    )
    # flops.py's count by a meta model agrees with the memory planner's parameter count
    assert dense_params(config) == arch.params - arch.embedding_params
    per_token = 6 * dense_params(config) + 3 * 4 * 64 * (4700 / 2) * 5120  # 6N + causal attention
    expected = 5 * 1000 * 4700 * per_token / (26 * 60 * 16 * 989e12)
    assert hours.anchor_mfu(4700) == pytest.approx(expected, rel=1e-12)


def test_training_is_linear_in_examples_and_epochs_and_flat_in_gpu_hours_over_gpus():
    base = _train(*PAPER_RUN)
    assert _train(*PAPER_RUN, "train.epochs=10").gpu_hours == pytest.approx(2 * base.gpu_hours)
    assert _train(*PAPER_RUN, "selection.size=3000").gpu_hours == pytest.approx(3 * base.gpu_hours)
    four_nodes = _train(*PAPER_RUN, "train.num_nodes=4")
    assert four_nodes.wall_hours == pytest.approx(base.wall_hours / 2)
    assert four_nodes.gpu_hours == pytest.approx(base.gpu_hours)
    a100 = _train(*PAPER_RUN, "gpu=a100_80gb")
    assert a100.wall_hours == pytest.approx(base.wall_hours * 989 / 312)


def test_training_scales_with_flops_per_token_across_models():
    """Same tokens, a smaller model: GPU-hours shrink by exactly the FLOPs-per-token ratio."""
    big, small = _train(*PAPER_RUN), _train(*PAPER_RUN, "model=qwen2.5-7b-instruct")
    ratio = small.flops_per_token / big.flops_per_token
    assert 0.15 < ratio < 0.3  # 7B vs 32B
    assert small.gpu_hours == pytest.approx(big.gpu_hours * ratio, rel=1e-12)


def test_59k_full_lands_near_the_papers_394_h100_hours():
    t = _train(*PAPER_RUN, "data=featurized59k", "selection=full")
    assert t.examples == 59029
    assert t.gpu_hours == pytest.approx(16 * 26 / 60 * 59.029, rel=1e-9)
    assert abs(t.gpu_hours - 394) / 394 < 0.05  # the paper's figure, 4% away


def test_s1k_with_selection_full_trains_on_its_1000_rows():
    assert _train(*PAPER_RUN, "data=s1k", "selection=full").gpu_hours == pytest.approx(16 * 26 / 60)


def test_a_short_block_cuts_the_tokens():
    t = _train(*PAPER_RUN, "train=s1_4k")
    assert t.tokens_per_example == 4096 and t.tokens == 5 * 1000 * 4096


def test_no_training_no_hours():
    assert _train(*EVAL_32B) is None


# -- evaluation ----------------------------------------------------------------------------------
def _eval(*overrides: str, **flags) -> hours.EvalHours:
    cfg = _compose(*overrides)
    return hours.eval_hours(cfg, hours.settings(cfg, **flags))


def test_a_measured_rate_gives_tokens_over_rate_times_gpus():
    e = _eval(*EVAL_32B, "benchmark=[aime24,math500]", decode_tokens_per_s=1000.0)
    typical_tokens = 30 * 6984 + 500 * 3268  # S1_SPEC Table 8's thinking tokens
    assert e.wall[0] * 3600 == pytest.approx(typical_tokens / 1000.0)
    assert e.wall[1] * 3600 == pytest.approx(530 * 32768 / 1000.0)  # every sample to the limit
    assert e.tp == 4 and e.gpu_hours[0] == pytest.approx(4 * e.wall[0])


def test_evaluation_adds_up_over_benchmarks_and_samples():
    one = _eval(*EVAL_32B, "benchmark=[aime24]", decode_tokens_per_s=500.0)
    two = _eval(*EVAL_32B, "benchmark=[aime24,aime25]", decode_tokens_per_s=500.0)
    assert two.wall[0] == pytest.approx(2 * one.wall[0])
    rate = {"decode_tokens_per_s": 500.0}
    voting = _eval(*EVAL_32B, "benchmark=[aime24]", "method=majority_voting", "method.n=8", **rate)
    assert voting.wall == pytest.approx((8 * one.wall[0], 8 * one.wall[1]))
    rs = _eval(
        *EVAL_32B, "benchmark=[aime24]", "method=rejection_sampling", "budget=cap4000", **rate
    )
    assert rs.loads[0].samples == (1, 16) and rs.loads[0].thinking == (4000, 4000)


def test_caps_bound_the_thinking():
    e = _eval(*EVAL_32B, "benchmark=[aime24,math500]", "budget=cap4000")
    assert [b.thinking for b in e.loads] == [(4000, 4000), (3268, 4000)]
    tcc = _eval(*EVAL_32B, "benchmark=[aime24]", "method=tcc_bf", "method.tokens=2048")
    assert tcc.loads[0].thinking == (2048, 2048)
    scc = _eval(*EVAL_32B, "benchmark=[aime24]", "method=scc_bf", "method.steps=20")
    assert scc.loads[0].thinking == (2000, 2000)  # 20 steps of the paper's 100 tokens
    unforced = _eval(*EVAL_32B, "benchmark=[aime24]", "method=scc", "method.steps=20")
    assert unforced.loads[0].thinking == (6984, 32768)


def test_the_decode_rate_is_the_memory_bound_step_by_hand():
    """One AIME question on s1-32B at TP 4: a step reads a quarter of the bf16 weights and the
    sequence's KV cache at half its length, at 50% of the H100's 3.35 TB/s."""
    cfg = _compose(*EVAL_32B, "benchmark=[aime24]")
    chosen = hours.settings(cfg)
    d = hours.decoder(cfg, hours.architecture(cfg), chosen)
    weights = hours.architecture(cfg).params * 2 / 4
    kv = kv_bytes_per_token(hours.architecture(cfg), "bfloat16", 4)
    assert kv == 2 * 64 * 2 * 128 * 2  # 8 KV heads over 4 GPUs, bf16
    expected = 0.5 * 3.35e12 / (weights + 1000 * kv)
    assert hours.decode_rate(d, 1, 2000) == pytest.approx(expected, rel=1e-12)
    # more sequences at once: more tokens per step, never more than the KV cache holds
    assert hours.decode_rate(d, 30, 2000) > 20 * hours.decode_rate(d, 1, 2000)
    fit = int(d.kv_cache_bytes // (kv * 32768))
    assert hours.decode_rate(d, 1000, 32768) == pytest.approx(hours.decode_rate(d, fit, 32768))
    # twice the bandwidth, twice the rate
    fast = hours.decoder(cfg, hours.architecture(cfg), hours.settings(cfg, hbm_tb_s=6.7))
    assert hours.decode_rate(fast, 30, 2000) == pytest.approx(2 * hours.decode_rate(d, 30, 2000))


# -- settings and errors -------------------------------------------------------------------------
def test_config_keys_set_the_assumptions_and_flags_win():
    cfg = _compose(*EVAL_32B, "+gpu.decode_efficiency=0.8", "+data.tokens_per_example=9000")
    assert hours.settings(cfg).decode_efficiency == 0.8
    assert hours.settings(cfg).tokens_per_example == 9000
    assert hours.settings(cfg, decode_efficiency=0.6).decode_efficiency == 0.6


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"tokens_per_example": 0}, r"tokens_per_example=0: must be a positive .*--tokens-per"),
        ({"examples": -5}, r"examples=-5: must be a positive number \(--examples N\)"),
        ({"decode_efficiency": 1.5}, r"decode_efficiency=1.5: .*in \(0, 1\]"),
        ({"decode_tokens_per_s": -1.0}, r"decode_tokens_per_s=-1.0: .*--decode-tokens-per-s"),
        ({"mfu": 0.4}, r"unknown GPU-hours settings \['mfu'\]"),
    ],
)
def test_bad_settings_are_refused_by_name(flags: dict, message: str):
    with pytest.raises(ConfigError, match=message):
        hours.settings(_compose(*PAPER_RUN), **flags)


def test_unknown_gpu_bandwidth_and_benchmark_size_are_refused_with_the_fix():
    cfg = _compose(*EVAL_32B, "gpu.name=MI300X")
    with pytest.raises(ConfigError, match=r"gpu.name='MI300X'.*--hbm-tb-s"):
        hours.eval_hours(cfg, hours.settings(cfg))
    assert hours.eval_hours(cfg, hours.settings(cfg, hbm_tb_s=5.3)).wall[0] > 0
    cfg = _compose(*PAPER_RUN, "data=local", "selection=full")
    with pytest.raises(ConfigError, match=r"selection=full .*data=local.*--examples N"):
        hours.train_hours(cfg, hours.settings(cfg))


def test_the_planner_prints_the_section_and_refuses_a_bad_flag(capsys: pytest.CaptureFixture):
    args = [*PAPER_RUN, "benchmark=[aime24]"]
    plan.main(args)
    out = capsys.readouterr().out
    assert "train: does not fit" in out  # the memory tables come first, unchanged
    assert "26.0 min wall, 6.93 GPU-hours" in out
    assert "a job that trains first holds its 16 GPUs" in out
    price = _compose(*PAPER_RUN).gpu.get("usd_per_gpu_hour")
    if price is not None:  # the cost block's price (conf/gpu/*.yaml), applied to the estimate
        held = 16 * 26 / 60 + 16 * _eval(*PAPER_RUN, "benchmark=[aime24]").wall[0]
        assert f"at ${price:g} per GPU-hour (gpu.usd_per_gpu_hour): ${held * price:,.2f}" in out
    with pytest.raises(SystemExit) as exit_info:
        plan.main([*args, "--decode-efficiency", "2"])
    assert exit_info.value.code == 2
    assert "s1exp: error: decode_efficiency=2.0" in capsys.readouterr().err
