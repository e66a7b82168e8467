"""A union of grids as one job list: the pure expansion behind `hydra/sweeper=grids`.

Several paper experiments are not one cartesian product: Figure 4a is the thinking caps *plus*
"Wait" x1/2/4/6 at the automatic budget, Table 3 is one grid per method family. Each grid is
expanded like Hydra's basic sweeper (its values, the sweeper's shared `params` and the
command-line sweep), the grids are concatenated in file order, and every job is tagged
`sweep_part=<grid name>` so the sweep's summary can split its report by table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException

from s1exp.errors import ConfigError

PART_KEY = "sweep_part"  # conf/config.yaml: the grid a job came from (null outside a grids sweep)
WHERE = "hydra.sweeper.grids"
CHOICE = "_choice_"  # inside a group's mapping in a grid: the group's option
LIST_HINT = "write a sweep as a YAML list [a, b] or the string 'a,b'"
# "<part>/<sub>" or "<part>": letters, digits, _ . - (a plain override value, no quoting).
GRID_NAME = re.compile(r"[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)?")


def part_of(grid: str) -> str:
    """The report part a grid belongs to: "figure4a/caps" -> "figure4a"."""
    return grid.split("/", 1)[0]


def _text(value: Any) -> str:
    """One override value as Hydra's parser reads it (true, null, 16, [a,b])."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, list | tuple):
        return "[" + ",".join(map(_text, value)) + "]"
    return str(value)


def _flatten(where: str, node: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as dotted override keys: {method: {_choice_: tcc, tokens: 32}} ->
    {"method": "tcc", "method.tokens": 32}. A grid writes a group's option and its fields this
    way when the command line must reach a field (hydra.sweeper.grids.tcc.method.tokens=[...]);
    a flat YAML key "method.tokens" beside "method" is the same setting, and a later spelling of
    a key wins."""
    flat: dict[str, Any] = {}
    for key, value in node.items():
        if key == CHOICE:
            if not prefix:
                raise ConfigError(
                    f"{where}: {CHOICE} names a config group's option, so it belongs inside a "
                    "group's mapping, e.g. method: {_choice_: tcc, tokens: 32}"
                )
            flat[prefix[:-1]] = value
            continue
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            if not value:
                raise ConfigError(f"{where}.{path} is an empty mapping; give it a value")
            flat |= _flatten(where, value, f"{path}.")
        else:
            flat[path] = value
    return flat


def settings(where: str, node: Mapping[str, Any]) -> list[str]:
    """KEY: VALUE settings as override strings: a YAML list is a sweep over its items (a list
    item is a list value), a string may use Hydra's sweep syntax ("toy16,toy32")."""
    out = []
    for key, value in _flatten(where, node).items():
        if isinstance(value, list | tuple):
            if not value:
                raise ConfigError(f"{where}.{key} is an empty list; give at least one value")
            if any(isinstance(v, Mapping) for v in value):
                raise ConfigError(f"{where}.{key}: a swept value cannot be a mapping; {value!r}")
            out.append(f"{key}={','.join(map(_text, value))}")
        else:
            out.append(f"{key}={_text(value)}")
    return out


def grid_overrides(name: str, grid: Mapping[str, Any] | None) -> list[str]:
    """One grid's settings as override strings; an empty (or null) grid is one job."""
    where = f"{WHERE}.{name}"
    if not GRID_NAME.fullmatch(name):
        raise ConfigError(
            f"{where}: a grid name is <part> or <part>/<sub> of letters, digits, _ . - "
            "(e.g. figure4a/caps); rename it"
        )
    if grid is None:
        return []
    if not isinstance(grid, Mapping):
        raise ConfigError(
            f"{where} must be a mapping of KEY: VALUE settings, got {type(grid).__name__} "
            f"{grid!r}; write e.g. {name}: {{budget: [toy16, toy32]}}"
        )
    return settings(where, grid)


def _product(
    parser: OverridesParser, where: str, overrides: Sequence[str], hint: str = LIST_HINT
) -> list[list[str]]:
    """The basic sweeper's cartesian product of `overrides` (later settings of a key win)."""
    try:
        parsed = parser.parse_overrides(list(overrides))
        return BasicSweeper.split_arguments(parsed, None)[0]
    except HydraException as error:  # OverrideParseException, or a non-discrete sweep
        message = " ".join(str(error).split())
        raise ConfigError(f"{where}: {message}; {hint}") from error


def expand_grids(
    params: Mapping[str, Any] | None,
    grids: Mapping[str, Mapping[str, Any] | None] | None,
    arguments: Sequence[str],
    parser: OverridesParser | None = None,
) -> list[list[str]]:
    """Every job's overrides. No grids: exactly the basic sweeper (params, then the command
    line). With grids: per grid in order, the product of `params`, the grid's settings and the
    command line (a later setting of the same key wins), each job ending in sweep_part=<grid>."""
    parser = parser or OverridesParser.create()
    if not grids:  # BasicSweeper._parse_config's spelling of params
        basic = [f"{key}={value}" for key, value in (params or {}).items()]
        where = "hydra.sweeper.params / the command line"
        return _product(parser, where, basic + [*arguments], "write a sweep as a,b")
    shared = settings("hydra.sweeper.params", params or {})
    jobs = []
    for name, grid in grids.items():
        own = grid_overrides(name, grid)
        for override in own:  # a bad value is named by its grid and key
            _product(parser, f"{WHERE}.{name}.{override.split('=', 1)[0]}", [override])
        where = f"{WHERE}.{name} with hydra.sweeper.params and the command line"
        for job in _product(parser, where, shared + own + [*arguments]):
            jobs.append([*job, f"{PART_KEY}={name}"])
    return jobs
