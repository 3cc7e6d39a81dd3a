"""The interface every runtime backend implements, and how the right one is opened."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Protocol

import numpy as np

from vitedge.errors import BackendUnavailableError, UsageError
from vitedge.formats import FORMATS, get_format, load_entry_point
from vitedge.runtime.manifest import Manifest


class Backend(Protocol):
    """Runs a preprocessed batch through the model.

    ``run`` takes a float32 batch in the manifest's input layout and returns ``{"logits": (N, C),
    "embedding": (N, D)}`` (embedding only when the model has one), float32. Backends that cannot
    take several images at once set ``max_batch_size``; the caller splits. ``thread_safe`` says
    whether ``run`` may be called from several threads at once.
    """

    name: str
    version: str
    max_batch_size: int | None
    thread_safe: bool

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]: ...


def open_backend(folder: Path, manifest: Manifest, *, num_threads: int | None = None, device: str | None = None) -> Backend:
    """Open the backend that the manifest's format names, with a clear error when it is missing.

    ``device`` goes to backends whose format lists :attr:`~vitedge.formats.Format.devices` (None: the
    backend's default); for the others it is a UsageError.
    """
    fmt = get_format(manifest.format)
    if device is not None and not fmt.devices:
        offered = [f"{other.name} ({', '.join(other.devices)})" for other in FORMATS.values() if other.devices]
        raise UsageError(f"{folder}: {fmt.title} artifacts take no device option (its runtime picks the device)",
                         hint=f"leave --device out; formats that take one: {', '.join(offered) or 'none'}")
    if not fmt.backend_supported_here():
        raise BackendUnavailableError(
            f"{folder}: {fmt.title} artifacts run only on {', '.join(fmt.runtime_systems)}, not {platform.system()}",
            hint="copy the artifact to such a machine, or convert the model to another format (vitedge formats)",
        )
    if not fmt.backend_installed():
        needs = " or ".join(fmt.backend_modules) + "".join(f" (with {package})" for package in fmt.runtime_requires)
        raise BackendUnavailableError(
            f"{folder}: {'an' if fmt.title[0] in 'AEIOU' else 'a'} {fmt.title} artifact needs {needs}, which is not installed",
            hint=f"pip install 'vitedge[{fmt.install_extra}]'",
        )
    backend_class = load_entry_point(fmt.backend)
    chosen = {} if device is None else {"device": device}
    return backend_class(folder / manifest.model_file, manifest, num_threads=num_threads, **chosen)
