"""OmegaConf resolvers of s1exp: what one job asks SLURM for, computed from the job's own config.

The cluster presets write `nodes: ${s1exp.job:nodes}` instead of interpolating `train.devices`,
because an evaluation-only job (train=none, or a model already in the store) needs only its
engine's GPUs.
Import this module before composing a config that uses them (`python -m s1exp` does; so does any
Hydra process with s1exp installed, through the hydra_plugins.s1exp_launcher plugin).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from s1exp.keys import model_key
from s1exp.planning.config import engine_tensor_parallel
from s1exp.store import ArtifactStore


@dataclass(frozen=True)
class JobShape:
    """The allocation one job needs: a training job runs one task per training device; an
    evaluation-only job runs one task that owns all GPUs of its engine (vLLM tensor parallel)."""

    nodes: int
    tasks_per_node: int
    gpus_per_node: int

    def per_task(self, per_gpu: float) -> int:
        """A per-GPU quantity (CPUs) split over the tasks of a node; at least 1."""
        return max(1, int(per_gpu * self.gpus_per_node // self.tasks_per_node))

    def per_node(self, per_gpu: float) -> int:
        """A per-GPU quantity (GB of host memory) summed over a node's GPUs."""
        return int(per_gpu * self.gpus_per_node)


def model_trained(cfg: DictConfig) -> bool:
    """Whether the store already holds this config's trained model (the job will reuse it)."""
    store = ArtifactStore(Path(cfg.paths.store).expanduser().resolve())
    return store.exists("model", model_key(cfg))


def job_shape(cfg: DictConfig) -> JobShape:
    """Size a job from its config: a train config with `devices` trains (nodes x devices tasks,
    and at least the engine's GPUs for the evaluation after it), unless its model is already in
    the store; train=none, or a model trained before, only evaluates (the engine's GPUs)."""
    devices = OmegaConf.select(cfg, "train.devices", default=None)
    if devices is None or model_trained(cfg):
        return JobShape(nodes=1, tasks_per_node=1, gpus_per_node=engine_tensor_parallel(cfg))
    nodes = int(OmegaConf.select(cfg, "train.num_nodes", default=1))
    return JobShape(nodes, int(devices), max(int(devices), engine_tensor_parallel(cfg)))


# Fields the presets may ask for; the optional argument is a per-GPU amount.
FIELDS: dict[str, Callable[[JobShape, float], int]] = {
    "nodes": lambda shape, _: shape.nodes,
    "tasks_per_node": lambda shape, _: shape.tasks_per_node,
    "gpus_per_node": lambda shape, _: shape.gpus_per_node,
    "cpus_per_task": JobShape.per_task,
    "mem_gb": JobShape.per_node,
}


def job_field(field: str, per_gpu: float = 0, *, _root_: DictConfig) -> int:
    """`${s1exp.job:<field>[,<per GPU>]}`: one SLURM request of the job whose config this is."""
    if field not in FIELDS:
        raise ValueError(f"s1exp.job: unknown field {field!r}; use one of {sorted(FIELDS)}")
    return FIELDS[field](job_shape(_root_), per_gpu)


def register() -> None:
    """Register the resolvers (idempotent: re-registering replaces them)."""
    OmegaConf.register_new_resolver("s1exp.job", job_field, replace=True)


register()
