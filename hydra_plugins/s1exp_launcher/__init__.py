"""Hydra loads launcher classes only from the `hydra_plugins` package: this exposes s1exp's SLURM
launcher (s1exp/launcher.py) to it as `hydra/launcher=s1exp_slurm`."""

from hydra.core.config_store import ConfigStore

from s1exp import launcher


class S1SlurmLauncher(launcher.PreflightSlurmLauncher):
    """The launcher of conf/cluster/slurm_*.yaml."""


ConfigStore.instance().store(
    group="hydra/launcher", name="s1exp_slurm", node=launcher.S1SlurmQueueConf, provider="s1exp"
)
