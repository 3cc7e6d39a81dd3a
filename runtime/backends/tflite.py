"""TFLite backend: LiteRT's Interpreter (ai-edge-litert), else tflite-runtime, else tensorflow.lite.

Torch free: numpy and the interpreter only. The interpreter applies the XNNPACK delegate by default
(LiteRT and TensorFlow Lite both do, with ``num_threads`` threads), so float and quantized models
run on XNNPACK's kernels; :attr:`TFLiteBackend.xnnpack` says whether it took the graph.

The models are exported at batch 1 (see ``vitedge.converters.tflite.export``), so
``max_batch_size`` is 1 and a batch runs image by image. Quantized inputs are quantized here with
the manifest's scale and zero point, raw uint8 pixel inputs are rounded and cast, and int8/int16
outputs are dequantized: :meth:`TFLiteBackend.run` takes and returns float32 like every backend.

Older runtimes get some models wrong without saying so (tflite-runtime 2.14 returns all zeros for
dynamic-range int8 models, crashes on int4 dynamic ones and cannot load int16-activation or
int4 weight-only ones), so only LiteRT runs those precisions; elsewhere they are refused with
the fix, and every model is checked for all-zero output on load.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vitedge.errors import ArtifactError, BackendUnavailableError, UsageError
from vitedge.runtime.cpu_features import usable_cpus
from vitedge.runtime.manifest import Manifest
from vitedge.runtime.native_noise import native_noise_hidden

SIGNATURE = "serving_default"
LITERT = "ai-edge-litert"
#: (module holding Interpreter, attribute path, distribution), best first.
RUNTIMES = (
    ("ai_edge_litert.interpreter", "Interpreter", LITERT),
    ("tflite_runtime.interpreter", "Interpreter", "tflite-runtime"),
    ("tensorflow", "lite.Interpreter", "tensorflow"),
)
#: What runtimes other than LiteRT do with these precisions (measured with tflite-runtime 2.14).
LITERT_ONLY = {
    "int8-dynamic": "returns all zeros for dynamic-range int8 models",
    "int4-weight": "crashes on int4 dynamic models and cannot load int4 weight-only ones",
}
INT16_PROBLEM = "cannot load models with int16 activations"
FIX = f"pip install {LITERT} (LiteRT, the maintained TFLite runtime), or convert with --precision fp32 or int8-static"


@dataclass(frozen=True)
class InterpreterRuntime:
    """The TFLite interpreter found here: its class, and which package and version provide it."""

    interpreter_class: Any
    package: str
    version: str

    @property
    def is_litert(self) -> bool:
        return self.package == LITERT


def find_runtime() -> InterpreterRuntime:
    """The best installed interpreter (the one place that knows the three packages apart).

    Raises:
        BackendUnavailableError: none of them can be imported.
    """
    for module_name, attribute, package in RUNTIMES:
        try:
            found: Any = importlib.import_module(module_name)
        except ImportError:
            continue
        for part in attribute.split("."):
            found = getattr(found, part)
        try:
            version = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        return InterpreterRuntime(found, package, version)
    raise BackendUnavailableError("no TFLite interpreter is installed", hint=f"pip install {LITERT}")


def default_threads() -> int:
    """All CPUs this process may use (onnxruntime's default too); LiteRT's own default is one thread."""
    return usable_cpus()


class TFLiteBackend:
    """One TFLite interpreter, created once; not thread safe (the Classifier serializes calls).

    Args:
        model_path: The .tflite file.
        manifest: The artifact's manifest (input dtype, quantization, output names).
        num_threads: Threads for the interpreter and XNNPACK (None: all usable CPUs).
        runtime: The interpreter to use (default: :func:`find_runtime`).
    """

    thread_safe = False

    def __init__(
        self,
        model_path: Path,
        manifest: Manifest,
        *,
        num_threads: int | None = None,
        runtime: InterpreterRuntime | None = None,
    ) -> None:
        runtime = runtime or find_runtime()
        refuse_if_unsupported(runtime, manifest, model_path)
        self.name = runtime.package
        self.version = runtime.version
        self.num_threads = num_threads or default_threads()
        try:
            with native_noise_hidden():
                self._interpreter = runtime.interpreter_class(model_path=os.fspath(model_path), num_threads=self.num_threads)
                self._interpreter.allocate_tensors()
            input_details, output_details = _signature_details(self._interpreter)
        except Exception as error:  # the interpreters raise ValueError/RuntimeError with multi-line text
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise ArtifactError(f"{model_path}: {runtime.package} {runtime.version} cannot load it ({first_line})") from error
        self._input = _InputCodec(manifest, input_details, model_path)
        self._outputs = {key: _OutputCodec(key, manifest, output_details, model_path) for key in _output_keys(manifest)}
        self.max_batch_size = manifest.input.fixed_batch
        if not runtime.is_litert:
            self._check_not_all_zero(model_path)

    @property
    def xnnpack(self) -> bool | None:
        """Whether the XNNPACK delegate took (part of) the graph; None when this interpreter cannot tell."""
        try:
            ops = self._interpreter._get_ops_details()  # private, but no public API says which delegate ran
        except AttributeError:
            return None
        return any(op.get("op_name") == "DELEGATE" for op in ops)

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Run a float32 batch in the manifest's layout; returns float32 ``logits`` and ``embedding``."""
        batch = np.asarray(batch, dtype=np.float32)
        if batch.shape[1:] != self._input.shape[1:]:
            raise UsageError(f"input of shape {batch.shape[1:]} where the model takes {self._input.shape[1:]}")
        step = self._input.shape[0]
        parts = [self._run_fixed(batch[start : start + step]) for start in range(0, len(batch), step)]
        return {key: np.concatenate([part[key] for part in parts]) for key in self._outputs}

    def _run_fixed(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        self._interpreter.set_tensor(self._input.index, self._input.encode(batch))
        self._interpreter.invoke()
        return {key: codec.decode(self._interpreter.get_tensor(codec.index)) for key, codec in self._outputs.items()}

    def _check_not_all_zero(self, model_path: Path) -> None:
        probe = np.full(self._input.shape, 0.5, dtype=np.float32)
        if self._input.raw_pixels:
            probe[:] = 128
        if not np.any(self._run_fixed(probe)["logits"]):
            raise BackendUnavailableError(
                f"{model_path}: {self.name} {self.version} returns all-zero logits for this model", hint=FIX
            )


def refuse_if_unsupported(runtime: InterpreterRuntime, manifest: Manifest, model_path: Path) -> None:
    """Refuse the precisions an older runtime gets wrong silently or crashes on.

    Raises:
        BackendUnavailableError: naming the runtime, the precision and the fix.
    """
    if runtime.is_litert:
        return
    quantized = [manifest.input.dtype] + [q.get("dtype") for q in (manifest.outputs.quantization or {}).values()]
    problem = LITERT_ONLY.get(manifest.precision) or (INT16_PROBLEM if "int16" in quantized else None)
    if problem:
        raise BackendUnavailableError(
            f"{model_path}: this {manifest.precision} TFLite model needs {LITERT}; "
            f"{runtime.package} {runtime.version} {problem}",
            hint=FIX,
        )


def _signature_details(interpreter: Any) -> tuple[dict[str, dict], dict[str, dict]]:
    """Input and output details by signature name. The runner is dropped here: while one is alive it
    holds the interpreter, which then refuses to allocate or invoke ("reference to internal data")."""
    runner = interpreter.get_signature_runner(SIGNATURE)
    return runner.get_input_details(), runner.get_output_details()


def _output_keys(manifest: Manifest) -> tuple[str, ...]:
    return ("logits", "embedding") if manifest.outputs.embedding else ("logits",)


def _check_dtype(what: str, manifest_dtype: str, details: dict, model_path: Path) -> np.dtype:
    actual = np.dtype(details["dtype"])
    if actual.name != manifest_dtype:
        raise ArtifactError(
            f"{model_path}: the {what} is {actual.name} but the manifest says {manifest_dtype}",
            hint="the model file and manifest.json do not belong together; re-create the artifact",
        )
    return actual


class _InputCodec:
    """float32 in the manifest's layout -> the model's input tensor (float, raw uint8 or quantized)."""

    def __init__(self, manifest: Manifest, details: dict[str, dict], model_path: Path) -> None:
        spec = manifest.input
        if spec.name not in details:
            raise ArtifactError(f"{model_path}: no input {spec.name!r} in signature {SIGNATURE!r} (has {', '.join(details)})")
        detail = details[spec.name]
        self.index = detail["index"]
        self.shape = tuple(int(n) for n in detail["shape"])
        self.dtype = _check_dtype("input", spec.dtype, detail, model_path)
        self.scale, self.zero_point = spec.scale, spec.zero_point or 0
        self.raw_pixels = manifest.preprocess.normalization_in_model

    def encode(self, batch: np.ndarray) -> np.ndarray:
        if self.dtype.kind == "f":
            return batch.astype(self.dtype, copy=False)
        values = batch / self.scale + self.zero_point if self.scale else batch
        limits = np.iinfo(self.dtype)
        return np.clip(np.rint(values), limits.min, limits.max).astype(self.dtype)


class _OutputCodec:
    """One output tensor -> float32, dequantized with the manifest's scale and zero point."""

    def __init__(self, key: str, manifest: Manifest, details: dict[str, dict], model_path: Path) -> None:
        name = getattr(manifest.outputs, key)
        if name not in details:
            raise ArtifactError(f"{model_path}: no output {name!r} in signature {SIGNATURE!r} (has {', '.join(details)})")
        quantization = (manifest.outputs.quantization or {}).get(key)
        self.index = details[name]["index"]
        _check_dtype(f"{key} output", quantization["dtype"] if quantization else "float32", details[name], model_path)
        self.scale = quantization["scale"] if quantization else None
        self.zero_point = quantization["zero_point"] if quantization else 0

    def decode(self, values: np.ndarray) -> np.ndarray:
        if self.scale is None:
            return values.astype(np.float32, copy=False)
        return ((values.astype(np.float32) - self.zero_point) * self.scale).astype(np.float32)
