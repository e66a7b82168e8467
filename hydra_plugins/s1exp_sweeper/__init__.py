"""`hydra/sweeper=grids`: Hydra's basic sweeper over a union of grids (Figure 4a's caps plus
"Wait" counts, Table 3's method families, `+ablation=paper`'s tables) in one multirun.

Hydra loads sweeper classes only from the `hydra_plugins` package; the expansion itself is the
pure function `expand_grids` in grids.py. An ablation selects it with
`defaults: [{override /hydra/sweeper: grids}]` and lists `hydra.sweeper.grids`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Dict, Optional  # noqa: UP035

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn
from omegaconf import OmegaConf

from hydra_plugins.s1exp_sweeper.grids import expand_grids
from s1exp.errors import exiting_on_config_error


@dataclass
class GridsSweeperConf:
    """`params` as the basic sweeper's, applied to every grid; `grids`: name -> {key: value}
    in file order (a YAML list or "a,b" string is a sweep); no grids: the basic sweeper."""

    _target_: str = "hydra_plugins.s1exp_sweeper.GridsSweeper"
    max_batch_size: Optional[int] = None  # noqa: UP045 - OmegaConf reads typing's spelling
    params: Optional[Dict[str, Any]] = None  # noqa: UP006, UP045
    grids: Optional[Dict[str, Any]] = None  # noqa: UP006, UP045


class GridsSweeper(BasicSweeper):
    """BasicSweeper whose job list is expand_grids' (a ConfigError in a grid exits 2 with one
    line naming it, before any job runs); batching, validation and launching are the basic
    sweeper's."""

    def __init__(
        self,
        max_batch_size: int | None = None,
        params: dict[str, Any] | None = None,
        grids: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.grids = grids or {}
        self.jobs: list[list[str]] | None = None

    def sweep(self, arguments: list[str]) -> Sequence[Sequence[JobReturn]]:
        if not self.grids:
            return super().sweep(arguments)
        assert self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        params, grids = (plain(x) for x in (self.params, self.grids))
        with exiting_on_config_error():
            self.jobs = expand_grids(params, grids, arguments, parser)
        return super().sweep(arguments)

    def split_arguments(  # type: ignore[override]  # BasicSweeper.sweep calls it through self
        self, overrides: Any, max_batch_size: int | None
    ) -> list[list[list[str]]]:
        """The batches of the grids' jobs (BasicSweeper.sweep parsed `params` and the command
        line into `overrides`; with grids those are already inside self.jobs)."""
        if self.jobs is None:
            return BasicSweeper.split_arguments(overrides, max_batch_size)
        return list(self.split_overrides_to_chunks(self.jobs, max_batch_size))


def plain(node: Any) -> Any:
    """A config node as plain dicts and lists, in file order (OmegaConf keeps YAML order)."""
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


ConfigStore.instance().store(
    group="hydra/sweeper", name="grids", node=GridsSweeperConf, provider="s1exp"
)
