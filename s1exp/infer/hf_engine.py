"""A transformers engine for machines without vLLM: batched decoding over one KV cache.

One decode loop serves both entry points. `generate` (the engine contract) runs one segment per
prompt. `run_inflight` runs budget-forcing trajectories to the end inside the same loop: when a
segment ends, the tokens the trajectory forces (the extrapolation string, the exit delimiters) are
fed as the next inputs instead of re-encoding the prefix, so the KV cache is reused across rounds
and no sequence waits for the slowest one in its batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch
from transformers import DynamicCache

from s1exp.infer.engine import Completion, SamplingParams, check_requests, check_trajectories
from s1exp.models.loading import causal_lm


class Controlled(Protocol):
    """A sequence the decode loop drives: what to generate next, and what to force after it."""

    def context(self) -> list[int]: ...
    def params(self) -> SamplingParams | None: ...  # None: finished
    def advance(self, token_ids: list[int], finish_reason: str) -> list[int]: ...


class OneShot:
    """The engine contract: one segment, then done."""

    def __init__(self, prompt: list[int], params: SamplingParams) -> None:
        self.prompt, self._params, self.result = prompt, params, None

    def context(self) -> list[int]:
        return self.prompt

    def params(self) -> SamplingParams | None:
        return self._params if self.result is None else None

    def advance(self, token_ids: list[int], finish_reason: str) -> list[int]:
        self.result = Completion(token_ids=list(token_ids), finish_reason=finish_reason)
        return []


class Forced:
    """A budget-forcing trajectory (s1exp.infer.budget_forcing.Trajectory) in the loop."""

    def __init__(self, trajectory: Any, sampling: Callable[[Any], SamplingParams]) -> None:
        self.trajectory, self.sampling = trajectory, sampling

    def context(self) -> list[int]:
        return self.trajectory.context()

    def params(self) -> SamplingParams | None:
        return self.sampling(self.trajectory)

    def advance(self, token_ids: list[int], finish_reason: str) -> list[int]:
        return self.trajectory.advance(token_ids, finish_reason)


def _pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class _Row:
    """Decode state of one sequence in the batch."""

    def __init__(self, seq: Controlled, default_seed: int) -> None:
        self.seq = seq
        self.params = seq.params()
        self.segment: list[int] = []
        self.queue: list[int] = []  # forced tokens still to feed
        seed = default_seed if self.params is None or self.params.seed is None else self.params.seed
        self.gen = torch.Generator().manual_seed(seed)

    @property
    def done(self) -> bool:
        return self.params is None


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
        """The next input token of a row: a forced one, else decoded under its segment limits."""
        while True:
            if row.queue:
                return row.queue.pop(0)
            p = row.params
            if p.max_tokens <= 0:  # nothing to generate in this segment
                forced = row.seq.advance([], "length")
                row.params, row.queue = row.seq.params(), forced
                if row.done:
                    return self.pad_id
                continue
            scores = logits
            if len(row.segment) < p.min_tokens and p.stop_token_ids:
                scores = logits.clone()
                scores[list(p.stop_token_ids)] = float("-inf")
            token = int(scores.argmax()) if p.temperature <= 0 else _sample(scores, p, row.gen)
            row.segment.append(token)
            stopped = token in p.stop_token_ids
            if not stopped and len(row.segment) < p.max_tokens:
                return token
            forced = row.seq.advance(row.segment, "stop" if stopped else "length")
            row.segment, row.params = [], row.seq.params()
            if row.done:
                return self.pad_id
            if not stopped:  # the last decoded token is kept: feed it, then the forced ones
                row.queue = forced
                return token
            row.queue = forced  # the stop token is dropped; decode again if nothing is forced

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
