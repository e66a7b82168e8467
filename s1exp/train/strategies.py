"""Distributed strategies from config: names of layer classes become the classes Lightning wants."""

from __future__ import annotations

from hydra.utils import get_class


def auto() -> str:
    """Let Lightning choose (single device)."""
    return "auto"


def fsdp(sharding_strategy: str, layer_classes: list[str], activation_checkpointing: bool):
    """FSDP with the given decoder-layer classes as wrap (and checkpointing) units."""
    from lightning.pytorch.strategies import FSDPStrategy

    layers = {get_class(name) for name in layer_classes}
    return FSDPStrategy(
        sharding_strategy=sharding_strategy,
        auto_wrap_policy=layers,
        activation_checkpointing_policy=layers if activation_checkpointing else None,
        state_dict_type="full",
    )
