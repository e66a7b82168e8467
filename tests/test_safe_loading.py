"""Checkpoints load from safetensors only, and a checkpoint's own Python code runs only when its
model config sets `trust_remote_code: true` (false in every conf/model/*.yaml).

Both planted checkpoints leave a marker file when their code runs: a `pytorch_model.bin` whose
unpickling writes it, and a config.json whose `auto_map` names a module that writes it on import.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from s1exp.errors import ConfigError
from s1exp.infer.hf_engine import TransformersEngine
from s1exp.models import loading

CONF = Path(__file__).resolve().parent.parent / "conf"
MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))


class _RunsCode:
    """Unpickling this writes the marker: what a hostile pytorch_model.bin can do."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('unpickled')",))


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "code_ran"


@pytest.fixture
def pickle_checkpoint(tmp_path: Path, marker: Path) -> Path:
    """A valid Qwen2 config.json beside a pytorch_model.bin pickle, and no safetensors."""
    import torch
    from transformers import Qwen2Config

    folder = tmp_path / "pickled"
    Qwen2Config(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
    ).save_pretrained(folder)
    torch.save({"payload": _RunsCode(marker)}, folder / "pytorch_model.bin")
    return folder


@pytest.fixture
def remote_code_checkpoint(tmp_path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config.json whose auto_map points at the folder's own configuration module."""
    import transformers.dynamic_module_utils as dynamic

    # transformers copies trusted code into its modules cache: keep that inside the test
    monkeypatch.setattr(dynamic, "HF_MODULES_CACHE", str(tmp_path / "hf_modules"))
    monkeypatch.syspath_prepend(str(tmp_path / "hf_modules"))
    folder = tmp_path / "custom"
    folder.mkdir()
    writes_marker = f"from pathlib import Path\n\nPath({str(marker)!r}).write_text('imported')\n"
    (folder / "configuration_custom.py").write_text(
        f"{writes_marker}from transformers import PretrainedConfig\n\n\n"
        "class CustomConfig(PretrainedConfig):\n    model_type = 's1exp_custom'\n"
    )
    (folder / "tokenization_custom.py").write_text(
        f"{writes_marker}from transformers import PreTrainedTokenizerFast\n\n\n"
        "class CustomTokenizer(PreTrainedTokenizerFast):\n    pass\n"
    )
    config = {"AutoConfig": "configuration_custom.CustomConfig"}
    tokenizer = {"AutoTokenizer": [None, "tokenization_custom.CustomTokenizer"]}
    (folder / "config.json").write_text(
        json.dumps({"model_type": "s1exp_custom", "auto_map": config})
    )
    (folder / "tokenizer_config.json").write_text(json.dumps({"auto_map": tokenizer}))
    return folder


def _compose(*overrides: str) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides))


@pytest.mark.parametrize("model", MODELS)
def test_every_model_config_sets_trust_remote_code_false(model: str):
    assert (
        yaml.safe_load((CONF / "model" / f"{model}.yaml").read_text())["trust_remote_code"] is False
    )


def test_trust_remote_code_defaults_off():
    assert loading.trusts_remote_code(_compose().model) is False
    assert loading.trusts_remote_code(_compose("model.trust_remote_code=true").model) is True
    assert loading.trusts_remote_code(OmegaConf.create({"name": "older config"})) is False


@pytest.mark.parametrize(
    "load",
    [
        lambda path: loading.causal_lm(path),
        lambda path: TransformersEngine(path, device="cpu"),
    ],
    ids=["causal_lm", "TransformersEngine"],
)
def test_pickle_only_checkpoint_is_refused(load, pickle_checkpoint: Path, marker: Path):
    with pytest.raises(ConfigError, match="pickles \\(pytorch_model.bin\\).*safetensors only"):
        load(str(pickle_checkpoint))
    assert not marker.exists()


def test_remote_code_is_refused_without_the_flag(remote_code_checkpoint: Path, marker: Path):
    path = str(remote_code_checkpoint)
    for load in (loading.model_config, loading.tokenizer, loading.causal_lm, TransformersEngine):
        with pytest.raises(ValueError, match="trust_remote_code=True"):
            load(path)
    assert not marker.exists()
    config = loading.model_config(path, trust_remote_code=True)  # the flag reaches transformers
    assert marker.exists() and type(config).__name__ == "CustomConfig"


@pytest.mark.parametrize("trusted", [False, True])
def test_a_model_configs_flag_reaches_featurize_and_evaluate(
    trusted: bool, remote_code_checkpoint: Path, marker: Path, tmp_path: Path
):
    """featurize's and evaluate's loaders read the flag of the model config they load: without
    it the custom code is refused and never runs; with it, it runs (and the folder, which has no
    tokenizer files, fails later)."""
    from s1exp.data.featurize import load_model
    from s1exp.evaluate.run import evaluate

    model_cfg = OmegaConf.create(
        {
            "name": "custom",
            "base": {
                "_target_": "s1exp.models.hub.hub_model",
                "repo_id": str(remote_code_checkpoint),
            },
            "trust_remote_code": trusted,
        }
    )
    cfg = OmegaConf.create({"paths": {"cache": str(tmp_path / "cache")}})
    with pytest.raises(ConfigError, match="featurize.length.tokenizer: cannot load") as refused:
        load_model(cfg, model_cfg, "featurize.length.tokenizer")
    assert marker.exists() is trusted
    assert ("contains custom code" in str(refused.value)) is not trusted

    run_cfg = _compose(f"model.trust_remote_code={str(trusted).lower()}")
    with pytest.raises((ValueError, OSError)) as failed:  # the code, once imported, is cached
        evaluate(run_cfg, str(remote_code_checkpoint), {}, {})
    assert ("trust_remote_code=True" in str(failed.value)) is not trusted


def test_vllm_engine_loads_safetensors_and_passes_the_flag(
    monkeypatch: pytest.MonkeyPatch, pickle_checkpoint: Path, marker: Path
):
    vllm = pytest.importorskip("vllm")
    from s1exp.infer.vllm_engine import VLLMEngine

    seen: list[dict] = []

    class Recorder:
        def __init__(self, **kwargs):
            seen.append(kwargs)

    monkeypatch.setattr(vllm, "LLM", Recorder)
    VLLMEngine("some/model", kv_cache_space=1)
    VLLMEngine("some/model", kv_cache_space=1, trust_remote_code=True)
    assert [s["load_format"] for s in seen] == ["safetensors", "safetensors"]
    assert [s["trust_remote_code"] for s in seen] == [False, True]
    with pytest.raises(ConfigError, match="safetensors only"):
        VLLMEngine(str(pickle_checkpoint), kv_cache_space=1)
    assert len(seen) == 2 and not marker.exists()
