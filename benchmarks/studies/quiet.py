"""Quantizers and converters print advice and progress; a study's report does not need it."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator


@contextlib.contextmanager
def quiet(*, stderr: bool = False) -> Iterator[None]:
    """Root logging at ERROR and stdout (and ``stderr`` too, when asked) swallowed for the block."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), \
                (contextlib.redirect_stderr(io.StringIO()) if stderr else contextlib.nullcontext()):
            yield
    finally:
        root.setLevel(level)
