"""OpenVINO and NNCF as vitedge uses them: imported on demand, their log lines and progress bars kept quiet."""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import logging
import warnings
from collections.abc import Iterator
from typing import Any

from vitedge.errors import ConversionError


def _missing(package: str) -> ConversionError:
    return ConversionError(f"converting to OpenVINO needs {package}, which is not installed",
                           hint="pip install 'vitedge[convert]' (it brings openvino and nncf)")


def openvino() -> Any:
    """The openvino module.

    Raises:
        ConversionError: openvino is not installed (the hint names the extra).
    """
    try:
        import openvino as ov
    except ImportError as error:
        raise _missing("openvino") from error
    return ov


def nncf() -> Any:
    """The nncf module, its INFO lines (bit-width tables) turned off.

    Raises:
        ConversionError: nncf is not installed.
    """
    try:
        import nncf as module
    except ImportError as error:
        raise _missing("nncf") from error
    module.set_log_level(logging.ERROR)
    return module


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence NNCF's progress bars (rich, on stdout) and torch's tracer warnings inside the block."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        yield
