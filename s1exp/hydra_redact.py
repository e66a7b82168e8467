"""The Hydra callback that keeps secrets (s1exp.secrets) out of what Hydra itself saves and logs.

Hydra writes `<run>/.hydra/{config,hydra,overrides}.yaml` before the job starts and the sweep's
`multirun.yaml` before its first job, all with the command line's values (`+logger.api_key=...`),
and its launcher logs each job's overrides. This callback redacts every log record of the
process from the run's start on, and rewrites those files in place when a job starts (before the
task runs) and when a sweep ends. It is the first of conf/config.yaml's `hydra.callbacks`.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from s1exp.secrets import redact, redact_log_records, redact_override

JOB_FILES = ("config.yaml", "hydra.yaml", "overrides.yaml")
SWEEP_FILE = "multirun.yaml"


def rewrite_redacted(path: Path) -> bool:
    """Replace a saved YAML by its redacted copy, unresolved as Hydra wrote it (interpolations
    such as `${oc.env:HF_TOKEN}` stay); True when anything was redacted."""
    if not path.is_file():
        return False
    saved = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    redacted = redact(saved)
    if redacted == saved:
        return False
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")  # jobs of a sweep race
    OmegaConf.save(OmegaConf.create(redacted), tmp)
    os.replace(tmp, path)
    return True


def _sweep_file(config: DictConfig) -> Path:
    return Path(config.hydra.runtime.cwd, config.hydra.sweep.dir) / SWEEP_FILE


class RedactSecrets(Callback):
    """Redacts secrets from the log records of the process and from Hydra's saved configs."""

    @staticmethod
    def _start(config: DictConfig) -> None:
        redact_log_records()
        for override in config.hydra.overrides.task:  # remembers secret values given there
            redact_override(str(override))

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._start(config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._start(config)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Runs after Hydra saved the job's files and before the task: also in a SLURM job,
        where neither start callback ran."""
        self._start(config)
        subdir = config.hydra.get("output_subdir")
        if subdir is not None:
            folder = Path(config.hydra.runtime.output_dir) / str(subdir)
            for name in JOB_FILES:
                rewrite_redacted(folder / name)
        if config.hydra.mode == RunMode.MULTIRUN:
            rewrite_redacted(_sweep_file(config))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        rewrite_redacted(_sweep_file(config))
