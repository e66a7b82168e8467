"""DeepSpeed ZeRO-3 on 2 CPU processes (gloo): partitioned loading, training, layer-wise export.

DeepSpeed runs on its CPU accelerator, so s1exp.train.zero3 is exercised for real here: raw
DeepSpeed (no Lightning) for the pure functions, and Lightning's Trainer with `ZeRO3Strategy`
from conf/strategy/*.yaml for the strategy. One launch runs this file as a script in two
processes (RANK/WORLD_SIZE/LOCAL_RANK set, as torchrun or SLURM would) that go through every
scenario; the workers write what they saw to JSON and tensors, and the tests assert on it.

The first run on a fresh machine compiles DeepSpeed's CPU shared-memory collective and CPU Adam
ops (~1.5 min each, cached in ~/.cache/torch_extensions afterwards).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf" / "strategy"
WORLD = 2
STEPS = 3
LAUNCH_TIMEOUT_S = 600
LR = 1e-3
PRESETS = ("deepspeed_zero3", "deepspeed_zero3_offload")


# ----------------------------------------------------------------------------- the worker


def _rank() -> int:
    return int(os.environ["RANK"])


def _dump(folder: Path, name: str, data: dict[str, Any]) -> None:
    (folder / f"{name}_rank{_rank()}.json").write_text(json.dumps(data))


def _checkpoint(base: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(base / "model.safetensors")


def _batch(base: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoTokenizer

    from s1exp.data import toy
    from s1exp.data.format import chat_example
    from s1exp.train.datamodule import pad_batch

    tok = AutoTokenizer.from_pretrained(base)
    pairs = toy.pretrain_corpus(size=4, seed=1)
    return pad_batch([chat_example(tok, q, a, 128) for q, a in pairs], tok.pad_token_id)


def _gather_all_at_once(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The reference export: one GatheredParameters over every parameter (the old code path)."""
    import deepspeed

    with deepspeed.zero.GatheredParameters(list(model.parameters()), modifier_rank=None):
        return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _spy_gathers(sizes: list[int]) -> None:
    """Record the elements each GatheredParameters context gathers; the real one still runs."""
    import deepspeed

    real = deepspeed.zero.GatheredParameters

    class Spy(real):  # type: ignore[misc, valid-type]
        def __init__(self, params: Any, *args: Any, **kwargs: Any) -> None:
            params = list(params) if isinstance(params, list | tuple) else [params]
            sizes.append(sum(getattr(p, "ds_numel", p.numel()) for p in params))
            super().__init__(params, *args, **kwargs)

    deepspeed.zero.GatheredParameters = Spy


def _bare_zero_init_load(base: Path, ds_config: dict[str, Any]) -> str:
    """Today's path: `from_pretrained` inside a bare `zero.Init`; returns what went wrong."""
    import deepspeed
    from transformers import AutoModelForCausalLM

    try:
        with deepspeed.zero.Init(config_dict_or_path=ds_config):
            model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    except Exception as err:  # noqa: BLE001 - the failure is the result
        return f"{type(err).__name__}: {err}"[:300]
    ref = _checkpoint(base)
    got = _gather_all_at_once(model)
    same = all(torch.equal(got[k], v) for k, v in ref.items())
    return "loaded correctly" if same else "loaded wrong weights"


def worker_raw(folder: Path) -> None:
    """Raw DeepSpeed: load_partitioned, 3 clipped bf16 AdamW steps, gather_full_state_dict."""
    import deepspeed

    from s1exp.train import zero3

    deepspeed.init_distributed(dist_backend="gloo")
    rank = _rank()
    base = folder / "base"
    fp32 = {
        "train_micro_batch_size_per_gpu": 4,
        "gradient_accumulation_steps": 1,
        "gradient_clipping": 1.0,
        "zero_optimization": {"stage": 3},
    }
    bf16 = fp32 | {"bf16": {"enabled": True}}  # the s1 recipe's: bf16 params, fp32 masters
    ref = _checkpoint(base)
    out: dict[str, Any] = {}

    model = zero3.load_partitioned(str(base), torch.float32, fp32)
    out["placeholder_numel"] = sum(p.numel() for p in model.parameters())
    out["partition_numel"] = sum(p.ds_tensor.numel() for p in model.parameters())
    out["full_numel"] = sum(p.ds_numel for p in model.parameters())
    loaded = _gather_all_at_once(model)
    out["load_mismatch"] = [k for k, v in ref.items() if not torch.equal(loaded[k], v)]
    out["hf_zero3_after_load"] = _hf_zero3_enabled()
    del model, loaded

    model = zero3.load_partitioned(str(base), torch.float32, bf16)
    loaded = _gather_all_at_once(model)
    out["bf16_dtypes"] = sorted({str(v.dtype) for v in loaded.values()})
    out["bf16_load_mismatch"] = [
        k for k, v in ref.items() if not torch.equal(loaded[k], v.to(torch.bfloat16))
    ]
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95))
    engine, _, _, _ = deepspeed.initialize(
        model=model, optimizer=optimizer, config=bf16, dist_init_required=False
    )
    batch = _batch(base)
    out["losses"], out["grad_norms"] = [], []
    for _ in range(STEPS):
        loss = engine(**batch).loss
        engine.backward(loss)
        engine.step()
        out["losses"].append(loss.item())
        out["grad_norms"].append(float(engine.get_global_grad_norm()))
    out["clipping"] = engine.gradient_clipping()

    sizes: list[int] = []
    _spy_gathers(sizes)
    exported = zero3.gather_full_state_dict(engine.module, rank)
    out["gather_sizes"] = list(sizes)  # before the gathers below add their own
    masters = zero3.gather_full_state_dict(engine.module, rank, master_weights=True)
    out["layer_numel"] = sum(p.ds_numel for p in engine.module.model.layers[0].parameters())
    out["embed_numel"] = engine.module.model.embed_tokens.weight.ds_numel
    reference = _gather_all_at_once(engine.module)
    out["exported_is_none"] = [exported is None, masters is None]
    if rank == 0:
        states = {"exported": exported, "masters": masters, "reference": reference}
        torch.save(states, folder / "raw_states.pt")
        engine.module.save_pretrained(folder / "raw_export", state_dict=masters)

    out["bare"] = _bare_zero_init_load(base, fp32)
    _dump(folder, "raw", out)


def _hf_zero3_enabled() -> bool:
    from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled

    return is_deepspeed_zero3_enabled()


def worker_lightning(folder: Path, preset: str) -> None:
    """Lightning's Trainer with the preset's ZeRO3Strategy, SFTModule and SFTDataModule."""
    import lightning as L
    from hydra.utils import instantiate
    from omegaconf import OmegaConf
    from transformers import AutoTokenizer

    from s1exp.data import toy
    from s1exp.data.format import chat_example
    from s1exp.train.datamodule import SFTDataModule
    from s1exp.train.module import SFTModule

    base = folder / "base"
    strategy = instantiate(OmegaConf.load(CONF / f"{preset}.yaml"))
    calls: list[str] = []
    build = strategy.build_model

    def counting_build(model_path: str, dtype: torch.dtype, **kwargs) -> torch.nn.Module:
        calls.append(model_path)
        return build(model_path, dtype, **kwargs)

    strategy.build_model = counting_build
    tok = AutoTokenizer.from_pretrained(base)
    pairs = toy.pretrain_corpus(size=16, seed=2)
    examples = [chat_example(tok, q, a, 128) for q, a in pairs]
    L.seed_everything(0, verbose=False)
    recipe = OmegaConf.load(ROOT / "conf" / "train" / "s1.yaml")  # its precision and checkpointing
    module = SFTModule(
        str(base), LR, (0.9, 0.95), 1e-4, 0.05, recipe.dtype, recipe.activation_checkpointing
    )
    trainer = L.Trainer(
        accelerator="cpu",
        devices=WORLD,
        strategy=strategy,
        precision=recipe.precision,
        max_steps=STEPS,
        gradient_clip_val=recipe.gradient_clip_val,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(folder / f"lightning_{preset}"),
    )
    trainer.fit(module, datamodule=SFTDataModule(examples, 2, tok.pad_token_id))
    out: dict[str, Any] = {
        "build_model_calls": len(calls),
        "global_step": trainer.global_step,
        "loss": float(trainer.callback_metrics["train/loss"]),
        "config": strategy.config,
        "optimizer": type(strategy.deepspeed_engine.optimizer.optimizer).__name__,
        "param_dtypes": sorted({str(p.dtype) for p in module.model.parameters()}),
        # the module's warmup-cosine must drive the optimizer DeepSpeed steps (CPU Adam included)
        "lr_scheduled": trainer.lr_scheduler_configs[0].scheduler.get_last_lr()[0],
        "lr_used": strategy.deepspeed_engine.optimizer.optimizer.param_groups[0]["lr"],
        "checkpointing": module.model.is_gradient_checkpointing,
    }
    exported = strategy.export_state_dict(module.model)
    reference = _gather_all_at_once(module.model)
    out["exported_is_none"] = exported is None
    if trainer.is_global_zero:
        torch.save({"exported": exported, "reference": reference}, folder / f"{preset}_states.pt")
    _dump(folder, preset, out)


# ----------------------------------------------------------------------------- the launcher


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(folder: Path) -> None:
    """Run this file as a worker in WORLD processes; fail with their output if any fails.

    A rank that dies leaves the others blocked in a collective, so the first failure (or the
    deadline) ends them all.
    """
    port = str(_free_port())
    procs, logs = [], []
    for rank in range(WORLD):
        env = os.environ | {
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": port,
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(WORLD),
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        logs.append((folder / f"worker_rank{rank}.log").open("w"))
        cmd = [sys.executable, __file__, str(folder)]
        procs.append(subprocess.Popen(cmd, env=env, stdout=logs[-1], stderr=subprocess.STDOUT))
    deadline = time.monotonic() + LAUNCH_TIMEOUT_S
    try:
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            if any(p.poll() for p in procs):  # one rank failed: do not wait for the others
                break
            time.sleep(0.5)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for log in logs:
            log.close()
    codes = [p.returncode for p in procs]
    if any(codes):
        failed = next((r for r, c in enumerate(codes) if c not in (0, -9)), 0)
        tail = (folder / f"worker_rank{failed}.log").read_text()[-4000:]
        raise AssertionError(f"workers exited with {codes}; rank {failed}'s log ends:\n{tail}")


def results(folder: Path, name: str) -> list[dict[str, Any]]:
    return [json.loads((folder / f"{name}_rank{r}.json").read_text()) for r in range(WORLD)]


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Qwen2 checkpoint (hidden 128, 2 layers, tied embeddings) to load and train."""
    from s1exp.models import tiny, toy_base

    root = tmp_path_factory.mktemp("zero3")
    tok = toy_base.pretrain_tokenizer(size=64)
    tiny.save(tiny.build_model(tok, hidden_size=128, num_layers=2), tok, root / "base")
    return root


@pytest.fixture(scope="module")
def runs(folder: Path) -> Path:
    launch(folder)
    return folder


# ----------------------------------------------------------------------------- raw DeepSpeed


def test_load_partitioned_holds_exactly_the_checkpoint(runs: Path):
    for rank, out in enumerate(results(runs, "raw")):
        assert out["placeholder_numel"] == 0, "parameters were not partitioned at creation"
        assert out["partition_numel"] * WORLD >= out["full_numel"] > out["partition_numel"], rank
        assert out["load_mismatch"] == [], f"rank {rank}: gathered != checkpoint"
        assert out["bf16_dtypes"] == ["torch.bfloat16"] and out["bf16_load_mismatch"] == []
        assert out["hf_zero3_after_load"] is False, "HfDeepSpeedConfig leaked past the load"


def test_from_pretrained_inside_bare_zero_init_is_broken(runs: Path):
    """The regression guard: the old configure_model path cannot load a ZeRO-3 model."""
    for out in results(runs, "raw"):
        assert out["bare"] != "loaded correctly", out["bare"]


def test_raw_zero3_trains_with_clipping(runs: Path):
    for out in results(runs, "raw"):
        assert out["clipping"] == 1.0
        assert len(out["losses"]) == STEPS and all(n > 0 for n in out["grad_norms"])
        assert out["losses"][-1] < out["losses"][0], out["losses"]
    ranks = results(runs, "raw")
    assert ranks[0]["losses"] == pytest.approx(ranks[1]["losses"]), "ranks saw different models"


def test_gather_full_state_dict_matches_one_shot_gather(runs: Path):
    ranks = results(runs, "raw")
    assert ranks[0]["exported_is_none"] == [False, False]
    assert ranks[1]["exported_is_none"] == [True, True]
    states = torch.load(runs / "raw_states.pt", weights_only=True)
    exported, reference = states["exported"], states["reference"]
    assert list(exported) == list(reference), "keys differ from model.state_dict()"
    for key, tensor in reference.items():
        assert exported[key].device.type == "cpu"
        assert exported[key].shape == tensor.shape and torch.equal(exported[key], tensor), key
    checkpoint = _checkpoint(runs / "base")
    moved = [k for k, v in checkpoint.items() if not torch.equal(exported[k].float(), v)]
    assert moved, "training did not change the exported weights"


def test_master_weight_export_is_fp32_and_rounds_to_the_working_copy(runs: Path):
    states = torch.load(runs / "raw_states.pt", weights_only=True)
    masters, reference = states["masters"], states["reference"]
    assert list(masters) == list(reference)
    finer = 0
    for key, working in reference.items():
        assert masters[key].dtype == torch.float32, key
        assert torch.equal(masters[key].to(torch.bfloat16), working), key
        finer += int((masters[key] != working.float()).sum())
    assert finer > 0, "the masters carry no precision beyond bf16: not the optimizer's fp32 copy"


def test_gather_full_state_dict_gathers_one_unit_at_a_time(runs: Path):
    for out in results(runs, "raw"):
        biggest_unit = max(out["layer_numel"], out["embed_numel"])
        assert out["gather_sizes"], "gather_full_state_dict never gathered"
        assert max(out["gather_sizes"]) <= biggest_unit < out["full_numel"], out["gather_sizes"]
        assert sum(out["gather_sizes"]) == out["full_numel"], "a parameter gathered twice/never"


def test_exported_checkpoint_reloads(runs: Path):
    from transformers import AutoModelForCausalLM

    exported = torch.load(runs / "raw_states.pt", weights_only=True)["masters"]
    model = AutoModelForCausalLM.from_pretrained(runs / "raw_export", dtype=torch.float32)
    state = model.state_dict()
    assert set(state) == set(exported)
    for key, tensor in exported.items():
        assert torch.equal(state[key], tensor), key


# ----------------------------------------------------------------------------- Lightning


def _check_lightning(folder: Path, preset: str) -> list[dict[str, Any]]:
    ranks = results(folder, preset)
    for out in ranks:
        assert out["build_model_calls"] == 1, "SFTModule.configure_model did not call build_model"
        assert out["global_step"] == STEPS
        assert out["config"]["zero_optimization"]["stage"] == 3
        assert out["config"]["gradient_clipping"] == 1.0
        assert torch.isfinite(torch.tensor(out["loss"]))
        assert out["lr_used"] == out["lr_scheduled"] != LR, "the LR schedule did not reach it"
    assert ranks[0]["exported_is_none"] is False and ranks[1]["exported_is_none"] is True
    states = torch.load(folder / f"{preset}_states.pt", weights_only=True)
    exported, reference = states["exported"], states["reference"]
    assert list(exported) == list(reference)
    for out in ranks:  # bf16-mixed: bf16 working copies, exported from the fp32 masters
        assert out["param_dtypes"] == ["torch.bfloat16"] and out["checkpointing"] is True
    for key, tensor in reference.items():
        assert exported[key].dtype == torch.float32, key
        assert torch.equal(exported[key].to(tensor.dtype), tensor), key
    return ranks


def test_lightning_zero3_strategy_trains_and_exports(runs: Path):
    ranks = _check_lightning(runs, "deepspeed_zero3")
    assert "offload_optimizer" not in ranks[0]["config"]["zero_optimization"]


def test_lightning_zero3_offload_strategy_trains_and_exports(runs: Path):
    ranks = _check_lightning(runs, "deepspeed_zero3_offload")
    zero = ranks[0]["config"]["zero_optimization"]
    assert zero["offload_optimizer"]["device"] == "cpu" and zero["offload_param"]["device"] == "cpu"
    assert zero["offload_optimizer"]["pin_memory"] and zero["offload_param"]["pin_memory"]
    assert ranks[0]["optimizer"] == "DeepSpeedCPUAdam"


# ----------------------------------------------------------------------------- no processes


def test_presets_instantiate_as_zero3_strategy():
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from s1exp.train.zero3 import ZeRO3Strategy

    for preset in ("deepspeed_zero3", "deepspeed_zero3_offload"):
        cfg = OmegaConf.load(CONF / f"{preset}.yaml")
        assert cfg.gpu_only is True, f"{preset}: preflight must refuse it without CUDA"
        strategy = instantiate(cfg)
        assert isinstance(strategy, ZeRO3Strategy) and strategy.zero_stage_3


def test_bad_settings_name_the_field():
    from s1exp.errors import ConfigError
    from s1exp.train.zero3 import ZeRO3Strategy, cpu_adam_like

    with pytest.raises(ConfigError, match="strategy.stage"):
        ZeRO3Strategy(stage=2)
    with pytest.raises(ConfigError, match="strategy.config"):
        ZeRO3Strategy(config={"zero_optimization": {"stage": 3}})
    plain = ZeRO3Strategy(offload_optimizer=True, cpu_adam=False)
    assert plain.config["zero_force_ds_cpu_optimizer"] is False
    assert "zero_force_ds_cpu_optimizer" not in ZeRO3Strategy(offload_optimizer=True).config
    sgd = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    with pytest.raises(ConfigError, match="strategy.cpu_adam"):
        cpu_adam_like(sgd)


def test_export_units_cover_each_parameter_once():
    from s1exp.models import tiny, toy_base
    from s1exp.train.zero3 import export_units

    tok = toy_base.pretrain_tokenizer(size=16)
    model = tiny.build_model(tok, hidden_size=128, num_layers=2)
    units = export_units(model)
    flat = [id(p) for unit in units for p in unit]
    assert len(flat) == len(set(flat)) == len(list(model.parameters()))
    layers = [{id(p) for p in layer.parameters()} for layer in model.model.layers]
    for layer in layers:
        assert layer in [{id(p) for p in unit} for unit in units], "a decoder layer was split"


def worker(folder: Path) -> None:
    """Every scenario in one pair of processes (start-up dominates: ~12 s of imports each)."""
    worker_raw(folder)
    for preset in PRESETS:
        worker_lightning(folder, preset)


if __name__ == "__main__":
    worker(Path(sys.argv[1]))
