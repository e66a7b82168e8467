"""Models from the Hugging Face hub: resolved by id; transformers and vLLM download them."""

from __future__ import annotations

from typing import Any


def hub_model(repo_id: str, revision: str | None = None, **_: Any) -> str:
    """Return the hub id; a local snapshot path also works (offline clusters)."""
    return repo_id if revision is None else f"{repo_id}@{revision}"
