"""SLURM submission that refuses bad input first and sizes each job by its own config.

hydra-submitit-launcher submits every job of a sweep with one set of sbatch parameters, resolved
from the sweep's base config, and finds bad settings only when a job starts on a GPU node. This
launcher loads every job's config first and runs `s1exp.preflight.check(cfg, local=False)` on each:
one bad job stops the sweep with a one-line error before anything is submitted. It then groups
the jobs by their own resolved `hydra.launcher` parameters (s1exp/resolvers.py sizes them), so an
evaluation-only job asks for its engine's GPUs while a training job of the same sweep asks for the
trainer's nodes. Hydra loads launchers only from the `hydra_plugins` package:
hydra_plugins/s1exp_launcher exposes this one as `hydra/launcher=s1exp_slurm`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra.experimental.callback import Callback
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf, SlurmQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
from omegaconf import DictConfig, OmegaConf, open_dict

import s1exp.resolvers  # noqa: F401  (the presets' ${s1exp.job:...} must resolve here and in jobs)
from s1exp import preflight
from s1exp.errors import ConfigError, exit_config_error, exiting_on_config_error
from s1exp.secrets import redact
from s1exp.sweep_jobs import SweepProgress, finished_job

log = logging.getLogger(__name__)

# Launcher settings that are not sbatch/submitit parameters.
OWN_KEYS = ("_target_", "dry_run")
# Parameters hydra-submitit passes to the executor's constructor, not to update_parameters.
INIT_KEYS = ("submitit_folder", "max_num_timeout")


class RequireMultirun(Callback):
    """Hydra uses `hydra.launcher` only in multirun mode: without `-m` a SLURM preset would be
    ignored and the job would run on this (login) machine. Refuse before the job starts."""

    def __init__(self, cluster: str) -> None:
        self.cluster = cluster

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        exit_config_error(
            ConfigError(
                f"cluster={self.cluster} submits SLURM jobs only in a multirun; add -m "
                "(without it the job would run here, not on the cluster)"
            )
        )


@dataclass
class S1SlurmQueueConf(SlurmQueueConf):
    """submitit_slurm's settings plus `dry_run`: print the sbatch scripts, submit nothing."""

    _target_: str = "hydra_plugins.s1exp_launcher.S1SlurmLauncher"
    dry_run: bool = False


def job_parameters(cfg: DictConfig) -> dict[str, Any]:
    """The launcher parameters of one job, resolved against that job's own config."""
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert isinstance(params, dict)
    return {k: v for k, v in params.items() if k not in OWN_KEYS}


def executor_class(render_only: bool) -> type:
    """submitit's SlurmExecutor, or a subclass that only renders scripts and so needs no `srun`
    on this machine (dry runs and tests on machines without SLURM). Imported lazily: Hydra
    imports this module while it scans plugins, for every run."""
    from submitit import SlurmExecutor

    if not render_only:
        return SlurmExecutor

    class SbatchRenderer(SlurmExecutor):
        @classmethod
        def affinity(cls) -> int:
            return 1

    return SbatchRenderer


def make_executor(params: dict[str, Any], render_only: bool = False) -> Any:
    """A SLURM executor set up as hydra-submitit's launcher sets up submitit's AutoExecutor:
    unset parameters dropped, generic names (timeout_min, mem_gb, ...) translated by the
    executor, the others passed as they are."""
    executor = executor_class(render_only)(
        folder=params["submitit_folder"], max_num_timeout=params["max_num_timeout"]
    )
    generic = set(OmegaConf.structured(BaseQueueConf).keys()) - set(INIT_KEYS)
    given = {k: v for k, v in params.items() if v is not None and k not in INIT_KEYS}
    executor.update_parameters(
        **executor._convert_parameters({k: v for k, v in given.items() if k in generic}),
        **{k: v for k, v in given.items() if k not in generic},
    )
    return executor


def render_sbatch(executor: Any, count: int) -> str:
    """The sbatch script `executor.map_array` submits for `count` jobs (an array when
    count > 1), built by submitit's own template without writing or submitting anything."""
    from submitit.slurm.slurm import _make_sbatch_string

    params = dict(executor.parameters)
    if count > 1:
        params["map_count"] = count
    return _make_sbatch_string(
        command=executor._submitit_command_str, folder=executor.folder, **params
    )


class PreflightSlurmLauncher(SlurmLauncher):
    """hydra-submitit's SLURM launcher with preflight checks and per-job sizing."""

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        jobs = [(initial_job_idx + i, list(o)) for i, o in enumerate(job_overrides)]
        progress = SweepProgress(initial_job_idx, len(jobs))
        with exiting_on_config_error():
            groups, finished = self._checked_groups(jobs)
        for idx, _ in jobs:
            if idx in finished:
                progress.skipped(idx, finished[idx].overrides or [])
        if self.params.get("dry_run"):
            self._print_dry_run(groups)
            raise SystemExit(0)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            sweep_dir.chmod(int(str(self.config.hydra.sweep.mode), 8))
        log.info(f"Submitit 'slurm' sweep output dir : {sweep_dir}")
        submitted = {}
        for params, members in groups:
            submitted.update(self._submit(params, members))
        results = []
        for idx, _ in jobs:
            if idx in finished:
                results.append(finished[idx])
                continue
            results.append(self._result(submitted[idx]))
            progress.finished()
        return results

    def _checked_groups(
        self, jobs: list[tuple[int, list[str]]]
    ) -> tuple[list[tuple[dict[str, Any], list[tuple[int, list[str]]]]], dict[int, JobReturn]]:
        """Load and check every job's config; group the jobs still to run by their sbatch
        parameters. Jobs an earlier run of this sweep folder finished are returned apart (by
        job number), with their kept results: nothing is submitted for them."""
        assert self.hydra_context is not None and self.config is not None
        groups: dict[str, tuple[dict[str, Any], list[tuple[int, list[str]]]]] = {}
        finished: dict[int, JobReturn] = {}
        for idx, overrides in jobs:
            cfg = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
            with open_dict(cfg):
                cfg.hydra.job.num = idx  # the job's folder (hydra.sweep.subdir) uses it
            done = finished_job(cfg, overrides)
            if done is not None:
                finished[idx] = done
                continue
            try:
                preflight.check(cfg, local=False)
            except ConfigError as error:
                where = " ".join(redact(filter_overrides(overrides))) or "no overrides"
                raise ConfigError(f"{error} (sweep job #{idx}: {where})") from None
            params = job_parameters(cfg)
            key = json.dumps(params, sort_keys=True, default=str)
            groups.setdefault(key, (params, []))[1].append((idx, overrides))
        return list(groups.values()), finished

    def _submit(self, params: dict[str, Any], members: list[tuple[int, list[str]]]) -> dict:
        """Submit one group (one sbatch array) and return its jobs by job number."""
        executor = make_executor(params)
        log.info(
            f"\t{len(members)} job(s) with nodes={params['nodes']} "
            f"tasks_per_node={params['tasks_per_node']} gpus_per_node={params['gpus_per_node']}"
        )
        args = []
        for idx, overrides in members:
            log.info(f"\t#{idx} : {' '.join(redact(filter_overrides(overrides)))}")
            args.append((overrides, "hydra.sweep.dir", idx, f"job_id_for_{idx}"))
        state = Singleton.get_state()
        calls = [(*a, state) for a in args]
        jobs = executor.map_array(self, *zip(*calls, strict=True))
        return {idx: job for (idx, _), job in zip(members, jobs, strict=True)}

    def __call__(
        self,
        sweep_overrides: list[str],
        job_dir_key: str,
        job_num: int,
        job_id: str,
        singleton_state: dict[type, Singleton],
    ) -> JobReturn:
        """Runs inside the SLURM job. A ConfigError there (a machine-local check, e.g. no CUDA
        on the node) exits the task function with SystemExit(2); return it as the job's failed
        result instead, so the job writes a result and the submitter can print the one line."""
        try:
            return super().__call__(sweep_overrides, job_dir_key, job_num, job_id, singleton_state)
        except SystemExit as stop:
            if not isinstance(stop.__cause__, ConfigError):
                raise
            failed = JobReturn(overrides=list(sweep_overrides), status=JobStatus.FAILED)
            failed.return_value = stop.__cause__
            return failed

    @staticmethod
    def _result(job: Any) -> JobReturn:
        """The job's JobReturn; a job that stopped on a ConfigError ends the sweep with that
        one line and exit 2, as a local run does."""
        result = job.results()[0]
        error = result._return_value if result.status == JobStatus.FAILED else None
        if isinstance(error, ConfigError):
            exit_config_error(ConfigError(f"{error} (SLURM job {job.job_id})"))
        return result

    @staticmethod
    def _print_dry_run(groups: list[tuple[dict[str, Any], list[tuple[int, list[str]]]]]) -> None:
        for params, members in groups:
            numbers = ", ".join(f"#{idx}" for idx, _ in members)
            print(f"# dry run: sbatch script for sweep job(s) {numbers} (not submitted)")
            executor = make_executor(params, render_only=True)
            print(render_sbatch(executor, len(members)), flush=True)
