"""A variant of vitedge's int8-dynamic ONNX graph for the exporter-choice study: q, k and v as one packed int8 GEMM.

vitedge's int8-dynamic graph quantizes the q, k and v projections as three ``MatMulInteger`` nodes on one
quantized input (each ``[hidden, hidden]``) feeding the fused ``MultiHeadAttention``. onnxruntime's int8 GEMM
reaches about half the GMAC/s on a 197×768×768 GEMM that it reaches on 197×768×3072 (``gemm_ceiling.md``), so
one ``[hidden, 3·hidden]`` GEMM followed by a ``Split`` could be faster. :func:`pack_qkv` rewrites the saved
graph that way: the int8 weights, their zero points and per-channel scales and the biases are concatenated
along the output channels, so the integer arithmetic, and the output, stay those of the three GEMMs.

Torch-free (onnx + numpy); a benchmark study's helper, not a converter stage: it is kept only if it measures faster.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class _Projection:
    """One projection's dequantized output chain: MatMulInteger → Cast → Mul(scales) → Add(bias)."""

    matmul: object
    nodes: tuple  # every node of the chain, the scales' Mul included
    weight: np.ndarray
    zero_point: np.ndarray
    scale: np.ndarray
    bias: np.ndarray
    input_scale: str


class _Graph:
    """Lookups over one ONNX graph: producers, and constants through the exporter's Identity nodes."""

    def __init__(self, graph) -> None:
        from onnx import numpy_helper

        self.graph = graph
        self.constants = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
        self.producer = {output: node for node in graph.node for output in node.output}

    def constant(self, name: str) -> np.ndarray | None:
        while name not in self.constants and getattr(self.producer.get(name), "op_type", None) == "Identity":
            name = self.producer[name].input[0]
        return self.constants.get(name)

    def split(self, node) -> tuple[np.ndarray, str]:
        """A two-input node's (constant, the other input's name)."""
        first, second = node.input
        return (self.constant(first), second) if self.constant(first) is not None else (self.constant(second), first)

    def projection(self, output: str) -> _Projection | None:
        add = self.producer.get(output)
        if getattr(add, "op_type", None) != "Add":
            return None
        bias, product = self.split(add)
        mul = self.producer.get(product)
        cast = self.producer.get(mul.input[0]) if getattr(mul, "op_type", None) == "Mul" else None
        matmul = self.producer.get(cast.input[0]) if getattr(cast, "op_type", None) == "Cast" else None
        scales = self.producer.get(mul.input[1]) if mul is not None else None
        if getattr(matmul, "op_type", None) != "MatMulInteger" or getattr(scales, "op_type", None) != "Mul" or bias is None:
            return None
        scale, input_scale = self.split(scales)
        weight, zero_point = self.constant(matmul.input[1]), self.constant(matmul.input[3])
        if weight is None or zero_point is None or scale is None:
            return None
        return _Projection(matmul, (add, mul, cast, matmul, scales), weight, zero_point, scale, bias, input_scale)


def _packed_nodes(prefix: str, parts: list[_Projection], graph) -> tuple[list, list[str]]:
    """The packed GEMM's nodes (its constants added to ``graph``) and the q, k, v outputs of its Split."""
    from onnx import TensorProto, helper, numpy_helper

    first = parts[0].matmul
    constants = {"weight": np.concatenate([p.weight for p in parts], axis=1),
                 "zero_point": np.concatenate([p.zero_point for p in parts]),
                 "scale": np.concatenate([p.scale for p in parts]), "bias": np.concatenate([p.bias for p in parts]),
                 "sizes": np.array([p.weight.shape[1] for p in parts], dtype=np.int64)}
    graph.initializer.extend(numpy_helper.from_array(value, f"{prefix}.{key}") for key, value in constants.items())
    outputs = [f"{prefix}/{name}" for name in ("q", "k", "v")]
    nodes = [
        helper.make_node("Mul", [parts[0].input_scale, f"{prefix}.scale"], [f"{prefix}/scales"], name=f"{prefix}/scales"),
        helper.make_node("MatMulInteger", [first.input[0], f"{prefix}.weight", first.input[2], f"{prefix}.zero_point"],
                         [f"{prefix}/int32"], name=f"{prefix}/MatMul_quant"),
        helper.make_node("Cast", [f"{prefix}/int32"], [f"{prefix}/float"], to=TensorProto.FLOAT, name=f"{prefix}/Cast"),
        helper.make_node("Mul", [f"{prefix}/float", f"{prefix}/scales"], [f"{prefix}/matmul"], name=f"{prefix}/Mul"),
        helper.make_node("Add", [f"{prefix}.bias", f"{prefix}/matmul"], [f"{prefix}/out"], name=f"{prefix}/Add"),
        helper.make_node("Split", [f"{prefix}/out", f"{prefix}.sizes"], outputs, axis=-1, name=f"{prefix}/Split"),
    ]
    return nodes, outputs


def pack_qkv(path: str | Path, out: str | Path) -> int:
    """Save ``path``'s graph with every attention's q/k/v ``MatMulInteger`` packed into one; returns how many.

    An attention whose three inputs are not dequantized int8 GEMMs of one quantized input is left as it is.
    """
    import onnx

    model = onnx.load(str(path))
    graph = _Graph(model.graph)
    removed, inserted, packed = set(), {}, 0
    for node in model.graph.node:
        if node.op_type != "MultiHeadAttention" or len(node.input) < 3:
            continue
        parts = [graph.projection(name) for name in node.input[:3]]
        if any(p is None for p in parts) or len({(p.matmul.input[0], p.input_scale) for p in parts}) != 1:
            continue
        chain = {chain_node.name for p in parts for chain_node in p.nodes}
        if "" in chain or len(chain) != 3 * len(parts[0].nodes):
            continue  # unnamed or shared nodes: not the exporter's graph
        prefix = node.name.rsplit("/", 1)[0] + "/qkv_proj"
        nodes, outputs = _packed_nodes(prefix, parts, model.graph)
        removed |= chain
        inserted[node.name] = nodes
        node.input[:3] = outputs
        packed += 1
    order = [new for node in model.graph.node if node.name not in removed for new in (*inserted.get(node.name, ()), node)]
    del model.graph.node[:]
    model.graph.node.extend(order)
    used = {name for node in order for name in node.input}
    kept = [tensor for tensor in model.graph.initializer if tensor.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    onnx.save(model, str(out))
    return packed
