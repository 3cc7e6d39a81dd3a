"""The ONNX format's ``intermediates`` hook: an artifact's own tensors after every tap, and its quantized ops.

A copy of the graph gets extra outputs and runs in onnxruntime with the runtime's session settings
(:class:`vitedge.runtime.backends.onnx.OnnxBackend`'s: all graph optimizations, CPU provider). The
TorchScript exporter names every node after the module that made it (``/vit/layers.3/mlp/fc1/MatMul``),
and quantization keeps those names as prefixes (``…/MatMul_quant``), so a tap's tensor is found by
scope: of the tensors its module's nodes produce and nodes outside it consume, the last one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from vitedge.converters.diagnose.probe import ArtifactProbe, ModelLayout, Tap
from vitedge.converters.layer_names import onnx_module_path
from vitedge.runtime.manifest import Manifest

#: Ops that read an int8 weight and quantize their activations on the fly.
DYNAMIC_INT8_OPS = ("MatMulInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "QAttention", "QGemm")
_REDUCED = {onnx.TensorProto.INT8: "int8", onnx.TensorProto.UINT8: "int8", onnx.TensorProto.FLOAT16: "fp16",
            onnx.TensorProto.INT4: "int4", onnx.TensorProto.UINT4: "int4"}
_PASS_THROUGH = ("DequantizeLinear", "Cast", "Transpose", "Reshape")


def tap_tensors(graph: onnx.GraphProto, taps: Sequence[Tap]) -> dict[str, str]:
    """Tap name → the graph tensor holding its module's output (taps without a module or a scope are left out)."""
    consumers: dict[str, set[str]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, set()).add(node.name)
    graph_outputs = {output.name for output in graph.output}
    found = {}
    for tap in taps:
        if tap.module is None:
            continue
        scope = "/" + "/".join(tap.chain) + "/"
        inside = {node.name for node in graph.node if node.name.startswith(scope)}
        leaving = [output for node in graph.node if node.name in inside for output in node.output
                   if output and (output in graph_outputs or consumers.get(output, set()) - inside)]
        if leaving:
            found[tap.name] = leaving[-1]
    return found


def quantized_ops(graph: onnx.GraphProto) -> dict[str, str]:
    """Module path → how it is stored, for every node whose weight (input 1) is int8, int4 or fp16."""
    stored = {init.name: init.data_type for init in graph.initializer}
    producer = {output: node for node in graph.node for output in node.output}

    def weight_type(name: str, hops: int = 3) -> int | None:
        if name in stored:
            return stored[name]
        node = producer.get(name)
        if node is None or hops == 0 or node.op_type not in _PASS_THROUGH or not node.input:
            return None
        return weight_type(node.input[0], hops - 1)

    found: dict[str, str] = {}
    for node in graph.node:
        if node.op_type in _PASS_THROUGH or len(node.input) < 2:
            continue
        dtype = weight_type(node.input[1])
        module = onnx_module_path(node.name)
        if dtype not in _REDUCED or module is None:
            continue
        found[module] = _describe(node, _REDUCED[dtype])
    return found


def _describe(node: onnx.NodeProto, dtype: str) -> str:
    if node.op_type == "MatMulNBits":
        bits = next((a.i for a in node.attribute if a.name == "bits"), 4)
        return f"int{bits} weights (MatMulNBits)"
    if node.op_type in DYNAMIC_INT8_OPS:
        return "int8 weights, int8 activations quantized on the fly"
    if dtype == "fp16":
        return "fp16 weights and compute"
    return f"{dtype} weights, calibrated {dtype} activations (QDQ)"


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])


def onnx_intermediates(folder: Path, manifest: Manifest, inputs: np.ndarray, layout: ModelLayout,
                       source: object = None, batch_size: int = 8) -> ArtifactProbe:
    """The artifact's tensor at every tap of ``layout`` for ``inputs``, read through extra graph outputs."""
    model = onnx.load(os.fspath(Path(folder) / manifest.model_file))
    chosen = tap_tensors(model.graph, layout.taps)
    existing = {output.name for output in model.graph.output}
    for name in chosen.values():
        if name not in existing:
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    names = [*chosen.values(), manifest.outputs.logits]
    step = manifest.input.fixed_batch or batch_size
    with tempfile.TemporaryDirectory(prefix="vitedge-diagnose-") as work:
        copy = Path(work) / "probe.onnx"
        onnx.save_model(model, os.fspath(copy), save_as_external_data=True, all_tensors_to_one_file=True,
                        location="probe.onnx.data", size_threshold=1024)
        session = _session(copy)
        parts = [session.run(names, {manifest.input.name: np.ascontiguousarray(inputs[i : i + step], np.float32)})
                 for i in range(0, len(inputs), step)]
    values = [np.concatenate([part[k] for part in parts]).astype(np.float32) for k in range(len(names))]
    tensors = dict(zip(chosen, values))
    tensors["logits"] = values[-1]
    scoped = [tap.name for tap in layout.taps if tap.module is not None and tap.name not in chosen]
    return ArtifactProbe(
        tensors=tensors,
        quantized_ops=quantized_ops(model.graph),
        how="extra graph outputs on a copy of the graph, onnxruntime CPU with all graph optimizations",
        missing={name: "no node of the graph is named after its module (exported with --exporter dynamo?)"
                 for name in scoped},
    )
