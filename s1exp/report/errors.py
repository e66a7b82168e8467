"""The report's one error type: a sweep dir, sheet or option the user has to fix."""

from __future__ import annotations

from s1exp.errors import ConfigError


class ReportError(ConfigError):
    """A report input that cannot work; the message names the path or field and the fix."""
