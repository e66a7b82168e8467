"""Models from the Hugging Face hub: resolved by id; transformers and vLLM download them.

A model that cannot be loaded (a local folder that is not there, a hub id while offline or
without network) is a ConfigError naming the setting and the fix, not transformers' long OSError
after the data stages have run: s1exp.preflight checks what it can know without network before
anything runs; `hub_model` asks the hub when the model is about to be loaded.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from s1exp.errors import ConfigError, brief

TRUE = {"1", "ON", "YES", "TRUE"}  # how huggingface_hub reads its boolean variables
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def hub_model(repo_id: str, revision: str | None = None, **_: Any) -> str:
    """Return the hub id; a local snapshot path also works (offline clusters)."""
    require_available(repo_id, revision, setting="base.repo_id", probe=True)
    return repo_id if revision is None else f"{repo_id}@{revision}"


def offline() -> bool:
    """HF_HUB_OFFLINE (or transformers' TRANSFORMERS_OFFLINE) forbids downloads."""
    return any(os.environ.get(v, "").upper() in TRUE for v in OFFLINE_VARIABLES)


def is_hub_id(repo_id: str) -> bool:
    """`name` or `namespace/name`; anything else (absolute, ~, ./, a/b/c) is a local path."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        return False
    return True


def is_cached(repo_id: str, revision: str | None) -> bool:
    """The snapshot is in the Hugging Face cache (HF_HOME / HF_HUB_CACHE), so no download."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    return isinstance(found, str)


def require_available(
    repo_id: str, revision: str | None, setting: str, probe: bool = False
) -> None:
    """ConfigError unless the model can be loaded. probe=False (preflight) decides only what is
    certain without network; probe=True also asks the hub about an id that is not cached."""
    if Path(repo_id).expanduser().is_dir():
        return
    if not is_hub_id(repo_id):
        raise ConfigError(
            f"{setting}={repo_id!r} is not a local folder (and not a hub id); download the model "
            f"there first (hf download <hub id> --local-dir {repo_id}) or set {setting} to an "
            f"existing checkpoint folder or a hub id"
        )
    if is_cached(repo_id, revision):
        return
    download = f"hf download {repo_id}" + (f" --revision {revision}" if revision else "")
    if offline():
        raise ConfigError(
            f"{setting}={repo_id!r} is not in the Hugging Face cache and HF_HUB_OFFLINE=1 forbids "
            f"downloading it; download it first ({download}), unset HF_HUB_OFFLINE, or set "
            f"{setting} to a local checkpoint folder"
        )
    if probe:
        ask_hub(repo_id, revision, setting, download)


def ask_hub(repo_id: str, revision: str | None, setting: str, download: str) -> None:
    """A model not cached and not offline: can the hub serve it? No network, an unknown id or
    revision is a ConfigError; other hub failures are left to the download to report."""
    from huggingface_hub import model_info
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    try:
        model_info(repo_id, revision=revision, timeout=10)
    except RevisionNotFoundError as error:
        raise ConfigError(
            f"{setting}={repo_id!r} has no revision {revision!r} on the hub; fix its revision"
        ) from error
    except RepositoryNotFoundError as error:  # misspelt, private or gated without a token
        raise ConfigError(
            f"{setting}={repo_id!r}: no such model on the Hugging Face hub (or it needs a login: "
            f"hf auth login); fix the id or set {setting} to a local checkpoint folder"
        ) from error
    except Exception as error:
        if is_transport_error(error):
            raise ConfigError(
                f"{setting}={repo_id!r}: cannot reach the Hugging Face hub ({brief(error)}) and "
                f"the model is not in its cache; download it where there is network ({download}) "
                f"and set HF_HUB_OFFLINE=1, or set {setting} to a local checkpoint folder"
            ) from error


def is_transport_error(error: BaseException) -> bool:
    """No network, DNS, proxy or timeout: httpx's TransportError, or huggingface_hub's own copy of
    httpx (httpx2), matched by name so either backend counts."""
    return any(cls.__name__ == "TransportError" for cls in type(error).__mro__)
