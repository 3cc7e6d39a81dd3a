"""Which torch module each weight op of a litert-torch flatbuffer came from.

The weights tell: an op's weight (dequantized: per channel, per block, or from fp16) is compared with
every torch layer's weight of the same size, and the closest in direction (|cosine|: litert-torch folds
the attention scale into the query and key weights) names it. Where the weight cannot be read, the
tensor names are the fallback. litert-torch names tensors after the modules called on the way (MLIR
locations), e.g. ``vitedge…EdgeClassifier/vitedge…TwoOutputClassifier_classifier/transformers…ViTModel_vit/
transformers…ViTLayer_0/torch.nn.modules.linear.Linear_fc1;1``: one ``package.Class_attribute`` per
module, a ModuleList child by its index alone, several locations joined by ``;;`` where ops were fused.
Those joined names are not reliable (a value projection can carry only the query's location), so the
rule is a fallback: the *last* weight layer named in the weight tensor's name, else the *first* in
the output's (PT2E models, whose weights are anonymous), else the classifier head when the op makes
the ``logits`` output.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from vitedge.converters.diagnose.probe import ModelLayout

#: Ops with a weight (input 1) that recipes quantize.
WEIGHT_OPS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "BATCH_MATMUL", "EMBEDDING_LOOKUP")
_OWN_PACKAGE = "vitedge."


def location_chains(tensor_name: str) -> list[tuple[str, ...]]:
    """The module attribute chains of each location in a tensor name, vitedge's wrappers left out."""
    chains = []
    for location in tensor_name.split(";"):
        if "/" not in location and "." not in location:
            continue  # a ";1" counter or an empty part
        chain = []
        for segment in location.split("/"):
            if segment.startswith(_OWN_PACKAGE):
                continue
            cls_attr = segment.rsplit(".", 1)[-1]
            if "_" in cls_attr:
                chain.append(cls_attr.split("_", 1)[1])
        if chain:
            chains.append(tuple(chain))
    return chains


@dataclass(frozen=True)
class FlatbufferOps:
    """A flatbuffer's ops and tensors as the interpreter lists them (execution order)."""

    ops: list[dict[str, Any]]
    tensors: dict[int, dict[str, Any]]

    @classmethod
    def of(cls, interpreter: Any) -> FlatbufferOps:
        return cls(interpreter._get_ops_details(), {t["index"]: t for t in interpreter.get_tensor_details()})

    def name(self, index: int) -> str:
        return self.tensors[int(index)]["name"]

    def first_chain(self, op: dict[str, Any]) -> tuple[str, ...]:
        """The call chain of an op: the first location of its first output."""
        chains = location_chains(self.name(op["outputs"][0])) if len(op["outputs"]) else []
        return chains[0] if chains else ()


def _layers_in(name: str, layout: ModelLayout) -> list[str]:
    return [path for chain in location_chains(name) if (path := layout.layer_for_chain(chain))]


def _dequantized(interpreter: Any, ops: FlatbufferOps, op: dict[str, Any]) -> np.ndarray | None:
    """An op's weight in float, or None when it cannot be read."""
    index = int(op["inputs"][1])
    producer = next((p for p in ops.ops if index in {int(t) for t in p["outputs"]}), None)
    if producer is not None and producer["op_name"] == "DEQUANTIZE":  # fp16 weights
        index = int(producer["inputs"][0])
    detail = ops.tensors[index]
    try:
        values = np.asarray(interpreter.get_tensor(index), dtype=np.float32)
    except ValueError:  # not a constant
        return None
    quantization = detail.get("quantization_parameters", {})
    scales = np.asarray(quantization.get("scales", ()), dtype=np.float32)
    if np.dtype(detail["dtype"]).kind == "f" or scales.size == 0:
        return values
    zero_points = np.asarray(quantization.get("zero_points", ()), dtype=np.float32)
    block = quantization.get("block_size", 0)
    if block:
        blocks = values.reshape(values.shape[0], -1, block)
        return (blocks * scales.reshape(values.shape[0], -1)[:, :, None]).reshape(values.shape)
    axis = quantization.get("quantized_dimension", 0)
    shape = [1] * values.ndim
    shape[axis] = -1
    zero = zero_points.reshape(shape) if zero_points.size == scales.size else 0.0
    return (values - zero) * scales.reshape(shape)


def _closest_layer(weight: np.ndarray, op_name: str, weights: Mapping[str, np.ndarray]) -> str | None:
    """The layer whose weight points the same way (|cosine| > 0.9), same size; conv weights are OHWI in TFLite."""
    flat = weight.reshape(-1).astype(np.float64)
    norm = np.linalg.norm(flat)
    best, best_cosine = None, 0.9
    conv = op_name.startswith(("CONV", "DEPTHWISE"))
    for path, candidate in weights.items():
        if candidate.size != flat.size or not norm:
            continue
        other = candidate.transpose(0, 2, 3, 1) if conv and candidate.ndim == 4 else candidate
        other = other.reshape(-1).astype(np.float64)
        cosine = abs(flat @ other) / max(norm * np.linalg.norm(other), 1e-30)
        if cosine > best_cosine:
            best, best_cosine = path, cosine
    return best


def layer_weights(model: Any, layout: ModelLayout) -> dict[str, np.ndarray]:
    """Module path → weight (numpy) of every weight layer of the torch ``model``."""
    return {path: model.get_submodule(path).weight.detach().float().numpy() for path in set(layout.layers.values())}


def weight_op_modules(ops: FlatbufferOps, layout: ModelLayout, logits_tensor: int | None, *,
                      interpreter: Any = None, weights: Mapping[str, np.ndarray] | None = None) -> dict[int, str]:
    """Op index → module path for every weight op: by its weight's values when ``interpreter`` (allocated)
    and the torch ``weights`` (:func:`layer_weights`) are given, else by the tensor names."""
    found = {}
    for op in ops.ops:
        if op["op_name"] not in WEIGHT_OPS or len(op["inputs"]) < 2 or op["inputs"][1] < 0:
            continue
        if interpreter is not None and weights:
            values = _dequantized(interpreter, ops, op)
            layer = None if values is None else _closest_layer(values, op["op_name"], weights)
            if layer is not None:
                found[op["index"]] = layer
                continue
        weight = ops.tensors[int(op["inputs"][1])]
        named = _layers_in(weight["name"], layout)
        if not named and weight["name"].endswith("_dequant"):  # fp16 weights go through DEQUANTIZE
            named = _layers_in(weight["name"].removesuffix("_dequant"), layout)
        output = _layers_in(ops.name(op["outputs"][0]), layout)
        if named:
            found[op["index"]] = named[-1]
        elif output:
            found[op["index"]] = output[0]
        elif layout.head is not None and logits_tensor is not None and _feeds(ops, op, logits_tensor):
            found[op["index"]] = layout.head
    return found


def _feeds(ops: FlatbufferOps, op: dict[str, Any], tensor: int, hops: int = 2) -> bool:
    """Whether ``op`` makes ``tensor`` directly or through up to ``hops`` (de)quantize ops."""
    outputs = {int(t) for t in op["outputs"]}
    if tensor in outputs:
        return True
    if hops == 0:
        return False
    return any(_feeds(ops, child, tensor, hops - 1) for child in ops.ops
               if child["op_name"] in ("QUANTIZE", "DEQUANTIZE") and outputs & {int(t) for t in child["inputs"]})
