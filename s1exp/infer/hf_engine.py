"""A transformers engine for machines without vLLM: batched decoding over one KV cache.

One decode loop serves both entry points. `generate` (the engine contract) runs one segment per
prompt. `run_inflight` runs budget-forcing trajectories to the end inside the same loop: when a
segment ends, the tokens the trajectory forces (the extrapolation string, the exit delimiters) are
fed as the next inputs instead of re-encoding the prefix, so the KV cache is reused across rounds
and no sequence waits for the slowest one in its batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from transformers import DynamicCache

from s1exp.infer.engine import Completion, SamplingParams, check_requests, check_trajectories
from s1exp.infer.stepping import Controlled, Forced, OneShot, TokenStepper
from s1exp.models.loading import causal_lm


def _pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class _Row:
    """Decode state of one sequence in the batch: its stepper and its sampling generator."""

    def __init__(self, seq: Controlled, default_seed: int) -> None:
        self.stepper = TokenStepper(seq)
        params = self.stepper.params
        seed = default_seed if params is None or params.seed is None else params.seed
        self.gen = torch.Generator().manual_seed(seed)

    @property
    def done(self) -> bool:
        return self.stepper.done


class TransformersEngine:
    """Greedy or sampled generation with Hugging Face transformers."""

    def __init__(
        self,
        model_path: str,
        dtype: str = "float32",
        batch_size: int = 64,
        max_model_len: int = 2048,
        seed: int = 0,
        device: str = "auto",
        trust_remote_code: bool = False,  # the model config's (s1exp.models.loading)
    ) -> None:
        self.device = _pick_device(device)
        dtype_ = getattr(torch, dtype)
        self.model = causal_lm(model_path, dtype=dtype_, trust_remote_code=trust_remote_code)
        self.model.to(self.device).eval()
        self.batch_size = batch_size
        self.max_model_len = max_model_len
        self.seed = seed
        pad = self.model.config.pad_token_id
        self.pad_id = int(pad if pad is not None else 0)

    # -- entry points ---------------------------------------------------------------------
    def generate(self, prompts: list[list[int]], params: list[SamplingParams]) -> list[Completion]:
        check_requests(prompts, params, self.max_model_len)
        shots = [OneShot(p, sp) for p, sp in zip(prompts, params, strict=True)]
        self._run(shots)
        return [s.result for s in shots]

    def run_inflight(self, trajectories: list[Any], sampling: Callable[[Any], SamplingParams]):
        """Drive budget-forcing trajectories to completion with forced tokens fed in-loop."""
        check_trajectories(trajectories, self.max_model_len)
        self._run([Forced(t, sampling) for t in trajectories])

    # -- the decode loop --------------------------------------------------------------------
    def _run(self, seqs: Sequence[Controlled]) -> None:
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i].context()))
        for start in range(0, len(order), self.batch_size):
            self._run_batch([seqs[i] for i in order[start : start + self.batch_size]])

    def _choose(self, row: _Row, logits: torch.Tensor) -> int:
        """The next input token of a row (s1exp.infer.stepping); pad once it is finished."""

        def model_choice(p: SamplingParams, suppress: bool) -> int:
            scores = logits
            if suppress:
                scores = logits.clone()
                scores[list(p.stop_token_ids)] = float("-inf")
            return int(scores.argmax()) if p.temperature <= 0 else _sample(scores, p, row.gen)

        token = row.stepper.next_token(model_choice)
        return self.pad_id if token is None else token

    @torch.inference_mode()
    def _run_batch(self, seqs: Sequence[Controlled]) -> None:
        prompts = [s.context() for s in seqs]
        batch, width, dev = len(seqs), max(len(p) for p in prompts), self.device
        ids = torch.full((batch, width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((batch, width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            ids[row, width - len(prompt) :] = torch.tensor(prompt)
            mask[row, width - len(prompt) :] = 1
        ids, mask = ids.to(dev), mask.to(dev)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        rows = [_Row(s, self.seed) for s in seqs]
        cache = DynamicCache(config=self.model.config)
        out = self.model(
            input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache
        )
        while True:
            logits = out.logits[:, -1, :].float().cpu()
            step = [
                self.pad_id if r.done else self._choose(r, logits[i]) for i, r in enumerate(rows)
            ]
            if all(r.done for r in rows):
                return
            mask = torch.cat([mask, torch.ones((batch, 1), dtype=mask.dtype, device=dev)], dim=1)
            positions = positions[:, -1:] + 1
            tokens = torch.tensor(step, device=dev)[:, None]
            out = self.model(
                input_ids=tokens, attention_mask=mask, position_ids=positions, past_key_values=cache
            )


def _sample(logits: torch.Tensor, p: SamplingParams, gen: torch.Generator) -> int:
    probs = torch.softmax(logits / p.temperature, dim=-1)
    if p.top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        outside = sorted_probs.cumsum(-1) - sorted_probs > p.top_p
        sorted_probs = sorted_probs.masked_fill(outside, 0.0)
        return int(order[torch.multinomial(sorted_probs, 1, generator=gen)])
    return int(torch.multinomial(probs, 1, generator=gen))
