"""The OpenVINO format's ``placement`` hook: the executed graph of the compiled model, op by op.

The model is compiled as the runtime's backend compiles it (device, threads, the artifact's inference
precision); ``CompiledModel.get_runtime_model()`` is the graph the plugin executes after its fusions, and
each op's rt_info says its ``layerType``, ``runtimePrecision``, ``execOrder``, the kernel
(``primitiveType``, whose suffix is the compute precision) and the IR ops it absorbed
(``originalLayersNames``). That shows which layers really ran in bf16, int8 or f32.

``--require-delegate`` for OpenVINO: every op runs on the one device asked for, so a fallback is a layer
the artifact quantized (int8-static: a MatMul or Convolution fed by a FakeQuantize) that the plugin ran in
floating point. Weight-only precisions (int8-weight, int4-weight) compute in float by design: their
layers are listed as ``int8 weights, fp32`` and never count as fallbacks.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import openvino as ov

from vitedge.runtime.backends.openvino import OpenVINOBackend
from vitedge.runtime.manifest import Manifest
from vitedge.runtime.placement import OpPlacement, Placement

_PRECISIONS = {"f32": "fp32", "bf16": "bf16", "f16": "fp16", "i8": "int8", "u8": "int8", "i4": "int4",
               "u4": "int4", "fp32": "fp32", "fp16": "fp16"}
_SKIPPED = ("Const", "Input", "Output")
_WEIGHT_OPS = ("MatMul", "Convolution")


def _info(op: Any) -> dict[str, str]:
    rt = op.get_rt_info()
    return {key: rt[key].astype(str) for key in ("layerType", "runtimePrecision", "execOrder", "primitiveType",
                                                   "originalLayersNames") if key in rt}


def precision_of(runtime_precision: str, primitive_type: str) -> str:
    """What an executed op computes in: its kernel's suffix (``brgconv_avx512_I8`` → int8), else its runtime
    precision; int weights under a float kernel are ``int8 weights, fp32``."""
    stored = _PRECISIONS.get(runtime_precision.lower(), "")
    compute = _PRECISIONS.get(primitive_type.rsplit("_", 1)[-1].lower(), "") or stored
    if stored.startswith("int") and not compute.startswith("int"):
        return f"{stored} weights, {compute}"
    return compute


def calibrated_layers(model: Any) -> set[str]:
    """The IR's weight ops whose input is calibrated (fed by a FakeQuantize): the ones meant to run in int8."""
    return {op.get_friendly_name() for op in model.get_ordered_ops()
            if op.get_type_name() in _WEIGHT_OPS and op.input_value(0).get_node().get_type_name() == "FakeQuantize"}


def _carried(originals: list[str], layers: set[str]) -> set[str]:
    return {layer for layer in layers for name in originals if name == layer or name.startswith(layer + "/")}


def openvino_placement(folder: Path, manifest: Manifest, *, device: str | None = None,
                       num_threads: int | None = None) -> Placement:
    """Every op of the executed graph with its device and the precision it runs in."""
    path = Path(folder) / manifest.model_file
    backend = OpenVINOBackend(path, manifest, num_threads=num_threads, device=device or "CPU")
    calibrated = calibrated_layers(ov.Core().read_model(os.fspath(path)))
    executed = sorted((_info(op) | {"name": op.get_friendly_name()} for op in backend.compiled.get_runtime_model().get_ordered_ops()),
                      key=lambda info: int(info.get("execOrder", "0")))
    executed = [info for info in executed if info.get("layerType") not in _SKIPPED]
    ran_int8: dict[str, bool] = dict.fromkeys(calibrated, False)
    for info in executed:
        for layer in _carried(info.get("originalLayersNames", "").split(","), calibrated):
            ran_int8[layer] |= precision_of(info.get("runtimePrecision", ""), info.get("primitiveType", "")) == "int8"
    ops = []
    for index, info in enumerate(executed):
        precision = precision_of(info.get("runtimePrecision", ""), info.get("primitiveType", ""))
        lost = sorted(layer for layer in _carried(info.get("originalLayersNames", "").split(","), calibrated)
                      if not ran_int8[layer])
        fallback = bool(lost) and precision != "int8"
        reason = (f"the artifact quantizes {', '.join(lost)} (FakeQuantize) but the {backend.device} plugin ran it "
                  f"in {precision or 'float'} (kernel {info.get('primitiveType', '?')})") if fallback else ""
        ops.append(OpPlacement(index, info["name"], info.get("layerType", ""), backend.device, precision,
                               fallback, reason))
    preferred = f"{backend.device} (int8 for the calibrated layers)" if calibrated else backend.device
    return Placement(
        artifact=str(folder), runtime=f"openvino {backend.version}", preferred=preferred, ops=tuple(ops),
        how="the compiled model's executed graph (CompiledModel.get_runtime_model(), rt_info layerType, "
            "runtimePrecision, primitiveType, execOrder)",
        notes=(f"the {backend.device} ran in {backend.execution['precision']} (INFERENCE_PRECISION_HINT)",),
    )
