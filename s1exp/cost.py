"""What a run cost: wall time, the devices it held, GPU-hours and dollars.

A cluster bills the GPUs a job holds for as long as it holds them, busy or not, so GPU-hours are
GPUs held x wall hours and dollars are GPU-hours x `gpu.usd_per_gpu_hour` (conf/gpu/*.yaml). The
GPUs held are the SLURM allocation when there is one (every node of the job, as the cluster
counts them), else the CUDA devices this process can see, else none (a CPU run costs 0 GPU-hours).
The paper's run, 26 minutes on 16 H100, is 6.9 H100-hours.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from s1exp.errors import ConfigError

PRICE_KEY = "gpu.usd_per_gpu_hour"
CPU = "cpu"
SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True)
class Devices:
    """The accelerators a job holds: `kind` is the GPU's name (or "cpu"), `gpus` their count."""

    kind: str
    gpus: int


def _count(text: str) -> int:
    """A plain count: "8"."""
    return int(text)


def _count_ids(text: str) -> int:
    """A list of GPU ids with ranges, as SLURM_JOB_GPUS writes it: "0,1,2,3" or "0-3,6"."""
    total = 0
    for part in filter(None, text.split(",")):
        low, _, high = part.partition("-")
        total += int(high) - int(low) + 1 if high else 1
    return total


def _count_typed(text: str) -> int:
    """`[type:]count` per GPU type, comma-separated, as --gpus/--gpus-per-node are written:
    "8", "h100:8", "a100:2,v100:1"."""
    return sum(int(part.rsplit(":", 1)[-1]) for part in filter(None, text.split(",")))


def _gpu_type(text: str) -> str | None:
    """The GPU type of a `[type:]count` value ("h100:8" -> "h100"), None without one."""
    kinds = [p.rsplit(":", 1)[0] for p in text.split(",") if ":" in p]
    return ",".join(kinds) or None


# Per node, most exact first: what SLURM gave this node, the ids it gave, what the job asked for.
SLURM_PER_NODE: tuple[tuple[str, Callable[[str], int]], ...] = (
    ("SLURM_GPUS_ON_NODE", _count),
    ("SLURM_JOB_GPUS", _count_ids),
    ("SLURM_GPUS_PER_NODE", _count_typed),
)
SLURM_TOTAL = "SLURM_GPUS"  # --gpus: the job's total over all its nodes
SLURM_NODES = ("SLURM_JOB_NUM_NODES", "SLURM_NNODES")
SLURM_TYPED = ("SLURM_GPUS_PER_NODE", SLURM_TOTAL)


def _read(env: Mapping[str, str], name: str, count: Callable[[str], int]) -> int | None:
    """A SLURM variable's count; None when unset or unreadable (a format this SLURM version
    writes differently must not fail a run that has already finished: the next one is tried)."""
    try:
        return count(env[name]) if env.get(name) else None
    except ValueError:
        return None


def slurm_nodes(env: Mapping[str, str]) -> int:
    """The job's node count (1 outside SLURM or when SLURM does not say)."""
    return next((n for k in SLURM_NODES if (n := _read(env, k, _count))), 1)


def slurm_gpus(env: Mapping[str, str]) -> int | None:
    """The GPUs of the job's whole SLURM allocation (all nodes), None when SLURM sets no GPU
    variable (not in SLURM, or a job that asked for none)."""
    for name, count in SLURM_PER_NODE:
        if (per_node := _read(env, name, count)) is not None:
            return per_node * slurm_nodes(env)
    return _read(env, SLURM_TOTAL, _count_typed)


def slurm_gpu_type(env: Mapping[str, str]) -> str | None:
    """The GPU type the job asked SLURM for ("h100"), None when it asked for a count only."""
    return next((t for k in SLURM_TYPED if env.get(k) and (t := _gpu_type(env[k]))), None)


def cuda_name() -> str | None:
    """The first visible CUDA device's name. Through NVML while CUDA is not initialized here, so
    that asking does not leave a CUDA context (memory on the GPU) in a process that may start a
    vLLM engine for the next job of a local sweep; torch's name otherwise."""
    import torch

    if not torch.cuda.is_initialized():
        name = _nvml_name(os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0].strip())
        if name:
            return name
    return torch.cuda.get_device_name(0)


def _nvml_name(visible: str) -> str | None:
    """NVML's name for a CUDA_VISIBLE_DEVICES entry (an index or a GPU UUID); None when NVML
    (nvidia-ml-py, which vLLM installs) is missing or cannot tell."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        try:
            if visible.isdigit():
                handle = pynvml.nvmlDeviceGetHandleByIndex(int(visible))
            else:
                handle = pynvml.nvmlDeviceGetHandleByUUID(visible)
            name = pynvml.nvmlDeviceGetName(handle)
        finally:
            pynvml.nvmlShutdown()
    except pynvml.NVMLError:
        return None
    return name.decode() if isinstance(name, bytes) else str(name)


def cuda_devices() -> tuple[int, str | None]:
    """The CUDA devices this process can see and the first one's name ((0, None) on CPUs)."""
    import torch

    count = torch.cuda.device_count()
    return (count, cuda_name()) if count else (0, None)


def held_devices(
    env: Mapping[str, str] | None = None,
    cuda: Callable[[], tuple[int, str | None]] = cuda_devices,
) -> Devices:
    """The devices this job holds: the SLURM allocation, else the visible CUDA devices, else
    the CPU. The name is CUDA's where it sees a GPU (SLURM knows only the type asked for)."""
    env = os.environ if env is None else env
    visible, name = cuda()
    gpus = slurm_gpus(env)
    if gpus is None:
        gpus = visible
    if gpus == 0:
        return Devices(CPU, 0)
    return Devices(name or slurm_gpu_type(env) or "gpu", gpus)


def usd_per_gpu_hour(cfg: DictConfig) -> float | None:
    """`gpu.usd_per_gpu_hour` checked: a finite number >= 0, or null (not priced: no dollars)."""
    value = OmegaConf.select(cfg, PRICE_KEY, default=None)
    if value is None:
        return None
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or value < 0:
        raise ConfigError(
            f"{PRICE_KEY}={value!r}: the price per GPU-hour must be a number >= 0 in US dollars "
            f"(e.g. {PRICE_KEY}=3.5), or null to log no dollars"
        )
    return float(value)


def gpu_hours(seconds: float, gpus: int) -> float:
    """GPUs held x wall hours: what a cluster bills."""
    return gpus * seconds / SECONDS_PER_HOUR


def usd(hours: float, price: float | None) -> float | None:
    """Dollars for `hours` GPU-hours: 0 without GPUs whatever the price, None when unpriced."""
    if hours == 0:
        return 0.0
    return None if price is None else hours * price


def spent(seconds: float, devices: Devices, price: float | None) -> dict[str, Any]:
    """Wall seconds, GPU-hours and dollars of `seconds` on `devices`."""
    hours = gpu_hours(seconds, devices.gpus)
    return {"wall_seconds": float(seconds), "gpu_hours": hours, "usd": usd(hours, price)}


def run_cost(
    wall_seconds: float,
    stages: Mapping[str, Mapping[str, Any]],
    devices: Devices,
    price: float | None,
    priced_as: str | None = None,
) -> dict[str, Any]:
    """results.json's `cost` block: this run's whole wall time on its devices, and per stage
    what that stage spent here (a reused stage only its look-up: it was paid for when built).
    `priced_as` names the gpu config whose price was used, so a run on another card shows it."""
    per_stage = {  # `reused` where the stage says (the base model's cache does not)
        name: spent(float(stage.get("seconds", 0.0)), devices, price)
        | ({"reused": stage["reused"]} if "reused" in stage else {})
        for name, stage in stages.items()
    }
    return {
        **spent(wall_seconds, devices, price),
        "device": devices.kind,
        "gpus": devices.gpus,
        "usd_per_gpu_hour": price,
        "priced_as": priced_as,
        "stages": per_stage,
    }


def job_cost(
    cfg: DictConfig, wall_seconds: float, stages: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """The cost block of the job running here: its devices found now, priced by cfg.gpu."""
    price = usd_per_gpu_hour(cfg)
    priced_as = OmegaConf.select(cfg, "gpu.name", default=None)
    return run_cost(wall_seconds, stages, held_devices(), price, priced_as)


def describe(block: Mapping[str, Any]) -> str:
    """One line of a cost block: "26.0 min on 16 x NVIDIA H100: 6.93 GPU-hours, $20.80"."""
    where = CPU if not block["gpus"] else f"{block['gpus']} x {block['device']}"
    text = f"{block['wall_seconds'] / 60:.1f} min on {where}: {block['gpu_hours']:.3g} GPU-hours"
    if block["usd"] is None:
        return text + " (not priced: gpu.usd_per_gpu_hour is null)"
    return text + f", ${block['usd']:.2f} at ${block['usd_per_gpu_hour']:.2f}/GPU-hour"
