"""Errors a user fixes by changing a setting: printed as one line, never as a traceback."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

ERROR_PREFIX = "s1exp: error: "
CONFIG_ERROR_EXIT = 2


class ConfigError(ValueError):
    """A setting that cannot work; the message names the field and the fix."""


def exit_config_error(error: ConfigError) -> NoReturn:
    """Print the one-line error (no traceback) and exit 2, like argparse does for bad flags.
    The SystemExit keeps the error as its cause: a SLURM job hands it back (s1exp.launcher)."""
    print(f"{ERROR_PREFIX}{error}", file=sys.stderr, flush=True)
    raise SystemExit(CONFIG_ERROR_EXIT) from error


@contextmanager
def exiting_on_config_error() -> Iterator[None]:
    """Turn a ConfigError into the one-line error and exit 2. SystemExit passes through Hydra's
    run_job and run_and_report, which would otherwise print a traceback and exit 1."""
    try:
        yield
    except ConfigError as error:
        exit_config_error(error)
    except Exception as error:  # Hydra's instantiate wraps what a _target_ raises
        cause = config_error_cause(error)
        if cause is None:
            raise
        exit_config_error(cause)


def config_error_cause(error: BaseException) -> ConfigError | None:
    """The ConfigError an exception was raised from, if any (e.g. inside `instantiate`)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, ConfigError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def brief(error: BaseException) -> str:
    """An underlying error in one short line, to quote inside a ConfigError's message."""
    lines = str(error).strip().splitlines()
    return f"{error.__class__.__name__}: {lines[0][:160] if lines else ''}"
