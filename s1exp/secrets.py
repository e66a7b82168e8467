"""Secrets (API keys, tokens, passwords) recognised and replaced before a config, an override
list or a log line is saved anywhere.

Secrets reach a run three ways: the environment (WANDB_API_KEY, HF_TOKEN: wandb and
huggingface_hub read them there themselves, so the environment is left alone), `${oc.env:...}`
interpolations that resolve them into the config, and command-line overrides
(`+logger.api_key=...`). A value is a secret when its name says so (`is_secret_name`: `*_KEY`,
`*_TOKEN`, `*_SECRET`, `password`, ...) or when it contains the value of a secret-named
environment variable or of a secret-named setting seen earlier in this process, whatever the name
it now sits under (`remember`): `${oc.env:HF_TOKEN}` interpolated into an innocent key is caught.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

REDACTED = "<redacted>"
# In an override, a value Hydra's parser still accepts (track.swept_keys re-parses saved ones).
REDACTED_OVERRIDE = f"'{REDACTED}'"
# The last word of a secret's name (`HF_TOKEN`, `logger.api_key`, `dbPassword`).
SECRET_WORDS = frozenset(
    {"key", "token", "secret", "password", "passwd", "apikey", "credential", "credentials"}
)
# `<word>_token` names tokenizer settings, not credentials: `eos_token: <|im_end|>`.
TOKENIZER_WORDS = frozenset({"pad", "bos", "eos", "unk", "sep", "cls", "mask", "stop", "special"})
# Shorter values are redacted by name only: searched for as text, "1" or "true" would hit anywhere.
MIN_SECRET_LENGTH = 8
# `key=value` as Hydra writes overrides (`+logger.api_key=x`, `model@featurize.judge=tiny`).
OVERRIDE = re.compile(r"(?P<key>[+~]{0,2}[\w@./-]+)=(?P<value>\S*)")

_remembered: set[str] = set()


def _words(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)  # camelCase -> camel_Case
    return [w for w in re.split(r"[^a-z0-9]+", spaced.lower()) if w]


def is_secret_name(name: str) -> bool:
    """Whether a config key, override key or environment variable names a secret. A bare `key`
    is not one (the store's artifact keys); `api_key`, `HF_TOKEN`, `password` are."""
    words = _words(str(name))
    if not words or words[-1] not in SECRET_WORDS:
        return False
    if words[-1] == "key":
        return len(words) > 1
    if words[-1] == "token":
        return len(words) == 1 or words[-2] not in TOKENIZER_WORDS
    return True


def _is_interpolation(value: str) -> bool:
    """`${oc.env:HF_TOKEN}` in an unresolved config says where a secret comes from, not what."""
    return value.startswith("${") and value.endswith("}")


def remember(value: Any) -> None:
    """Treat `value` as a secret wherever it appears from now on in this process."""
    if (
        isinstance(value, str)
        and len(value) >= MIN_SECRET_LENGTH
        and REDACTED not in value
        and not _is_interpolation(value)
    ):
        _remembered.add(value)


def known_values() -> list[str]:
    """Secret values to search text for: those of secret-named environment variables and those
    remembered, longest first (a secret containing another is replaced whole)."""
    env = {v for k, v in os.environ.items() if is_secret_name(k) and len(v) >= MIN_SECRET_LENGTH}
    return sorted(env | _remembered, key=len, reverse=True)


def _replace_known(text: str) -> str:
    for value in known_values():
        if value in text:
            text = text.replace(value, REDACTED)
    return text


def _secret_override_key(key: str) -> bool:
    """`+logger.api_key` names a secret; `group@package` is named by its group."""
    return is_secret_name(key.lstrip("+~").split("@")[0].split(".")[-1])


def redact_override(override: str) -> str:
    """One command-line override with its value replaced when it is a secret (by key or value)."""
    match = OVERRIDE.fullmatch(override)
    if match is None:
        return _replace_known(override)
    key, value = match["key"], match["value"]
    if _is_interpolation(value):  # `${oc.env:HF_TOKEN}`: where from, resolved only in the job
        return override if _replace_known(value) == value else f"{key}={REDACTED_OVERRIDE}"
    if _secret_override_key(key):
        remember(value.strip("'\""))
        return f"{key}={REDACTED_OVERRIDE}"
    return override if _replace_known(value) == value else f"{key}={REDACTED_OVERRIDE}"


def redact_text(text: str) -> str:
    """Free text (a log line, a run name): known secret values and secret `key=value` pairs."""
    text = _replace_known(text)

    def pair(match: re.Match[str]) -> str:
        return redact_override(match[0]) if _secret_override_key(match["key"]) else match[0]

    return OVERRIDE.sub(pair, text)


def redact(obj: Any) -> Any:
    """A copy of a plain config, results or override list (dicts, lists, scalars) with every
    secret replaced by REDACTED: values under secret-named keys (remembered, so later text that
    repeats them is caught too), override strings with a secret key or value, and any string
    containing a known secret value. Interpolations of an unresolved config are kept as written."""
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            scalar = isinstance(value, str | int | float) and not isinstance(value, bool)
            if is_secret_name(str(key)) and scalar and value != "":
                if isinstance(value, str) and _is_interpolation(value):
                    out[key] = value if _replace_known(value) == value else REDACTED
                    continue
                remember(str(value))
                out[key] = REDACTED
            else:
                out[key] = redact(value)
        return out
    if isinstance(obj, list | tuple):
        return [redact(v) for v in obj]
    if isinstance(obj, str):
        return redact_override(obj) if OVERRIDE.fullmatch(obj) else redact_text(obj)
    return obj


@contextmanager
def redacted_argv() -> Iterator[None]:
    """sys.argv without secret overrides while a library copies it (W&B's metadata "args").
    Only for the block: Lightning re-launches DDP ranks with the real sys.argv."""
    saved = sys.argv[:]
    sys.argv[:] = [redact_override(a) for a in saved]
    try:
        yield
    finally:
        sys.argv[:] = saved


def redact_log_records() -> None:
    """Make every log record of this process carry its message with secrets redacted, whatever
    handlers Hydra configures later (console, the job's .log file) or the library that logs.
    Idempotent."""
    current = logging.getLogRecordFactory()
    if getattr(current, "redacts_secrets", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string is the handler's to report
            return record
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return record

    factory.redacts_secrets = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
