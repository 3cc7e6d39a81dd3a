"""Errors that vitedge reports to users.

Every error a user can cause (a bad image, a missing model file, an unknown format, a failed
validation) is a :class:`VitedgeError`: its message says what went wrong and where, and its
``hint`` says what to do. The CLI prints ``str(error)`` on one line and exits non-zero; an
unexpected exception (a bug) is one line too. With ``--debug`` both show their traceback, including
the library error an error was raised from (``raise … from error``, which keeps that cause).

This module imports nothing heavy: the torch-free runtime uses it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class VitedgeError(Exception):
    """Base class of every error vitedge raises on purpose.

    Args:
        message: What went wrong, naming the file or value involved.
        hint: What the user can do about it (optional).
    """

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message)

    def __str__(self) -> str:
        text = self.message if not self.hint else f"{self.message}; {self.hint}"
        return " ".join(text.split())  # always one line


class UsageError(VitedgeError):
    """A bad option or argument (unknown format, unsupported precision, …)."""

    exit_code = 2


class ImageLoadError(VitedgeError):
    """An image could not be read or decoded."""

    def __init__(self, source: str, reason: str, *, hint: str | None = None) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}", hint=hint)


class ArtifactError(VitedgeError):
    """An artifact folder is missing, incomplete, tampered with or of an unknown schema."""


class BackendUnavailableError(VitedgeError):
    """The runtime backend a format needs is not installed or not supported on this system."""


class ModelLoadError(VitedgeError):
    """A source model (hub id, local folder or preset) could not be loaded."""


class ConversionError(VitedgeError):
    """Export or quantization failed."""


class ValidationFailedError(ConversionError):
    """A converted artifact does not match the torch reference within the format's tolerance."""


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """Return ' (did you mean X?)' for the closest choice, or '' when nothing is close."""
    by_lower = {choice.lower(): choice for choice in choices}
    close = difflib.get_close_matches(value.strip().lower(), list(by_lower), n=1, cutoff=0.6)
    return f" (did you mean {by_lower[close[0]]!r}?)" if close else ""
