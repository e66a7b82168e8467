"""A user's own ablation (README "Add an ablation"): a copy of a packaged ablation file in a
config dir of the user's, one axis changed, run through `--config-dir` on the toy world, and the
repository left exactly as it was."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import FAST, run_s1exp, wandb_inspect, wandb_run_record

from s1exp import track

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_ABLATION = ROOT / "conf" / "ablation" / "wait_vs_hmm.yaml"
HEADER = "# @package _global_\n"
GROUP = "my_wait_check"


def user_ablation(config_dir: Path, extrapolation: str) -> Path:
    """conf/ablation/wait_vs_hmm.yaml copied to <config_dir>/ablation/mine.yaml with its
    extrapolation axis and its W&B group and tags changed, everything else kept."""
    text = PACKAGE_ABLATION.read_text(encoding="utf-8")
    assert text.startswith(HEADER)  # the package header that puts the file at the root
    ablation = yaml.safe_load(text)
    ablation["hydra"]["sweeper"]["params"]["extrapolation"] = extrapolation
    ablation["logger"] = {"group": GROUP, "tags": ["mine"]}
    path = config_dir / "ablation" / "mine.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(HEADER + yaml.safe_dump(ablation, sort_keys=False), encoding="utf-8")
    return path


def git_status() -> str | None:
    """`git status --porcelain` of the repository (every untracked file listed); None outside a
    git checkout (an installed copy)."""
    out = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    return out.stdout if out.returncode == 0 else None


def test_a_copied_ablation_with_one_axis_changed_runs_from_the_users_config_dir(
    s1_env: dict[str, str], tmp_path: Path
):
    config_dir = tmp_path / "my_ablations"
    user_ablation(config_dir, "none,wait")
    before = git_status()
    args = ["--config-dir", str(config_dir), "+ablation=mine", *FAST, "hydra.sweep.dir=sweep", "-m"]
    env = s1_env | {"S1EXP_STORE": str(tmp_path / "store")}  # its own store: trains here
    proc = run_s1exp(args, tmp_path, env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    after = git_status()
    new = sorted(set((after or "").splitlines()) - set((before or "").splitlines()))
    assert after == before, f"changed inside the repository during the run: {new}"
    assert not (ROOT / "conf" / "ablation" / "mine.yaml").exists()

    sweep = tmp_path / "sweep"
    results = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/results.json"))]
    assert sorted(r["choices"]["extrapolation"] for r in results) == ["none", "wait"]
    assert all(r["choices"]["ablation"] == "mine" for r in results)
    by_option = {r["choices"]["extrapolation"]: r["metrics"]["toy"] for r in results}
    assert by_option["none"]["ignores_used"] == 0 < by_option["wait"]["ignores_used"]
    assert len({r["stages"]["train"]["path"] for r in results}) == 1  # one model, two evaluations
    hydra_cfg = yaml.safe_load((sweep / "0" / ".hydra" / "hydra.yaml").read_text())
    sources = hydra_cfg["hydra"]["runtime"]["config_sources"]  # the user's dir beside the package
    assert {"path": str(config_dir), "schema": "file", "provider": "command-line"} in sources
    assert {"path": str(ROOT / "conf"), "schema": "file", "provider": "main"} in sources

    runs = sorted(track.sweep_wandb_dir(sweep).glob("offline-run-*"))
    assert runs and {wandb_run_record(r)["run_group"] for r in runs} == {GROUP}
    assert all("mine" in wandb_inspect(r)["tags"] for r in runs)  # select, train, evals, report

    summary = (sweep / "summary.txt").read_text(encoding="utf-8")
    assert "extrapolation=none" in summary and "extrapolation=wait" in summary
    assert "| extrapolation=empty |" not in summary  # the axis changed: no such run
    assert "table4_extrapolation.yaml" in summary  # the copied file's paper sheet, from any cwd
    assert "Δ vs extrapolation=none" in summary  # the sheet's reference run
    assert summary.strip() in proc.stdout


def test_an_unknown_option_in_a_user_ablation_fails_before_any_job_runs(
    s1_env: dict[str, str], tmp_path: Path
):
    config_dir = tmp_path / "my_ablations"
    user_ablation(config_dir, "none,wiat")
    args = ["--config-dir", str(config_dir), "+ablation=mine", *FAST, "hydra.sweep.dir=sweep", "-m"]
    proc = run_s1exp(args, tmp_path, s1_env, timeout=120)
    assert proc.returncode == 2
    line = proc.stderr.strip().splitlines()[-1]  # one line (s1exp.__main__), the options listed
    assert line.startswith("s1exp: error: extrapolation=wiat: no such option")
    assert "valid options: " in line and " wait" in line
    assert not list((tmp_path / "sweep").glob("*/results.json"))


@pytest.mark.parametrize("name", ["mien", "wait-vs-hmm"])
def test_a_misspelled_ablation_name_lists_the_user_and_package_files(
    s1_env: dict[str, str], tmp_path: Path, name: str
):
    config_dir = tmp_path / "my_ablations"
    user_ablation(config_dir, "none,wait")
    args = ["--config-dir", str(config_dir), f"+ablation={name}", "-m"]
    proc = run_s1exp(args, tmp_path, s1_env, timeout=120)
    assert proc.returncode == 2
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith(f"s1exp: error: ablation={name}: no such option")
    assert " mine," in line and "wait_vs_hmm" in line  # the user's file and the package's
