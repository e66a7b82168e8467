"""The local launcher (cluster=local): Hydra's basic launcher, one job after another in this
process, plus what a long sweep needs (s1exp.sweep_jobs): jobs finished by an earlier run of the
same sweep folder are skipped, each job's start and the sweep's progress are one line each, and
overrides are printed with secrets redacted."""

from __future__ import annotations

from collections.abc import Sequence

from hydra._internal.core_plugins.basic_launcher import BasicLauncher
from hydra.core.utils import JobReturn, configure_log, run_job
from omegaconf import open_dict

from s1exp.sweep_jobs import SweepProgress, finished_job


class LocalLauncher(BasicLauncher):
    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        assert self.hydra_context is not None and self.config is not None
        assert self.task_function is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        progress = SweepProgress(initial_job_idx, len(job_overrides))
        runs: list[JobReturn] = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            config = self.hydra_context.config_loader.load_sweep_config(
                self.config, list(overrides)
            )
            with open_dict(config):
                config.hydra.job.id = idx
                config.hydra.job.num = idx
            done = finished_job(config, overrides)
            if done is not None:
                progress.skipped(idx, overrides)
                runs.append(done)
                continue
            progress.starting(idx, overrides)
            runs.append(
                run_job(
                    hydra_context=self.hydra_context,
                    task_function=self.task_function,
                    config=config,
                    job_dir_key="hydra.sweep.dir",
                    job_subdir_key="hydra.sweep.subdir",
                )
            )
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
            progress.finished()
        return runs
