"""`python -m s1exp`: the Hydra app. One job = one resolved config = select -> train -> evaluate.

A setting that cannot work (s1exp.errors.ConfigError: s1exp.preflight at the start of
s1exp.pipeline.run, before anything is allocated, or a later stage) ends the run with one line,
`s1exp: error: <message>`, on stderr and exit code 2: in a single run, in every job of a local
multirun, and, through s1exp.launcher, in SLURM sweeps (before submission, or handed back from
the job).
"""

from __future__ import annotations

import os
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

import s1exp.resolvers  # noqa: F401  (register ${s1exp.job:...} before Hydra composes)
from s1exp.errors import exiting_on_config_error

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> float:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    with exiting_on_config_error():
        from s1exp.pipeline import run  # heavy imports after Hydra has parsed the command line

        results = run(cfg, Path(HydraConfig.get().runtime.output_dir))
    accuracies = [m["accuracy"] for m in results.get("metrics", {}).values()]
    return sum(accuracies) / len(accuracies) if accuracies else float("nan")  # for sweepers


if __name__ == "__main__":
    main()
