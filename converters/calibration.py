"""Calibration images for static quantization: a one-method interface and where the images come from.

Static quantization needs representative inputs to pick activation ranges. They come from the
user's folder of images (``--calibration DIR``), or from the built-in shapes dataset's
``calibration`` split, which never overlaps the held-out images validation uses. Either way they
are preprocessed exactly as the runtime will preprocess real inputs.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vitedge.converters.export_types import DEFAULT_CALIBRATION_SAMPLES
from vitedge.data.shapes import ShapesConfig, shapes_samples
from vitedge.errors import ImageLoadError, UsageError
from vitedge.runtime.images import expand_image_paths, load_rgb
from vitedge.runtime.preprocess import preprocess_batch
from vitedge.runtime.preprocess_spec import PreprocessSpec

BUILTIN = "builtin"


@dataclass(frozen=True)
class CalibrationSet:
    """Preprocessed calibration inputs (N, …) float32 and what they are, for the manifest."""

    inputs: np.ndarray
    source: str
    sha256: str

    def batches(self, batch_size: int = 1) -> Iterator[np.ndarray]:
        """The inputs in batches, in a fixed order (the ``get_next`` of a calibration reader)."""
        for start in range(0, len(self.inputs), batch_size):
            yield self.inputs[start : start + batch_size]

    def describe(self, method: str) -> dict:
        return {"source": self.source, "samples": len(self.inputs), "sha256": self.sha256, "method": method}


def load_calibration(
    spec: PreprocessSpec, source: str = BUILTIN, samples: int = DEFAULT_CALIBRATION_SAMPLES, *, split: str = "calibration"
) -> CalibrationSet:
    """Calibration inputs from a folder of images or the built-in dataset's ``split``.

    Raises:
        UsageError: the folder does not exist or holds no readable images.
    """
    if samples < 1:
        raise UsageError(f"calibration samples must be at least 1, got {samples}")
    if source == BUILTIN:
        config = ShapesConfig()
        per_class = math.ceil(samples / config.num_classes)
        images = [image for image, _ in shapes_samples(split, per_class, config)][:samples]
        description = f"built-in shapes {split} split (seed {config.seed})"
    else:
        folder = Path(source)
        if not folder.is_dir():
            raise UsageError(f"--calibration {source}: no such folder", hint="pass a folder of images, or 'builtin'")
        chosen = calibration_paths(folder, samples) if split == "calibration" else held_out_paths(folder, samples)
        images, unreadable = [], 0
        for path in chosen:
            try:
                images.append(load_rgb(path))
            except ImageLoadError:
                unreadable += 1
        if not images:
            raise UsageError(f"--calibration {source}: none of its images can be read", hint="pass a folder of JPEG/PNG images")
        description = f"{len(images)} images from {source}" + (f" ({unreadable} unreadable skipped)" if unreadable else "")
    inputs = preprocess_batch(images, spec)
    return CalibrationSet(inputs, description, hashlib.sha256(inputs.tobytes()).hexdigest())


def _folder_images(folder: Path) -> list[str]:
    paths = expand_image_paths([str(folder)])
    if not paths:
        raise UsageError(f"--calibration {folder}: no images in it", hint="pass a folder of JPEG/PNG images")
    return paths


def calibration_paths(folder: Path, samples: int) -> list[str]:
    """``samples`` images spread over the folder (not just its first class)."""
    paths = _folder_images(folder)
    step = max(1, len(paths) // samples)
    return paths[::step][:samples]


def held_out_paths(folder: Path, samples: int) -> list[str]:
    """Up to ``samples`` images of the folder that :func:`calibration_paths` does not use."""
    used = set(calibration_paths(folder, samples))
    rest = [path for path in _folder_images(folder) if path not in used]
    if not rest:
        raise UsageError(
            f"--calibration {folder}: every image is used for calibration, none is left to measure the accuracy budget",
            hint="add images to the folder or lower --calibration-samples",
        )
    step = max(1, len(rest) // samples)
    return rest[::step][:samples]
