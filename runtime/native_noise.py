"""Hide the log lines native libraries write straight to the process's stderr that say nothing to a user.

TensorFlow Lite / LiteRT and the converters under litert-torch log from C++ (absl, oneDNN, the
flatbuffer exporter, the XNNPACK delegate) to file descriptor 2, which Python's logging and warnings
filters never see. :func:`native_noise_hidden` sends descriptor 2 to a temporary file for the span
of a call and then writes back every line that is not known noise, so real messages still show
(after the call). ``VITEDGE_DEBUG=1`` (what ``vitedge --debug`` sets) turns the filter off.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator

#: Fragments of the lines dropped; anything else written to stderr is kept.
NOISE = (
    "All log messages before absl::InitializeLog() is called are written to STDERR",
    "oneDNN custom operations are on",
    "flatbuffer_export.cc",
    "Created TensorFlow Lite XNNPACK delegate for CPU",
    "Estimated count of arithmetic ops",
)

DEBUG_VARIABLE = "VITEDGE_DEBUG"


def debugging() -> bool:
    """Whether the user asked to see everything (``vitedge --debug`` or ``VITEDGE_DEBUG=1``)."""
    return os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")


@contextlib.contextmanager
def native_stderr(lines: list[str]) -> Iterator[None]:
    """Append the lines written to descriptor 2 inside the block to ``lines`` (instead of showing them).

    Also how placement reports read onnxruntime's node placement log (:mod:`vitedge.runtime.placement.onnx`).
    """
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


@contextlib.contextmanager
def native_noise_hidden(noise: tuple[str, ...] = NOISE) -> Iterator[None]:
    """Drop the lines of ``noise`` that native code writes to stderr inside the block; keep the rest."""
    if debugging():
        yield
        return
    lines: list[str] = []
    try:
        with native_stderr(lines):
            yield
    finally:
        kept = [line for line in lines if not any(fragment in line for fragment in noise)]
        if kept:
            sys.stderr.write("\n".join(kept) + "\n")
            sys.stderr.flush()
