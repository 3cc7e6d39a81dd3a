"""Capture what native code writes to the process's stderr (file descriptor 2) during a block.

onnxruntime logs its node placement decisions from C++ straight to descriptor 2, where Python
cannot catch them; placement reports read them from here.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator


@contextlib.contextmanager
def native_stderr(lines: list[str]) -> Iterator[None]:
    """Append the lines written to descriptor 2 inside the block to ``lines`` (instead of showing them)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real descriptor 2 (some embedded interpreters)
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines += captured.read().decode("utf-8", "replace").splitlines()
