"""The engine contract every test-time method is written against (DESIGN.md).

One call generates one continuation per prompt with per-prompt sampling settings, so a method can
give each sequence its own remaining budget. Several samples of one prompt are requested by
repeating the prompt with different seeds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int
    min_tokens: int = 0  # stop tokens are suppressed until this many tokens were generated
    stop_token_ids: tuple[int, ...] = ()
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    seed: int | None = None


@dataclass
class Completion:
    """Generated tokens; on a stop the stop token is the last element of token_ids."""

    token_ids: list[int]
    finish_reason: Literal["stop", "length"]
    extra: dict = field(default_factory=dict)


class Engine(Protocol):
    def generate(self, prompts: list[list[int]], params: list[SamplingParams]) -> list[Completion]:
        """One completion per prompt, in order."""
        ...


def check_requests(prompts: list[list[int]], params: list[SamplingParams], max_model_len: int):
    """Reject a batch an engine cannot serve, naming the setting to change."""
    if len(prompts) != len(params):
        raise ValueError("generate: one SamplingParams per prompt is required")
    for prompt, p in zip(prompts, params, strict=True):
        if len(prompt) + p.max_tokens > max_model_len:
            raise ValueError(
                f"engine.max_model_len={max_model_len} is smaller than a prompt of "
                f"{len(prompt)} tokens plus max_tokens={p.max_tokens}; raise engine.max_model_len"
            )


def check_trajectories(trajectories: list[Any], max_model_len: int) -> None:
    """Trajectories may grow to their method's max_length: the engine must hold that much."""
    for t in trajectories:
        if t.config.max_length > max_model_len:
            raise ValueError(
                f"engine.max_model_len={max_model_len} is below model.max_length="
                f"{t.config.max_length}; make them equal"
            )
