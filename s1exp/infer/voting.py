"""Majority voting (S1_SPEC section 4, parallel scaling): n samples per question at temperature 1.

Every question is sampled n times (seeds seed..seed+n-1, each with the method's thinking budget);
the record holds all n answers as `votes`, which the evaluate stage grades and aggregates into the
majority answer and maj@k / cov@k (s1exp.evaluate.metrics.vote). Thinking and answer tokens are
averaged per sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import mean
from typing import Any

from s1exp.errors import ConfigError
from s1exp.infer.budget_forcing import BudgetForcing
from s1exp.infer.engine import Engine


def powers_of_two_up_to(n: int) -> list[int]:
    return [1 << i for i in range(n.bit_length()) if 1 << i <= n]


@dataclass
class MajorityVoting(BudgetForcing):
    temperature: float = 1.0
    n: int = 64
    ks: list[int] = field(default_factory=list)  # empty: 1, 2, 4, ... up to n

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n < 1:
            raise ConfigError(f"method.n={self.n}: the number of samples must be >= 1")
        if self.temperature <= 0 and self.n > 1:
            raise ConfigError(
                f"method.temperature={self.temperature}: voting over greedy samples repeats one "
                "answer; sample (the paper uses 1.0) or set method.n=1"
            )
        self.ks = list(self.ks) or powers_of_two_up_to(self.n)
        bad = [k for k in self.ks if not 1 <= k <= self.n]
        if bad:
            raise ConfigError(f"method.ks={self.ks}: every k must be in 1..method.n={self.n}")

    def run(self, engine: Engine, tokenizer: Any, prompts: list[list[int]]) -> list[dict]:
        self.begin(tokenizer, prompts)
        groups = [[self.trajectory(p, seed=self.seed + j) for j in range(self.n)] for p in prompts]
        self.drive(engine, [t for group in groups for t in group])
        records = []
        for group in groups:
            samples = [self.record(t, tokenizer) for t in group]
            averaged = {
                key: mean(s[key] for s in samples)
                for key in ("thinking_tokens", "answer_tokens", "ignores_used")
            }
            records.append(
                samples[0]
                | averaged
                | {"votes": [s["answer_text"] for s in samples], "vote_ks": self.ks}
                | {"generated_tokens": sum(s["generated_tokens"] for s in samples)}
            )
        return records
