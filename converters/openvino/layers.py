"""Torch module paths in an OpenVINO IR: how ``openvino.convert_model`` names the ops it makes.

The PyTorch frontend names every op after the module that made it, ``__module.model.vit.layers.0.mlp.fc1/
aten::linear/MatMul``, with the path as the traced wrapper sees it (vitedge traces a two-output wrapper
whose ``model`` is the classifier). NNCF keeps those names and adds suffixes (``…/MatMul/fq_weights_1``).
The wrapper's prefix is found by matching the model's own weight layers, not assumed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

MODULE_PREFIX = "__module."
#: Ops that hold a layer's weight: what vitedge's OpenVINO recipes quantize.
WEIGHT_OPS = ("MatMul", "Convolution")


def traced_path(friendly_name: str) -> str | None:
    """``__module.model.vit.layers.0.mlp.fc1/aten::linear/MatMul`` → ``model.vit.layers.0.mlp.fc1``."""
    if not friendly_name.startswith(MODULE_PREFIX):
        return None
    return friendly_name[len(MODULE_PREFIX):].split("/", 1)[0]


def wrapper_prefix(paths: Iterable[str], layers: Iterable[str]) -> str:
    """The prefix the traced wrapper adds to module paths (``model.``), from a weight layer found in ``paths``."""
    known = set(layers)
    for path in paths:
        parts = path.split(".")
        for start in range(len(parts)):
            if ".".join(parts[start:]) in known:
                return ".".join(parts[:start]) + "." if start else ""
    return ""


class ModuleNames:
    """Module paths of an ``openvino.Model``'s ops, as the torch model names them."""

    def __init__(self, model: Any, layers: Iterable[str]) -> None:
        self.ops = [op for op in model.get_ordered_ops() if op.get_type_name() != "Constant"]
        traced = [traced_path(op.get_friendly_name()) for op in self.ops]
        self.prefix = wrapper_prefix([path for path in traced if path], layers)
        self.layers = set(layers)

    def module_of(self, op: Any) -> str | None:
        path = traced_path(op.get_friendly_name())
        if path is None or not path.startswith(self.prefix):
            return None
        return path[len(self.prefix):]

    def weight_ops(self) -> dict[str, list[str]]:
        """Weight layer (module path) → the friendly names of its MatMul/Convolution ops."""
        found: dict[str, list[str]] = {}
        for op in self.ops:
            module = self.module_of(op)
            if op.get_type_name() in WEIGHT_OPS and module in self.layers:
                found.setdefault(module, []).append(op.get_friendly_name())
        return found
