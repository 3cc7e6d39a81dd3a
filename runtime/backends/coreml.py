"""Core ML backend on coremltools' MLModel: macOS only, Core ML itself runs the model. Torch free.

:func:`vitedge.runtime.backends.open_backend` only constructs it where the format's
``runtime_systems`` allow (Darwin) and says so clearly elsewhere. An image input (``ct.ImageType``)
gets each preprocessed image as an 8-bit RGB PIL image, a MultiArray input the float tensor.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from PIL import Image

from vitedge.errors import ArtifactError, UsageError, did_you_mean
from vitedge.runtime.manifest import Manifest

_logger = logging.getLogger("coremltools")
_level = _logger.level
_logger.setLevel(logging.ERROR)  # its import warns about untested torch versions it will not use here
try:
    import coremltools as ct
finally:
    _logger.setLevel(_level)

COMPUTE_UNITS = ("ALL", "CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE")


class CoreMLBackend:
    """One compiled Core ML model, loaded once.

    Args:
        model_path: The .mlpackage folder.
        manifest: The artifact's manifest (input and output names, input kind).
        num_threads: Ignored: Core ML schedules its own threads.
        compute_units: Where Core ML may run the model: ``ALL`` (CPU, GPU and Neural Engine),
            ``CPU_ONLY``, ``CPU_AND_GPU`` or ``CPU_AND_NE``.
    """

    name = "coreml"
    thread_safe = False
    max_batch_size = None  # any batch: run() hands Core ML one prediction per image

    def __init__(
        self, model_path: Path, manifest: Manifest, *, num_threads: int | None = None, compute_units: str = "ALL"
    ) -> None:
        if compute_units not in COMPUTE_UNITS:
            raise UsageError(
                f"unknown Core ML compute units {compute_units!r}{did_you_mean(compute_units, COMPUTE_UNITS)}",
                hint=f"choose one of: {', '.join(COMPUTE_UNITS)}",
            )
        try:
            self._model = ct.models.MLModel(os.fspath(model_path), compute_units=ct.ComputeUnit[compute_units])
        except Exception as error:  # Core ML reports load failures with several exception types
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ArtifactError(f"{model_path}: Core ML cannot load it ({first_line})") from error
        self.version = ct.__version__
        self.compute_units = compute_units
        self._input_name = manifest.input.name
        self._image_input = manifest.preprocess.normalization_in_model
        self._output_keys = {"logits": manifest.outputs.logits}
        if manifest.outputs.embedding:
            self._output_keys["embedding"] = manifest.outputs.embedding

    def _feed(self, tensor: np.ndarray) -> Image.Image | np.ndarray:
        if self._image_input:  # (H, W, 3) pixel values 0..255
            return Image.fromarray(np.clip(np.rint(tensor), 0, 255).astype(np.uint8))
        return np.ascontiguousarray(tensor[None], dtype=np.float32)

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        feeds = [{self._input_name: self._feed(tensor)} for tensor in batch]
        predictions = self._model.predict(feeds) if len(feeds) > 1 else [self._model.predict(feeds[0])]
        return {
            key: np.concatenate([np.asarray(p[name], dtype=np.float32).reshape(1, -1) for p in predictions])
            for key, name in self._output_keys.items()
        }
