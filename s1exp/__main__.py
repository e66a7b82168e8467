"""`python -m s1exp`: the Hydra app. One job = one resolved config = select -> train -> evaluate.

A setting that cannot work (s1exp.errors.ConfigError: s1exp.preflight at the start of
s1exp.pipeline.run, before anything is allocated, or a later stage) ends the run with one line,
`s1exp: error: <message>`, on stderr and exit code 2: in a single run, in every job of a local
multirun, and, through s1exp.launcher, in SLURM sweeps (before submission, or handed back from
the job). An unknown config option (`model=nope`, `+ablation=nope`) ends the same way, naming the
group and its valid options; HYDRA_FULL_ERROR=1 adds the traceback.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hydra
import hydra._internal.utils as hydra_utils
from hydra.core.hydra_config import HydraConfig
from hydra.errors import MissingConfigException
from omegaconf import DictConfig

import s1exp.resolvers  # noqa: F401  (register ${s1exp.job:...} before Hydra composes)
from s1exp.errors import (
    ConfigError,
    config_error_cause,
    exit_config_error,
    exiting_on_config_error,
)

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")


def full_error() -> bool:
    """HYDRA_FULL_ERROR=1, Hydra's switch for complete stack traces: s1exp's errors honour it."""
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


@contextmanager
def traceback_on_full_error() -> Iterator[None]:
    """With HYDRA_FULL_ERROR=1, a ConfigError's traceback comes before its one line (exit 2 as
    always), to find where a setting was refused."""
    try:
        yield
    except Exception as error:
        if full_error() and config_error_cause(error) is not None:
            traceback.print_exc()
        raise


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> float:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    with exiting_on_config_error(), traceback_on_full_error():
        from s1exp.pipeline import run  # heavy imports after Hydra has parsed the command line
        from s1exp.sweep_jobs import mean_accuracy

        results = run(cfg, Path(HydraConfig.get().runtime.output_dir))
    return mean_accuracy(results)  # for sweepers


def missing_config_error(error: MissingConfigException) -> ConfigError:
    """`model=nope`, `+ablation=nope`: the group, the option and the valid ones in one line,
    instead of Hydra's multi-line message with its config search path."""
    missing = error.missing_cfg_file or ""
    group, _, option = missing.rpartition("/")
    if not group or not error.options:  # e.g. --config-name nope: keep Hydra's first line
        first = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        return ConfigError(f"{first}; check --config-name/--config-dir and the defaults list")
    return ConfigError(
        f"{group}={option}: no such option in config group {group!r}; valid options: "
        f"{', '.join(error.options)} (or your own {group}/{option}.yaml under a --config-dir)"
    )


def one_line_config_errors(run_and_report: Callable[[Callable[[], Any]], Any]) -> Callable:
    """Wrap Hydra's run_and_report, which composes the config and runs the app: Hydra has no hook
    for composition errors and prints a missing option over many lines, exit 1. Here it becomes
    the one-line `s1exp: error:` and exit 2 (SystemExit passes through Hydra); with
    HYDRA_FULL_ERROR=1 Hydra's own report (a traceback) is kept."""

    def report(func: Callable[[], Any]) -> Any:
        def one_line() -> Any:
            try:
                return func()
            except MissingConfigException as error:
                if full_error():
                    raise  # Hydra's own report: the traceback
                exit_config_error(missing_config_error(error))

        return run_and_report(one_line)

    return report


def cli() -> None:
    """`python -m s1exp`: the Hydra app with one-line errors for unknown config options."""
    hydra_utils.run_and_report = one_line_config_errors(hydra_utils.run_and_report)
    main()


if __name__ == "__main__":
    cli()
