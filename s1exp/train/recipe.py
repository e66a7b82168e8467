"""The SFT recipe: the paper's hyper-parameters as one config node, turned into a Lightning fit.

`conf/train/*.yaml` instantiate `SFTRecipe` (or `NoTraining` to evaluate the base model as is);
`conf/strategy/*.yaml` supply the distributed strategy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.plugins.environments import SLURMEnvironment

from s1exp.data.format import TrainingExample
from s1exp.errors import ConfigError
from s1exp.models import loading
from s1exp.train.datamodule import SFTDataModule
from s1exp.train.module import SFTModule
from s1exp.train.progress import TrainProgress
from s1exp.train.resume import ResumePoint


class SteadyThroughput(L.Callback):
    """Tokens/s per device after the first optimizer step (start-up and warm-up excluded)."""

    def __init__(self) -> None:
        self.start: float | None = None
        self.tokens = 0
        self.tokens_per_s = float("nan")

    @staticmethod
    def _now() -> float:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        if self.start is None:
            if trainer.global_step >= 1:
                self.start = self._now()
            return
        self.tokens += int(args[2]["attention_mask"].sum())

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self.start is not None and self.tokens:
            self.tokens_per_s = self.tokens / (self._now() - self.start)


def full_state_dict(trainer: L.Trainer, module: SFTModule) -> dict[str, Any] | None:
    """Unsharded weights on global rank 0 (None elsewhere), whatever the strategy.

    Sharded strategies gather their own way (`export_state_dict`: FSDP2 and ZeRO-3 one tensor or
    layer at a time); the others hold whole weights already.
    """
    export = getattr(trainer.strategy, "export_state_dict", None)
    if export is not None:
        return export(module.model)
    state = trainer.strategy.lightning_module_state_dict()
    if not trainer.is_global_zero:
        return None
    return {k.removeprefix("model."): v for k, v in state.items()}


def checkpoint_dtype(model_path: str, trust_remote_code: bool = False) -> str | None:
    """The dtype the base checkpoint was saved in (bf16 for Qwen2.5), to export in the same one."""
    dtype = loading.model_config(model_path, trust_remote_code=trust_remote_code).dtype
    return str(dtype).removeprefix("torch.") if dtype is not None else None


def save_checkpoint(
    module: SFTModule, state: dict[str, Any], tokenizer: Any, out_dir: Path, dtype: str | None
) -> None:
    """A Hugging Face checkpoint both engines load, in `dtype` (default: the base's dtype)."""
    cast = getattr(torch, dtype) if dtype else None
    if cast is not None:
        state = {k: v.to(cast) if v.is_floating_point() else v for k, v in state.items()}
    config = module.model.config
    if config.get_text_config().tie_word_embeddings:  # gathered copies are no longer one tensor
        tied = getattr(module.model, "_tied_weights_keys", None) or {}
        state = {k: v for k, v in state.items() if k not in tied}
    module.model.save_pretrained(out_dir, state_dict=state)
    config.use_cache = True  # save_pretrained wrote the working dtype: write what is on disk
    config.dtype = cast if cast is not None else next(iter(state.values())).dtype
    config.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


@dataclass
class NoTraining:
    """`train=none`: evaluate the base model itself."""

    trains: bool = field(default=False, init=False)


@dataclass
class SFTRecipe:
    """Supervised fine-tuning hyper-parameters (S1_SPEC section 2 for the paper's values)."""

    epochs: int
    lr: float
    warmup_ratio: float
    betas: tuple[float, float]
    weight_decay: float
    global_batch_size: int
    micro_batch_size: int
    block_size: int
    precision: str = "32-true"  # Lightning's: "bf16-mixed" = bf16 compute over fp32 masters
    dtype: str = "float32"  # the master weights' dtype (what the optimizer updates)
    gradient_clip_val: float | None = 1.0
    activation_checkpointing: bool = False
    export_dtype: str | None = None  # None: the base checkpoint's own dtype
    accelerator: str = "auto"
    devices: int = 1
    num_nodes: int = 1
    seed: int = 0
    log_every_n_steps: int = 5
    resume_every_n_epochs: int = 1  # resume points (s1exp.train.resume); 0: none
    trains: bool = field(default=True, init=False)

    def accumulation(self) -> int:
        """Gradient accumulation steps that make up the global batch."""
        per_step = self.micro_batch_size * self.devices * self.num_nodes
        if per_step <= 0 or self.global_batch_size <= 0 or self.global_batch_size % per_step:
            raise ConfigError(
                f"train.global_batch_size={self.global_batch_size} must be a positive multiple of "
                f"train.micro_batch_size x train.devices x train.num_nodes = {per_step}; "
                "change one of them"
            )
        return self.global_batch_size // per_step

    def fit(
        self,
        base_model: str,
        examples: list[TrainingExample],
        out_dir: Path,
        strategy: Any = "auto",
        logger: Any = False,
        callbacks: list[L.Callback] | None = None,
        resume_dir: Path | None = None,
        progress: str = "train",
        trust_remote_code: bool = False,  # the base model config's (s1exp.models.loading)
    ) -> dict[str, float]:
        """Train on `examples` and save a Hugging Face checkpoint (model + tokenizer) to out_dir.

        With `resume_dir`, the fit saves resume points there and goes on from the latest one a
        killed fit left; `progress` names the fit in its progress lines."""
        if not examples:
            raise ValueError("selection: no training examples; check selection.size and data")
        L.seed_everything(self.seed, workers=True, verbose=False)
        tokenizer = loading.tokenizer(base_model, trust_remote_code=trust_remote_code)
        module = SFTModule(
            base_model,
            self.lr,
            tuple(self.betas),
            self.weight_decay,
            self.warmup_ratio,
            self.dtype,
            self.activation_checkpointing,
            trust_remote_code=trust_remote_code,
        )
        data = SFTDataModule(examples, self.micro_batch_size, tokenizer.pad_token_id)
        throughput = SteadyThroughput()
        resume = ResumePoint(resume_dir, self.resume_every_n_epochs) if resume_dir else None
        trainer = L.Trainer(
            max_epochs=self.epochs,
            callbacks=[
                throughput,
                TrainProgress(progress),
                *([resume] if resume else []),
                *(callbacks or []),
            ],  # fmt: skip
            # submitit owns requeueing a SLURM job (s1exp.launcher): Lightning's own handler
            # would requeue it a second time
            plugins=[SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else None,
            accelerator=self.accelerator,
            devices=self.devices,
            num_nodes=self.num_nodes,
            strategy=strategy,
            precision=self.precision,
            accumulate_grad_batches=self.accumulation(),
            gradient_clip_val=self.gradient_clip_val,
            logger=logger,
            log_every_n_steps=self.log_every_n_steps,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=str(out_dir),
        )
        start = time.perf_counter()
        # weights_only: a resume point is loaded without unpickling code
        ckpt = resume.latest if resume else None
        trainer.fit(module, datamodule=data, ckpt_path=ckpt, weights_only=True)
        seconds = time.perf_counter() - start
        state = full_state_dict(trainer, module)
        if trainer.is_global_zero:
            export_dtype = self.export_dtype or checkpoint_dtype(base_model, trust_remote_code)
            save_checkpoint(module, state, tokenizer, out_dir, export_dtype)
        tokens = sum(len(e.input_ids) for e in examples) * self.epochs
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        metrics |= {
            "train/steady_tokens_per_s": throughput.tokens_per_s,
            "train/seconds": seconds,
            "train/tokens_per_s": tokens / seconds,
            "train/optimizer_steps": float(trainer.global_step),
            "train/resumed_at_step": float(resume.resumed_at_step if resume else 0),
        }
        return metrics
