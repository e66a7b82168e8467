"""Every run's cost (s1exp.cost): the devices a job holds (SLURM's allocation, else the visible
CUDA devices, else the CPU), GPU-hours and dollars at gpu.usd_per_gpu_hour, the W&B summary
values and the sweep's cost line. The real runs' cost blocks are checked in test_wandb_sweep.py
(test_cli_sweep_logs_every_job_into_the_sweeps_folder)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import run_s1exp
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from s1exp import cost, track
from s1exp.__main__ import CONFIG_DIR
from s1exp.errors import ERROR_PREFIX, ConfigError
from s1exp.report.cost import cost_line, cost_metrics, duration, sweep_cost

GPU_OPTIONS = sorted(p.stem for p in (Path(CONFIG_DIR) / "gpu").glob("*.yaml"))
PAPER_RUN = (26 * 60.0, 16)  # S1_SPEC section 2: 26 minutes on 16 H100


def composed(*overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("config", overrides=list(overrides))


# What SLURM sets in a job's tasks (srun inside an sbatch allocation), per case.
SLURM_ENVS = {
    "submitit, 2 nodes x 8 H100": (
        {
            "SLURM_JOB_ID": "4242",
            "SLURM_JOB_NUM_NODES": "2",
            "SLURM_NNODES": "2",
            "SLURM_GPUS_ON_NODE": "8",
            "SLURM_GPUS_PER_NODE": "h100:8",
            "SLURM_JOB_GPUS": "0,1,2,3,4,5,6,7",
            "SLURM_PROCID": "9",
        },
        16,
    ),
    "gres ids with a range, 1 node": (
        {"SLURM_JOB_ID": "11", "SLURM_JOB_NUM_NODES": "1", "SLURM_JOB_GPUS": "0-3,6"},
        5,
    ),
    "--gpus-per-node=4 on 3 nodes (SLURM_NNODES only)": (
        {"SLURM_JOB_ID": "12", "SLURM_NNODES": "3", "SLURM_GPUS_PER_NODE": "4"},
        12,
    ),
    "--gpus=a100:2,v100:1 is the job's total": (
        {"SLURM_JOB_ID": "13", "SLURM_JOB_NUM_NODES": "2", "SLURM_GPUS": "a100:2,v100:1"},
        3,
    ),
    "CPU job (cluster=slurm_local)": (
        {"SLURM_JOB_ID": "7", "SLURM_JOB_NUM_NODES": "1", "SLURM_CPUS_ON_NODE": "1"},
        None,
    ),
    "not in SLURM": ({"HOME": "/root"}, None),
    "an unreadable variable: the next one counts": (
        {"SLURM_GPUS_ON_NODE": "N/A", "SLURM_JOB_GPUS": "0,1", "SLURM_JOB_NUM_NODES": "x"},
        2,
    ),
}


@pytest.mark.parametrize(("env", "gpus"), SLURM_ENVS.values(), ids=SLURM_ENVS.keys())
def test_slurm_allocation_counts_the_gpus_of_every_node(env: dict[str, str], gpus: int | None):
    assert cost.slurm_gpus(env) == gpus


def test_slurm_gpu_type_is_what_the_job_asked_for():
    assert cost.slurm_gpu_type({"SLURM_GPUS_PER_NODE": "h100:8"}) == "h100"
    assert cost.slurm_gpu_type({"SLURM_GPUS": "a100:2,v100:1"}) == "a100,v100"
    assert cost.slurm_gpu_type({"SLURM_GPUS_PER_NODE": "8"}) is None


def this_machine() -> cost.Devices:
    """What torch sees here, asked directly: the devices a run outside SLURM holds."""
    count = torch.cuda.device_count()
    return cost.Devices(torch.cuda.get_device_name(0), count) if count else cost.Devices("cpu", 0)


def test_outside_slurm_a_run_holds_the_visible_cuda_devices_or_the_cpu():
    assert cost.held_devices({}) == this_machine()
    # a SLURM job that asked for no GPU holds what it can see (none, on a CPU node)
    assert cost.held_devices(SLURM_ENVS["CPU job (cluster=slurm_local)"][0]) == this_machine()


def test_on_slurm_a_job_holds_its_whole_allocation():
    env = SLURM_ENVS["submitit, 2 nodes x 8 H100"][0]
    devices = cost.held_devices(env)
    assert devices.gpus == 16  # both nodes, though this task sees one node's GPUs at most
    seen = this_machine()
    assert devices.kind == (seen.kind if seen.gpus else "h100")


def test_the_papers_run_is_about_7_h100_hours_and_within_6_to_50_dollars():
    cfg = composed()  # gpu=h100, the default
    hours = cost.gpu_hours(*PAPER_RUN)
    assert hours == pytest.approx(6.93, abs=0.01)
    dollars = cost.usd(hours, cost.usd_per_gpu_hour(cfg))
    assert dollars is not None and 6 <= dollars <= 50


@pytest.mark.parametrize("gpu", GPU_OPTIONS)
def test_every_gpu_option_has_a_price(gpu: str):
    assert cost.usd_per_gpu_hour(composed(f"gpu={gpu}")) > 0


def test_price_override_on_the_command_line_prices_the_run():
    cfg = composed("gpu.usd_per_gpu_hour=3.5")
    assert cost.usd_per_gpu_hour(cfg) == 3.5
    block = cost.run_cost(PAPER_RUN[0], {}, cost.Devices("H100", PAPER_RUN[1]), 3.5, "H100")
    assert block["usd"] == pytest.approx(3.5 * 16 * 26 / 60)
    assert block["usd_per_gpu_hour"] == 3.5 and block["priced_as"] == "H100"


@pytest.mark.parametrize("value", ["-1", "abc", "true", "nan", "inf", "[1,2]"])
def test_a_bad_price_names_the_setting(value: str):
    cfg = composed(f"gpu.usd_per_gpu_hour={value}")
    with pytest.raises(ConfigError, match=r"gpu\.usd_per_gpu_hour=.*number >= 0"):
        cost.usd_per_gpu_hour(cfg)


def test_null_price_logs_no_dollars_for_gpus_and_zero_for_the_cpu():
    cfg = composed("gpu.usd_per_gpu_hour=null")
    assert cost.usd_per_gpu_hour(cfg) is None
    assert cost.run_cost(60.0, {}, cost.Devices("H100", 8), None)["usd"] is None
    assert cost.run_cost(60.0, {}, cost.Devices("cpu", 0), None)["usd"] == 0.0


def test_a_bad_price_stops_the_cli_before_any_stage(s1_env: dict, tmp_path: Path):
    proc = run_s1exp(["gpu.usd_per_gpu_hour=-2", "hydra.run.dir=bad"], tmp_path, s1_env)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith(ERROR_PREFIX)]
    assert len(errors) == 1 and "gpu.usd_per_gpu_hour=-2" in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "bad" / "results.json").exists()


def stages(train_seconds: float, reused: bool) -> dict[str, dict]:
    """A results.json `stages` record as the pipeline writes it (the fields cost reads)."""
    return {
        "select": {"key": "s", "path": "/s", "reused": True, "seconds": 0.02},
        "base_model": {"path": "/b", "seconds": 0.5},
        "train": {"key": "m", "path": "/m", "reused": reused, "seconds": train_seconds},
        "evaluate": {"reused": False, "seconds": 30.0, "benchmarks": {}},
    }


def test_each_stage_costs_what_it_spent_in_this_run():
    devices = cost.Devices("H100", 8)
    block = cost.run_cost(1900.0, stages(1800.0, reused=False), devices, 3.0)
    train = block["stages"]["train"]
    assert train == {"wall_seconds": 1800.0, "gpu_hours": 4.0, "usd": 12.0, "reused": False}
    assert block["stages"]["select"]["reused"] and block["stages"]["select"]["gpu_hours"] < 1e-4
    assert "reused" not in block["stages"]["base_model"]  # its cache does not say
    assert block["gpu_hours"] == pytest.approx(8 * 1900 / 3600)
    spent = sum(s["gpu_hours"] for s in block["stages"].values())
    assert spent <= block["gpu_hours"]  # the stages run inside the job's wall time
    # the same job with its model reused: training costs this run its look-up only
    again = cost.run_cost(31.0, stages(0.01, reused=True), devices, 3.0)
    assert again["stages"]["train"]["usd"] < 0.001 < again["usd"]


def test_cost_is_logged_to_wandb_as_cost_keys():
    block = cost.run_cost(1900.0, stages(1800.0, False), cost.Devices("H100", 8), 3.0, "H100")
    summary = track.cost_summary(block)
    assert summary["cost/wall_seconds"] == 1900.0 and summary["cost/usd"] == block["usd"]
    assert summary["cost/device"] == "H100" and summary["cost/gpus"] == 8
    assert summary["cost/train/gpu_hours"] == 4.0 and summary["cost/evaluate/usd"] == 0.2
    assert not any(k.endswith("/reused") or k == "cost/stages" for k in summary)
    assert track.cost_summary(None) == {}
    unpriced = track.cost_summary(cost.run_cost(60.0, {}, cost.Devices("H100", 8), None))
    assert "cost/usd" not in unpriced and "cost/usd_per_gpu_hour" not in unpriced


def test_sweep_cost_line_sums_the_jobs():
    gpu = cost.run_cost(*PAPER_RUN[:1], {}, cost.Devices("NVIDIA H100 80GB HBM3", 16), 3.0)
    cpu = cost.run_cost(120.0, {}, cost.Devices("cpu", 0), 3.0)
    results = [{"cost": json.loads(json.dumps(gpu))}, {"cost": cpu}, {"metrics": {}}]
    total = sweep_cost(results)
    assert (total.jobs, total.missing, total.unpriced) == (2, 1, 0)
    assert total.wall_seconds == 26 * 60 + 120 and total.usd == pytest.approx(20.8)
    line = cost_line(results)
    assert line.startswith("Cost: 2 jobs, 28.0 min of wall time (summed over jobs)")
    assert "16 x NVIDIA H100 80GB HBM3, cpu: 6.93 GPU-hours, $20.80 at $3.00 per GPU-hour" in line
    assert "1 more job(s) have no cost block" in line
    metrics = cost_metrics(results)
    assert metrics == {
        "cost/wall_seconds": 26 * 60 + 120,
        "cost/gpu_hours": pytest.approx(6.933, abs=1e-3),
        "cost/usd": pytest.approx(20.8),
    }
    assert cost_line([{}]) == "Cost: n/a (none of the 1 jobs has a cost block in results.json)."
    assert cost_metrics([{}]) == {}


def test_sweep_cost_line_on_cpu_and_without_a_price():
    cpu = cost.run_cost(42.0, {}, cost.Devices("cpu", 0), None)
    assert cost_line([{"cost": cpu}]) == "Cost: 1 job, 42 s of wall time (summed over jobs) on " + (
        "cpu: 0 GPU-hours, $0.00."
    )
    gpu = cost.run_cost(7200.0, {}, cost.Devices("H200", 8), None)
    assert "16 GPU-hours, no dollars (gpu.usd_per_gpu_hour is null)" in cost_line([{"cost": gpu}])


@pytest.mark.parametrize(
    ("seconds", "text"), [(42.0, "42 s"), (738.0, "12.3 min"), (12240.0, "3.4 h")]
)
def test_durations_read_in_the_unit_that_fits(seconds: float, text: str):
    assert duration(seconds) == text
