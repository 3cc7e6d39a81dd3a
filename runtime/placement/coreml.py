"""The Core ML format's ``placement`` hook: Core ML's compute plan (macOS 14.4+ only).

coremltools' ``MLComputePlan`` (documented in coremltools' "MLComputePlan" guide) says, for every
operation of a compiled ML program, the compute device Core ML prefers (CPU, GPU or Neural Engine),
the devices that could run it, and its estimated share of the work. The Neural Engine is the preferred
device; an op Core ML puts elsewhere is a fallback, and the devices it lists as able to run the op are
the reason the runtime gives. Elsewhere than on a Mac there is no compute plan: one line says so.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

from vitedge.errors import BackendUnavailableError
from vitedge.runtime.manifest import Manifest
from vitedge.runtime.placement import OpPlacement, Placement

NEURAL_ENGINE = "NeuralEngine"
_SKIPPED = ("const",)


def _device_name(device: Any) -> str:
    return type(device).__name__.removeprefix("ML").removesuffix("ComputeDevice")


def _compute_plan(package: Path) -> tuple[Any, str]:
    import coremltools as ct
    from coremltools.models.compute_plan import MLComputePlan

    model = ct.models.MLModel(str(package), compute_units=ct.ComputeUnit.ALL)
    return MLComputePlan.load_from_path(model.get_compiled_model_path(), ct.ComputeUnit.ALL), ct.__version__


def coreml_placement(folder: Path, manifest: Manifest, *, device: str | None = None,
                     num_threads: int | None = None) -> Placement:
    """Core ML's preferred device for every operation of the program (compute units: all)."""
    if platform.system() != "Darwin":
        raise BackendUnavailableError(
            f"{folder}: Core ML's compute plan exists only on macOS 14.4 or later, not on {platform.system()}",
            hint="run vitedge inspect --placement on a Mac (vitedge diagnose simulates Core ML anywhere)",
        )
    plan, version = _compute_plan(Path(folder) / manifest.model_file)
    operations = plan.model_structure.program.functions["main"].block.operations
    compute = manifest.conversion.recipe.get("compute_precision", "")
    ops = []
    for index, operation in enumerate(op for op in operations if op.operator_name not in _SKIPPED):
        usage = plan.get_compute_device_usage_for_mlprogram_operation(operation)
        if usage is None:
            continue
        preferred = _device_name(usage.preferred_compute_device)
        supported = [_device_name(d) for d in usage.supported_compute_devices]
        name = operation.outputs[0].name if operation.outputs else ""
        fallback = preferred != NEURAL_ENGINE
        reason = f"Core ML can run it on: {', '.join(supported)}" if fallback else ""
        ops.append(OpPlacement(index, name, operation.operator_name, preferred, compute, fallback, reason))
    return Placement(
        artifact=str(folder), runtime=f"Core ML (coremltools {version})", preferred=NEURAL_ENGINE, ops=tuple(ops),
        how="coremltools MLComputePlan of the compiled model, compute units: all",
    )
