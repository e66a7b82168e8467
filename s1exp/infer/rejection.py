"""Rejection sampling (S1_SPEC section 4): sample at temperature 1 until the thinking fits.

Each question is sampled again (a new seed per try) until the model ends its thinking on its own
within the budget (`cap`), for at most `max_tries` tries. A try is generated with a cap one token
above the budget, so a try that reaches it is known not to fit without decoding further; if no try
fits, the last one is kept (its thinking cut there) and marked `fits: 0`. Every record carries its
tries, the paper's cost measure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from s1exp.errors import ConfigError
from s1exp.infer.budget_forcing import BudgetForcing, Trajectory
from s1exp.infer.engine import Engine


@dataclass
class RejectionSampling(BudgetForcing):
    temperature: float = 1.0
    max_tries: int = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.cap, int):
            raise ConfigError(
                f"budget.cap={self.cap!r}: rejection sampling needs an integer thinking budget "
                "to reject against (e.g. budget=cap4000)"
            )
        if self.temperature <= 0:
            raise ConfigError(
                f"method.temperature={self.temperature}: rejection sampling must sample "
                "(the paper uses 1.0); greedy tries would all be the same"
            )
        if self.max_tries < 1:
            raise ConfigError(f"method.max_tries={self.max_tries}: must be >= 1")

    def thinking_limit(self, t: Trajectory) -> int:
        return int(self.cap)  # tries decode one token past it to see whether they fit

    def fits(self, t: Trajectory) -> bool:
        return t.exit == "natural" and len(t.thinking_ids) <= int(self.cap)

    def run(self, engine: Engine, tokenizer: Any, prompts: list[list[int]]) -> list[dict]:
        self.begin(tokenizer, prompts)
        kept: list[Trajectory | None] = [None] * len(prompts)
        tries = [0] * len(prompts)
        generated = [0] * len(prompts)  # over all tries: the cost of rejection
        todo = list(range(len(prompts)))
        for attempt in range(self.max_tries):
            paths = []
            for i in todo:
                t = self.trajectory(prompts[i], seed=self.seed + attempt)
                t.cap = min(int(self.cap) + 1, self.room(prompts[i]))
                paths.append(t)
            self.drive(engine, paths)
            for i, t in zip(todo, paths, strict=True):
                kept[i], tries[i] = t, attempt + 1
                generated[i] += t.generated_tokens
            todo = [i for i, t in zip(todo, paths, strict=True) if not self.fits(t)]
            if not todo:
                break
        records = []
        for t, n, cost in zip(kept, tries, generated, strict=True):
            scores = {"tries": n, "fits": int(self.fits(t))}
            records.append(self.record(t, tokenizer) | {"scores": scores, "generated_tokens": cost})
        return records
