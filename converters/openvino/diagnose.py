"""The OpenVINO format's ``intermediates`` hook: an artifact's own tensors after every tap, and its quantized ops.

A copy of the IR (``openvino.Model`` read from model.xml) gets extra outputs (``Model.add_outputs``) and
runs on the CPU in the precision the artifact asks for (``conversion.recipe.inference_precision``), as the
runtime's backend runs it. The ops carry their torch module paths (:mod:`.layers`), so a tap's tensor is
found by scope: of the tensors its module's ops produce and ops outside it consume, the last one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vitedge.converters.diagnose.probe import ArtifactProbe, ModelLayout, Tap
from vitedge.converters.openvino.compat import openvino
from vitedge.converters.openvino.layers import WEIGHT_OPS, ModuleNames
from vitedge.runtime.backends.openvino import artifact_precision
from vitedge.runtime.manifest import Manifest

#: Ops between a stored weight and the op that uses it (decompression, layout).
_PASS_THROUGH = ("Convert", "Subtract", "Multiply", "Reshape", "Transpose")
_REDUCED = {"i8": "int8", "u8": "int8", "i4": "int4", "u4": "int4", "f16": "fp16"}


def tap_outputs(names: ModuleNames, taps: Sequence[Tap]) -> dict[str, Any]:
    """Tap name → the ``openvino.Output`` holding its module's output (taps without a module or ops are left out)."""
    found = {}
    for tap in taps:
        if tap.module is None:
            continue
        inside = {id(op) for op in names.ops if _within(names.module_of(op), tap.module)}
        leaving = [output for op in names.ops if id(op) in inside for output in op.outputs()
                   if any(id(target.get_node()) not in inside for target in output.get_target_inputs())]
        if leaving:
            found[tap.name] = leaving[-1]
    return found


def _within(module: str | None, scope: str) -> bool:
    return module is not None and (module == scope or module.startswith(scope + "."))


def _stored_type(output: Any, hops: int = 6) -> str | None:
    node = output.get_node()
    if node.get_type_name() == "Constant":
        return node.get_output_element_type(0).get_type_name()
    if hops == 0 or node.get_type_name() not in _PASS_THROUGH:
        return None
    return _stored_type(node.input_value(0), hops - 1)


def quantized_ops(names: ModuleNames) -> dict[str, str]:
    """Module path → how it is stored and computed, for every weight op whose weight is int8, int4 or fp16."""
    found: dict[str, str] = {}
    for op in names.ops:
        module = names.module_of(op)
        if op.get_type_name() not in WEIGHT_OPS or module not in names.layers:
            continue
        dtype = _REDUCED.get(_stored_type(op.input_value(1)) or "")
        if dtype is None:
            continue
        calibrated = op.input_value(0).get_node().get_type_name() == "FakeQuantize"
        found[module] = (f"{dtype} weights, calibrated {dtype} activations (FakeQuantize)" if calibrated
                         else f"{dtype} weights, activations quantized at run time by the CPU plugin (dynamic quantization)")
    return found


def openvino_intermediates(folder: Path, manifest: Manifest, inputs: np.ndarray, layout: ModelLayout,
                           source: object = None, batch_size: int = 8) -> ArtifactProbe:
    """The artifact's tensor at every tap of ``layout`` for ``inputs``, read through extra model outputs."""
    ov = openvino()
    core = ov.Core()
    model = core.read_model(os.fspath(Path(folder) / manifest.model_file))
    names = ModuleNames(model, layout.layers.values())
    chosen = tap_outputs(names, layout.taps)
    keys = {}
    for index, (tap, output) in enumerate(chosen.items()):
        keys[tap] = f"vitedge_tap_{index}"
        output.get_tensor().add_names({keys[tap]})
    model.add_outputs(list(chosen.values()))
    keys["logits"] = manifest.outputs.logits
    precision = artifact_precision(core, "CPU", manifest) or "f32"
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": precision})
    request = compiled.create_infer_request()
    parts: dict[str, list[np.ndarray]] = {tap: [] for tap in keys}
    for start in range(0, len(inputs), batch_size):
        request.infer({manifest.input.name: np.ascontiguousarray(inputs[start : start + batch_size], np.float32)})
        for tap, key in keys.items():
            parts[tap].append(np.array(request.get_tensor(key).data, dtype=np.float32))
    scoped = [tap.name for tap in layout.taps if tap.module is not None and tap.name not in chosen]
    return ArtifactProbe(
        tensors={tap: np.concatenate(values) for tap, values in parts.items()},
        quantized_ops=quantized_ops(names),
        how=f"extra outputs on a copy of the IR (Model.add_outputs), OpenVINO {ov.__version__.split('-')[0]} "
            f"CPU in {precision}",
        missing={name: "no op of the IR is named after its module (not converted by vitedge?)" for name in scoped},
    )
