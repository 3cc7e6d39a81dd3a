"""What the training loop reads: labeled images as model inputs, from uint8 pixels or from arrays.

:class:`ImageSet` is all :func:`~vitedge.converters.training.loop.run_training` and
:func:`~vitedge.converters.training.loop.evaluate` need: labels, a length, and float32 NCHW inputs
for any index. :class:`vitedge.data.imagefolder.LabeledImages` (an ImageFolder's pixels, normalized
per batch) is one; :class:`PreprocessedImages` (inputs made already, e.g. the quickstart's shapes
splits from :func:`vitedge.data.shapes.shapes_arrays`) is the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from vitedge.errors import UsageError


class ImageSet(Protocol):
    """Labeled images the loop can train on or evaluate."""

    @property
    def labels(self) -> np.ndarray: ...

    def __len__(self) -> int: ...

    def inputs(self, index: np.ndarray | slice | None = None) -> np.ndarray:
        """Model inputs, float32 NCHW, for the images at ``index`` (all of them for None)."""
        ...


@dataclass(frozen=True)
class PreprocessedImages:
    """Images preprocessed already: float32 model inputs (N, C, H, W) and their integer labels (N,).

    Raises:
        UsageError: Inputs that are not a float32 4-D array, or labels that are not one integer per image.
    """

    arrays: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        arrays, labels = self.arrays, self.labels
        if arrays.ndim != 4 or arrays.dtype != np.float32:
            raise UsageError(f"inputs must be a float32 (N, C, H, W) array, got {arrays.dtype} {arrays.shape}")
        if labels.ndim != 1 or labels.shape[0] != arrays.shape[0] or not np.issubdtype(labels.dtype, np.integer):
            raise UsageError(f"labels must be {arrays.shape[0]} integers, got {labels.dtype} {labels.shape}")

    def __len__(self) -> int:
        return len(self.labels)

    def inputs(self, index: np.ndarray | slice | None = None) -> np.ndarray:
        """The model inputs at ``index`` (all of them for None)."""
        return self.arrays if index is None else self.arrays[index]
