"""Keep the terminal to what concerns the user: each line once, no library chatter.

Every filter below names the message it drops and why the user need not act on it. Warnings that
can concern a user (a deprecation in s1exp's own code, a real numerical problem) still show.
"""

from __future__ import annotations

import logging
import os
import warnings

# (message regex, category, why it is not the user's concern)
DROPPED_WARNINGS: list[tuple[str, type[Warning], str]] = [
    # Lightning, when `srun` exists on a login node: s1exp submits through submitit, which
    # runs the job under srun itself.
    (r"The `srun` command is available on your system but is not used", UserWarning, "submitit"),
    # Lightning checks modules before s1exp's configure_model puts the loaded model in training
    # mode (s1exp.train.module).
    (r"Found \d+ module\(s\) in eval mode", UserWarning, "set to train mode by configure_model"),
    # Lightning 2.6 calls a torch pytree API that torch 2.13 deprecates: nothing for a user to do.
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", Warning, "inside Lightning"),
    # Lightning's WandbLogger passes W&B a setting W&B deprecated; s1exp never sets it.
    (r".*anonymous.*", Warning, "inside Lightning's WandbLogger"),
    # s1exp's data modules feed Lightning one process: loader workers would only copy the lists.
    (r".*does not have many workers", UserWarning, "in-memory token lists"),
]


def configure() -> None:
    """Install the filters; idempotent. Called by each s1exp process once Hydra set up logging."""
    for message, category, _why in DROPPED_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    # Lightning writes its INFO lines ("GPU available...", a litlogger tip, "`Trainer.fit`
    # stopped") through its own handler and, in a Hydra job, again through Hydra's: both are
    # dropped below WARNING, and s1exp's progress lines say what trains where. Its warnings and
    # errors reach the user once, through Hydra's handler. Imported first: its import adds them.
    import lightning.pytorch  # noqa: F401

    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "torchmetrics"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True
        logger.setLevel(logging.WARNING)
    # DeepSpeed logs "Setting accelerator to CPU" whenever it looks for a GPU on a CPU machine;
    # naming the accelerator up front answers its question.
    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    # transformers' "Loading weights" / "Writing model shards" bars fill logs with one bar per
    # model load; s1exp's own lines say which model loads.
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
