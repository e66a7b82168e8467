"""`python -m s1exp`: the Hydra app. One job = one resolved config = select -> train -> evaluate."""

from __future__ import annotations

import os
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> float:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from s1exp.pipeline import run  # heavy imports after Hydra has parsed the command line

    results = run(cfg, Path(HydraConfig.get().runtime.output_dir))
    return float(results["metrics"]["accuracy"]) if "metrics" in results else float("nan")


if __name__ == "__main__":
    main()
