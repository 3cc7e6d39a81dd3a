"""ONNX backend on onnxruntime (CPU by default; any execution provider the user installs)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from vitedge.errors import ArtifactError
from vitedge.runtime.manifest import Manifest


class OnnxBackend:
    """One onnxruntime InferenceSession, created once and shared; ``run`` is thread safe.

    Args:
        model_path: The .onnx file.
        manifest: The artifact's manifest (input and output names).
        num_threads: Intra-op threads (None: onnxruntime's default, all physical cores).
        providers: Execution providers, best first (default: CPUExecutionProvider).
    """

    name = "onnxruntime"
    thread_safe = True

    def __init__(
        self,
        model_path: Path,
        manifest: Manifest,
        *,
        num_threads: int | None = None,
        providers: Sequence[str] | None = None,
    ) -> None:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if num_threads:
            options.intra_op_num_threads = num_threads
            options.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(
                os.fspath(model_path), sess_options=options, providers=list(providers or ["CPUExecutionProvider"])
            )
        except Exception as error:  # onnxruntime raises its own exception types per failure
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ArtifactError(f"{model_path}: onnxruntime cannot load it ({first_line})") from error
        self.version = ort.__version__
        self._input_name = manifest.input.name
        self._output_keys = {"logits": manifest.outputs.logits}
        if manifest.outputs.embedding:
            self._output_keys["embedding"] = manifest.outputs.embedding
        self.max_batch_size = manifest.input.fixed_batch

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        names = list(self._output_keys.values())
        values = self._session.run(names, {self._input_name: np.ascontiguousarray(batch, dtype=np.float32)})
        return dict(zip(self._output_keys, values))
