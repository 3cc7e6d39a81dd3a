"""The interface every benchmark target implements (artifacts, ``torch:MODEL``), and what it reports.

Kinds of target live in their own modules (:mod:`vitedge.benchmarks.targets` for artifacts,
:mod:`vitedge.benchmarks.torch_target` for PyTorch eager) and import only this.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from vitedge.runtime.preprocess_spec import PreprocessSpec


@dataclass(frozen=True)
class TargetInfo:
    """What a report says about a target besides its timings."""

    format: str
    precision: str
    backend: str
    backend_version: str
    size_bytes: int | None
    model: str | None
    weights: str | None
    labels: tuple[str, ...]


class Target(Protocol):
    """A model the worker can time: load it stage by stage, then run batches."""

    preprocess: PreprocessSpec

    def import_backend(self) -> None: ...

    def check_files(self) -> None: ...

    def load(self, threads: int, device: str | None = None) -> None:
        """Load the model for ``threads`` threads; ``device`` applies where the format offers a choice."""
        ...

    def info(self) -> TargetInfo: ...

    def run(self, batch: np.ndarray) -> np.ndarray: ...

    def selfcheck(self) -> dict | None:
        """The artifact's self-check on this machine (:mod:`vitedge.runtime.selfcheck`), compact; None: no artifact."""
        ...
