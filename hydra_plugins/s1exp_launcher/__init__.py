"""Hydra loads launcher classes only from the `hydra_plugins` package: this exposes s1exp's SLURM
launcher (s1exp/launcher.py) to it as `hydra/launcher=s1exp_slurm` and its local one
(s1exp/local_launcher.py) as `hydra/launcher=s1exp_local`."""

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore

from s1exp import launcher, local_launcher


class S1SlurmLauncher(launcher.PreflightSlurmLauncher):
    """The launcher of conf/cluster/slurm_*.yaml."""


ConfigStore.instance().store(
    group="hydra/launcher", name="s1exp_slurm", node=launcher.S1SlurmQueueConf, provider="s1exp"
)


class S1LocalLauncher(local_launcher.LocalLauncher):
    """The launcher of conf/cluster/local.yaml."""


@dataclass
class S1LocalLauncherConf:
    _target_: str = "hydra_plugins.s1exp_launcher.S1LocalLauncher"


ConfigStore.instance().store(
    group="hydra/launcher", name="s1exp_local", node=S1LocalLauncherConf, provider="s1exp"
)
