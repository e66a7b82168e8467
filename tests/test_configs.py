"""Every option of every config group composes and instantiates; every ablation dry-runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import get_class, get_method, instantiate
from omegaconf import OmegaConf

from hydra_plugins.s1exp_sweeper.grids import expand_grids

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"
GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name != "ablation")
OPTIONS = [(g, f.stem) for g in GROUPS for f in sorted((CONF / g).glob("*.yaml"))]
ABLATIONS = sorted(f.stem for f in (CONF / "ablation").glob("*.yaml"))


def _compose(overrides: list[str], hydra_cfg: bool = False):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=overrides, return_hydra_config=hydra_cfg)


def _targets(node, found: list[str]) -> list[str]:
    if isinstance(node, dict):
        if "_target_" in node:
            found.append(node["_target_"])
        for value in node.values():
            _targets(value, found)
    elif isinstance(node, list):
        for value in node:
            _targets(value, found)
    return found


def test_design_groups_exist():
    expected = {
        "model",
        "data",
        "selection",
        "train",
        "strategy",
        "engine",
        "method",
        "budget",
        "extrapolation",
        "benchmark",
        "logger",
        "cluster",
    }
    assert expected <= set(GROUPS)


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_composes_and_resolves(group: str, option: str):
    cfg = _compose([f"{group}={option}"], hydra_cfg=group == "cluster")
    job = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    resolved = OmegaConf.to_container(job, resolve=True)
    if group == "cluster":  # the launcher a cluster preset selects must resolve too
        resolved["launcher"] = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    for target in _targets(resolved, []):
        try:
            get_class(target)
        except Exception:  # functions are targets too
            get_method(target)


def test_ablation_is_not_a_default():
    cfg = _compose([])
    assert "ablation" not in cfg


@pytest.mark.parametrize("ablation", ABLATIONS)
def test_every_ablation_dry_runs(ablation: str, tmp_path: Path):
    """`--cfg job` on a multirun expands each job's config without running anything."""
    out = subprocess.run(
        [sys.executable, "-m", "s1exp", f"+ablation={ablation}", "--info", "defaults"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    cfg = _compose([f"+ablation={ablation}"], hydra_cfg=True)
    assert cfg.hydra.mode.name == "MULTIRUN"
    assert cfg.logger.group == ablation
    sweeper = OmegaConf.to_container(cfg.hydra.sweeper)
    jobs = expand_grids(sweeper.get("params"), sweeper.get("grids"), [])
    assert jobs, "an ablation must sweep something"
    for job in jobs:  # every job composes and makes a valid test-time method
        instantiate(_compose([f"+ablation={ablation}", *job]).method)


def test_help_lists_groups_and_cfg_job_prints_resolved_config(tmp_path: Path):
    def run(*a):
        return subprocess.run(
            [sys.executable, "-m", "s1exp", *a],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
        )

    help_text = run("--help").stdout
    for group in GROUPS:
        assert f"{group}:" in help_text
    job = run("--cfg", "job", "--resolve", "extrapolation=wait")
    assert job.returncode == 0, job.stderr
    cfg = OmegaConf.create(job.stdout)
    assert cfg.method.extrapolation == "Wait" and cfg.method.ignore == 2


def test_bad_override_names_the_field():
    run = subprocess.run(
        [sys.executable, "-m", "s1exp", "extrapolation=nope", "--cfg", "job"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert run.returncode != 0
    assert "extrapolation" in run.stderr and "nope" in run.stderr


@pytest.mark.parametrize("engine", ["transformers", "vllm"])
def test_eval_key_tracks_output_changing_engine_settings_only(engine: str):
    from s1exp.keys import eval_key

    def key(*overrides: str) -> str:
        return eval_key(_compose([f"engine={engine}", *overrides]), "model-key", "toy")

    base = key()
    for changes_outputs in ("engine.dtype=bfloat16", "engine.seed=1", "engine.max_model_len=1024"):
        assert key(changes_outputs) != base, changes_outputs
    speed_only = {
        "transformers": ["engine.batch_size=8", "engine.device=cpu"],
        "vllm": ["engine.enable_prefix_caching=false", "engine.kv_cache_space=8"],
    }[engine]
    for override in speed_only:
        assert key(override) == base, override
    assert eval_key(_compose([f"engine={engine}"]), "other-model", "toy") != base
