"""Per-GPU memory for training and for vLLM, from the config alone, before a job is queued.

    python -m s1exp.plan model=qwen2.5-32b-instruct train=s1 strategy=fsdp
    python -m s1exp.plan model=qwen2.5-32b-instruct train=s1_4k strategy=fsdp train.num_nodes=1
    python -m s1exp.plan model=s1-32b train=none engine=vllm benchmark=[aime24,math500]

Composes the config as `python -m s1exp` does (same overrides; `gpu=h200` etc. picks the card)
and prints one table per phase and a verdict line each: training (weights, gradients, optimizer
state, fp32 master copies, what is gathered in flight, activations with and without
checkpointing, offloaded state) and evaluation (vLLM weights, KV cache, how many max-length
sequences fit at each tensor-parallel size, and the suggested one), then the GPU-hours the job
will take (training from FLOPs at the MFU of the paper's 26 minutes on 16 H100, evaluation from
the thinking tokens it decodes). The formulas are in s1exp/planning/memory.py and hours.py.
`check_fits` is the preflight check built on the same numbers.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from s1exp.errors import ConfigError, exiting_on_config_error

# The planner's API (preflight and the tests use these names from here).
from s1exp.planning.config import (  # noqa: F401
    architecture,
    architecture_from_checkpoint,
    architecture_from_hf_config,
    engine_setup,
    engine_tensor_parallel,
    is_vllm,
    train_setup,
    trains_on_gpu,
)
from s1exp.planning.hours import hours_report, settings
from s1exp.planning.memory import longest_fitting_block
from s1exp.planning.report import (  # noqa: F401
    EVAL_SEQUENCES,
    eval_report,
    report,
    suggested_tp,
    train_report,
)

CONF = Path(__file__).resolve().parent.parent / "conf"
# GPU-hours settings (s1exp/planning/hours.py HoursSettings): --tokens-per-example etc., each
# over the config key / default of the same name
HOURS_FLAGS = {
    "tokens_per_example": (float, "mean tokens of a training example (data.tokens_per_example)"),
    "examples": (int, "training examples (default selection.size; selection=full: the pool)"),
    "hbm_tb_s": (float, "HBM bandwidth per GPU in TB/s (gpu.hbm_tb_s; default: by gpu.name)"),
    "decode_efficiency": (float, "share of the HBM bandwidth a decode step attains (0.5)"),
    "decode_tokens_per_s": (float, "a measured decode rate per replica; replaces the model"),
}
log = logging.getLogger(__name__)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def check_fits(
    cfg: DictConfig, cuda: bool | None = None, longest_example: int | None = None
) -> None:
    """Refuse a GPU run the planner says does not fit (CPU runs are not planned against GPU
    memory): training when it targets GPUs, evaluation when it will run on one.

    Training is planned at the longest training example once it is known (the train stage calls
    this after tokenizing, before loading the model). Before that, at `train.block_size`, only a
    run that fits at no sequence length is refused; a block longer than what fits is a warning,
    since examples are usually far shorter than the block (s1K at 32768: "no sample truncated").
    `preflight.memory=false` skips the check when you know better than the estimate.
    """
    arch = architecture(cfg)
    if arch is None or not OmegaConf.select(cfg, "preflight.memory", default=True):
        return
    cuda = _cuda() if cuda is None else cuda
    where = f"model={cfg.model.name} on {cfg.gpu.name} (python -m s1exp.plan for the table)"
    problems = []
    setup = train_setup(cfg)
    gpu_training = setup is not None and trains_on_gpu(cfg, cuda)
    if gpu_training:
        if longest_example is not None:
            setup = setup.with_(block_size=min(longest_example, setup.block_size))
        _, verdict = train_report(arch, setup, cfg.gpu)
        fits_some = longest_fitting_block(arch, setup, cfg.gpu.memory_gib) > 0
        if "does not fit" in verdict and longest_example is None and fits_some:
            log.warning("%s: %s; checked again at the longest training example", where, verdict)
        elif "does not fit" in verdict:
            if longest_example is not None:
                verdict += f" (the longest training example has {longest_example:,} tokens)"
            problems.append(verdict)
    tp = engine_tensor_parallel(cfg)
    on_gpu = cfg.engine.get("device", "auto") != "cpu"
    if on_gpu and (cuda or gpu_training or (is_vllm(cfg) and tp > 1)):
        _, verdict = eval_report(arch, cfg)
        if "does not fit" in verdict:
            problems.append(verdict)
    if problems:
        raise ConfigError(f"{where}: " + " | ".join(problems) + " (or preflight.memory=false)")


def compose(overrides: list[str]) -> DictConfig:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return hydra_compose("config", overrides=overrides)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m s1exp.plan", description=__doc__.split("\n")[0]
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as for python -m s1exp")
    parser.add_argument(
        "--sequences",
        type=int,
        default=EVAL_SEQUENCES,
        help="max-length sequences the suggested vLLM tensor-parallel size must hold at once",
    )
    hours = parser.add_argument_group("GPU-hours assumptions (s1exp/planning/hours.py)")
    for dest, (kind, help_text) in HOURS_FLAGS.items():
        hours.add_argument("--" + dest.replace("_", "-"), type=kind, help=help_text)
    args = parser.parse_args(argv)
    with exiting_on_config_error():
        cfg = compose(args.overrides)
        chosen = settings(cfg, **{dest: getattr(args, dest) for dest in HOURS_FLAGS})
        print(report(cfg, args.sequences) + "\n\n" + hours_report(cfg, chosen))


if __name__ == "__main__":
    main()
