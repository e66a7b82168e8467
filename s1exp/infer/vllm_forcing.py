"""Budget forcing inside vLLM's decode loop: one request per greedy trajectory.

`ForcingProcessor` is a vLLM v1 logits processor. A request that carries a trajectory in its
`extra_args` gets a `TokenStepper` (s1exp.infer.stepping) in the processor: at every decode step
it reads the model's choice from the logits (argmax, stop tokens suppressed below min_tokens, as
vLLM's greedy sampler and min-tokens processor would), decides the trajectory's next token (the
model's, a forced extrapolation or exit token, or a terminator once the trajectory is done), and
masks every other token so vLLM samples exactly that one. No request is re-submitted, so there is
no request set-up, prefill or round barrier between segments; the tokens are the resubmit
driver's (tests/test_vllm_engine.py).

Greedy only: under sampling a processor would have to draw the token itself, which gives other
tokens than vLLM's seeded sampler; sampled trajectories keep the barrier-free resubmit driver.

The processor may live in another process (vLLM's engine core, or one per tensor-parallel worker),
so the trajectory travels pickled in `extra_args` (written and read only by s1exp's own engine,
never by a server), and the segment ends come back as a small JSON file per request, written
atomically when the trajectory finishes; the engine replays them on its own trajectory.
A sample vLLM discards (a prompt prefilled in chunks samples a token it then drops) is detected
from the request's output length and the decision is taken again from a snapshot.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor
from vllm.v1.sample.logits_processor.builtin import process_dict_updates

from s1exp.infer.engine import SamplingParams
from s1exp.infer.stepping import Choose, Event, TokenStepper

KEY = "s1exp_forcing"


def request_args(request_id: str, seq: Any, terminator: int, folder: str) -> dict[str, Any]:
    """The `extra_args` that put one sequence (s1exp.infer.stepping.Forced) under the processor."""
    state = pickle.dumps(seq, protocol=pickle.HIGHEST_PROTOCOL)
    return {KEY: {"id": request_id, "state": state, "terminator": terminator, "folder": folder}}


def events_folder() -> str:
    """A folder for the processor's event files: in memory (/dev/shm) where the machine has it."""
    shm = Path("/dev/shm")
    return tempfile.mkdtemp(prefix="s1exp-forcing-", dir=shm if shm.is_dir() else None)


def events_path(folder: str, request_id: str) -> Path:
    return Path(folder) / f"{request_id}.json"


def read_events(folder: str, request_id: str) -> list[Event]:
    """The segment ends the processor recorded for one finished request (the file is removed)."""
    path = events_path(folder, request_id)
    try:
        events = [Event(*e) for e in json.loads(path.read_text())]
    except FileNotFoundError as err:
        raise RuntimeError(
            f"vLLM finished {request_id} before its trajectory ended (no {path}): the in-loop "
            "driver needs the engine's workers on this machine; use method.mode=barrier_free"
        ) from err
    path.unlink()
    return events


class _Live:
    """One forced request in the processor: its stepper and how many tokens it decided."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.id, self.folder, self.terminator = spec["id"], spec["folder"], spec["terminator"]
        self.stepper = TokenStepper(pickle.loads(spec["state"]))
        self.emitted = 0  # tokens decided; equals len(output) before each decision
        self.output: list[int] = []  # vLLM's live list of this request's output tokens
        self.snapshot: tuple[bytes, int] | None = (spec["state"], 0)
        self.written = False

    def joined(self, output: list[int]) -> None:
        """Added to the batch (new, or back after preemption): its next sample may be
        discarded while its prefill is chunked, so keep a state to return to."""
        self.output = output
        if self.emitted == len(output) + 1:  # left while its last sample was being discarded
            self._restore()
        if self.emitted:  # a new request's snapshot is the state it arrived with
            self.snapshot = (pickle.dumps(self.stepper), self.emitted)

    def _restore(self) -> None:
        if self.snapshot is None:
            raise RuntimeError(f"{self.id}: a kept decision was discarded by vLLM")
        state, self.emitted = pickle.loads(self.snapshot[0]), self.snapshot[1]
        # A new request's snapshot is its sequence as it arrived (no stepper yet).
        self.stepper = state if isinstance(state, TokenStepper) else TokenStepper(state)
        self.written = self.stepper.done  # events of a discarded last decision are rewritten

    def decide(self, choose: Choose) -> int:
        n = len(self.output)
        if self.snapshot is not None:
            if self.emitted == n + 1:  # the last sample was discarded: decide it again
                self._restore()
            elif self.emitted == n and n > self.snapshot[1]:  # a sample was kept: steady now
                self.snapshot = None
        if self.emitted != n:
            raise RuntimeError(f"{self.id}: {self.emitted} tokens decided, vLLM has {n}")
        token = self.stepper.next_token(choose)
        self.emitted += 1
        if self.stepper.done and not self.written:
            self._write_events()
        return self.terminator if token is None else token

    @property
    def finished(self) -> bool:
        return self.written and self.snapshot is None and self.emitted == len(self.output)

    def _write_events(self) -> None:
        path = events_path(self.folder, self.id)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")  # one per tensor-parallel worker
        tmp.write_text(json.dumps(self.stepper.events))
        os.replace(tmp, path)
        self.written = True


class _Choices:
    """The model's greedy choice per batch row, computed once per step for each stop set."""

    def __init__(self, logits: torch.Tensor) -> None:
        self.logits = logits
        self.by_stops: dict[tuple[int, ...], list[int]] = {}
        self.raw = logits.argmax(dim=-1).tolist()

    def pick(self, row: int, p: SamplingParams, suppress: bool) -> int:
        if not suppress:
            return self.raw[row]
        stops = tuple(p.stop_token_ids)
        if stops not in self.by_stops:
            masked = self.logits.clone()
            masked[:, list(stops)] = float("-inf")
            self.by_stops[stops] = masked.argmax(dim=-1).tolist()
        return self.by_stops[stops][row]


class ForcingProcessor(LogitsProcessor):
    """Budget forcing per token for the requests that carry a trajectory (see module doc)."""

    def __init__(self, vllm_config: Any, device: torch.device, is_pin_memory: bool) -> None:
        self.rows: dict[int, _Live] = {}  # persistent-batch index -> request
        self.live: dict[str, _Live] = {}  # request id -> request (kept across preemption)

    @classmethod
    def validate_params(cls, sampling_params: Any) -> None:
        if KEY in (sampling_params.extra_args or {}) and sampling_params.temperature > 0:
            raise ValueError("s1exp in-loop budget forcing is greedy only (temperature 0)")

    def is_argmax_invariant(self) -> bool:
        return False  # it decides the token

    def _join(self, params: Any, prompt: list[int] | None, output: list[int]) -> _Live | None:
        spec = (params.extra_args or {}).get(KEY)
        if spec is None:
            return None
        live = self.live.get(spec["id"])
        if live is None:
            live = self.live[spec["id"]] = _Live(spec)
        live.joined(output)
        return live

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        process_dict_updates(self.rows, batch_update, self._join)
        if batch_update is not None and batch_update.removed:
            in_batch = {id(live) for live in self.rows.values()}
            for request_id, live in list(self.live.items()):
                if live.finished and id(live) not in in_batch:
                    del self.live[request_id]

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        if not self.rows:
            return logits
        choices = _Choices(logits)
        rows, tokens = [], []
        for row, live in self.rows.items():
            token = live.decide(lambda p, suppress, row=row: choices.pick(row, p, suppress))
            if token != choices.raw[row]:
                rows.append(row)
                tokens.append(token)
        if rows:
            index = torch.tensor(rows, device=logits.device)
            logits[index] = float("-inf")
            logits[index, torch.tensor(tokens, device=logits.device)] = 0.0
        return logits
