"""OpenVINO backend: one compiled model on a device (CPU, GPU, NPU or AUTO). Torch free: numpy and openvino.

The artifact says which precision to compute in (``conversion.recipe.inference_precision``, OpenVINO's
``INFERENCE_PRECISION_HINT``: f32 for fp32 and the quantized precisions, bf16, f16); a device that
cannot compute in it runs f32, with a warning. What the device actually runs in is read back from the
compiled model into :attr:`OpenVINOBackend.execution`, which validation writes into the manifest.
``AUTO`` takes the first device present of :data:`AUTO_ORDER` (a note when that is the CPU). Each thread
gets its own infer request, so ``run`` is thread safe.
"""

from __future__ import annotations

import os
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov

from vitedge.errors import ArtifactError, UsageError, did_you_mean
from vitedge.runtime.manifest import Manifest

DEVICES = ("CPU", "GPU", "NPU", "AUTO")
DEFAULT_DEVICE = "CPU"
#: What AUTO runs on: the first of these that is present.
AUTO_ORDER = ("GPU", "NPU", "CPU")
#: The device capability (OPTIMIZATION_CAPABILITIES) an execution precision needs.
CAPABILITIES = {"f32": "FP32", "bf16": "BF16", "f16": "FP16"}
#: What to install for a device OpenVINO does not see.
DRIVERS = {"GPU": "Intel's GPU compute runtime (OpenCL)", "NPU": "Intel's NPU driver"}


class OpenVINOBackend:
    """One ``openvino.CompiledModel``, compiled once; ``run`` is thread safe.

    Args:
        model_path: The model.xml (model.bin beside it).
        manifest: The artifact's manifest (input and output names, the precision to compute in).
        num_threads: CPU inference threads (None: OpenVINO's default, all cores).
        device: ``CPU`` (default), ``GPU``, ``NPU`` (or ``GPU.1``…), or ``AUTO``.

    Raises:
        UsageError: the device is unknown or not present here (the message lists the devices present).
        ArtifactError: OpenVINO cannot read or compile the model.
    """

    name = "openvino"
    thread_safe = True

    def __init__(self, model_path: Path, manifest: Manifest, *, num_threads: int | None = None,
                 device: str = DEFAULT_DEVICE) -> None:
        core = ov.Core()
        self.device = resolve_device(core, device)
        precision = artifact_precision(core, self.device, manifest)
        try:
            model = core.read_model(os.fspath(model_path))
            self.max_batch_size = _static_batch_if_needed(model, self.device, manifest.input.name)
            self._compiled = core.compile_model(model, self.device, _config(self.device, precision, num_threads))
        except RuntimeError as error:  # OpenVINO reports read and compile failures as RuntimeError
            raise ArtifactError(f"{model_path}: OpenVINO cannot load it on {self.device} ({_first_line(error)})") from error
        self.version = ov.__version__.split("-")[0]  # 2026.4.1-22982-<commit>-releases/2026/4
        self.execution = {"runtime": f"openvino {self.version}", "device": self.device,
                          "precision": _executed_precision(self._compiled)}
        self._input_name = manifest.input.name
        self._output_keys = {"logits": manifest.outputs.logits}
        if manifest.outputs.embedding:
            self._output_keys["embedding"] = manifest.outputs.embedding
        self._local = threading.local()

    @property
    def compiled(self) -> Any:
        """The ``openvino.CompiledModel`` (its ``get_runtime_model()`` is the executed graph)."""
        return self._compiled

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self._compiled.create_infer_request()
        request.infer({self._input_name: np.ascontiguousarray(batch, dtype=np.float32)})
        return {key: np.array(request.get_tensor(name).data, dtype=np.float32)
                for key, name in self._output_keys.items()}


def resolve_device(core: Any, device: str) -> str:
    """The device to compile for: ``device`` if present here (``AUTO``: the best one present).

    Raises:
        UsageError: an unknown device name, or one that is not present (listing those that are).
    """
    name = device.strip().upper()
    available = list(core.available_devices)
    if name.split(".")[0] not in DEVICES:
        raise UsageError(f"unknown OpenVINO device {device!r}{did_you_mean(name, DEVICES)}",
                         hint=f"choose one of: {', '.join(DEVICES)} (present here: {', '.join(available)})")
    if name == "AUTO":
        chosen = next(candidate for candidate in (*AUTO_ORDER, *available) if _present(candidate, available))
        if chosen == "CPU":
            warnings.warn("--device AUTO: no GPU or NPU here, running on the CPU", stacklevel=3)
        return chosen
    if not _present(name, available):
        base = name.split(".")[0]
        raise UsageError(f"OpenVINO device {name} is not present here (present: {', '.join(available)})",
                         hint=f"use --device {' or '.join([*available, 'AUTO'])}"
                              + (f"; {base} needs {DRIVERS[base]}" if base in DRIVERS else ""))
    return name


def _present(name: str, available: list[str]) -> bool:
    return name in available or any(present.split(".")[0] == name for present in available)


def artifact_precision(core: Any, device: str, manifest: Manifest) -> str | None:
    """The precision ``manifest``'s artifact computes in on ``device``: its ``inference_precision`` where the device
    has it (:func:`supported_precision`). Only a ``bf16`` artifact warns when it falls back to f32; int8-static's
    float parts ask for bf16 only where it is there."""
    return supported_precision(core, device, manifest.conversion.recipe.get("inference_precision"),
                               warn=manifest.precision == "bf16")


def supported_precision(core: Any, device: str, requested: str | None, *, warn: bool = True) -> str | None:
    """``requested`` if ``device`` computes in it, else f32; None leaves OpenVINO's default.

    f16 artifacts run in f32 where the device has no f16 arithmetic (most CPUs): that is what the
    precision means. A bf16 request on a device without bf16 warns (``warn``): a bf16 artifact's user asked
    for bf16 compute.
    """
    if requested is None or requested == "f32":
        return requested
    capabilities = set(core.get_property(device, "OPTIMIZATION_CAPABILITIES"))
    if CAPABILITIES.get(requested) in capabilities:
        return requested
    if requested == "bf16" and warn:
        warnings.warn(f"this {device} cannot compute in bf16 (it offers {', '.join(sorted(capabilities))}): "
                      "the bf16 artifact runs in f32", stacklevel=4)
    return "f32"


def _config(device: str, precision: str | None, num_threads: int | None) -> dict[str, Any]:
    config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
    if precision is not None and device != "NPU":  # the NPU compiler picks its own precision
        config["INFERENCE_PRECISION_HINT"] = precision
    if num_threads and device == "CPU":
        config["INFERENCE_NUM_THREADS"] = num_threads
    return config


def _static_batch_if_needed(model: Any, device: str, input_name: str) -> int | None:
    """NPUs compile static shapes only: batch 1 there (the caller runs a batch image by image)."""
    if device.split(".")[0] != "NPU":
        return None
    shape = model.input(input_name).get_partial_shape()
    shape[0] = 1
    model.reshape({input_name: shape})
    return 1


def _executed_precision(compiled: Any) -> str:
    """The precision the compiled model computes in, as the device reports it."""
    try:
        return compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
    except RuntimeError:  # a device that does not report it (NPU)
        return "device default"


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip() and not line.startswith("Exception from")]
    return lines[0] if lines else type(error).__name__
