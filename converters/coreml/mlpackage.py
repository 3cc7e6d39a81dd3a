"""Read a Core ML .mlpackage without running it: its interface, labels, compute dtypes and weights.

Works on any OS (Core ML itself only runs on Apple systems), so Linux can check what a conversion
wrote (structure, compression, sizes) and :mod:`vitedge.converters.coreml.simulate` can put the
package's own decompressed weights back into torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vitedge.converters.coreml.compat import load_program

#: Ops whose output dtype is the network's compute precision.
COMPUTE_OPS = ("conv", "linear", "matmul", "layer_norm", "softmax", "gelu")


@dataclass(frozen=True)
class Feature:
    """One input or output of the model description.

    ``kind`` is the Core ML feature type: ``image``, ``multiArray``, ``string``, ``dictionary``, …;
    ``detail`` the image color space or the array data type; ``shape`` (H, W) for images.
    """

    name: str
    kind: str
    shape: tuple[int, ...] = ()
    detail: str = ""


@dataclass(frozen=True)
class CompressedWeight:
    """A weight Core ML stores compressed (a constexpr op) and what it decompresses to."""

    name: str
    op_type: str
    shape: tuple[int, ...]
    dense_bits: int
    stored_bits: int


@dataclass(frozen=True)
class PackageSummary:
    """What a .mlpackage declares and holds.

    ``input_affine`` lists the constant ``mul``/``add`` ops the first input goes through before
    anything else: an image input's scale and bias, e.g. ``(("mul", (s,)), ("add", (b0, b1, b2)))``.
    """

    specification_version: int
    inputs: tuple[Feature, ...]
    outputs: tuple[Feature, ...]
    predicted_feature: str
    predicted_probabilities: str
    labels: tuple[str, ...]
    author: str
    short_description: str
    version: str
    user_defined: dict[str, str]
    compute_dtypes: frozenset[str]
    compressed: tuple[CompressedWeight, ...]
    input_affine: tuple[tuple[str, tuple[float, ...]], ...] = ()

    def feature(self, name: str) -> Feature:
        return next(f for f in (*self.inputs, *self.outputs) if f.name == name)


def read_package(package: Path) -> PackageSummary:
    """Summarize the .mlpackage at ``package``."""
    from coremltools.converters.mil.mil import types

    spec, program = load_program(package)
    description = spec.description
    function = program.functions["main"]
    operations = list(function.operations)
    classify = [op for op in operations if op.op_type == "classify"]
    metadata = description.metadata
    return PackageSummary(
        specification_version=spec.specificationVersion,
        inputs=tuple(_feature(f) for f in description.input),
        outputs=tuple(_feature(f) for f in description.output),
        predicted_feature=description.predictedFeatureName,
        predicted_probabilities=description.predictedProbabilitiesName,
        labels=tuple(str(label) for label in classify[0].inputs["classes"].val) if classify else (),
        author=metadata.author,
        short_description=metadata.shortDescription,
        version=metadata.versionString,
        user_defined=dict(metadata.userDefined),
        compute_dtypes=frozenset(
            types.builtin_to_string(op.outputs[0].dtype) for op in operations if op.op_type in COMPUTE_OPS
        ),
        compressed=tuple(_compressed(op) for op in _final_constexpr_ops(operations)),
        input_affine=_input_affine(function),
    )


def decompressed_weights(package: Path) -> dict[str, np.ndarray]:
    """Every compressed weight of the package, decompressed exactly as Core ML does, by op name."""
    _, program = load_program(package)
    return {
        op.name: np.asarray(op.materialized_val_inference())
        for op in _final_constexpr_ops(program.functions["main"].operations)
    }


def _final_constexpr_ops(operations) -> list[Any]:
    """constexpr ops whose output is a dense weight (not the input of another constexpr op)."""
    constexpr = [op for op in operations if op.op_type.startswith("constexpr_")]
    return [
        op for op in constexpr
        if not any(child.op_type.startswith("constexpr_") for child in op.outputs[0].child_ops)
    ]


def _input_affine(function: Any) -> tuple[tuple[str, tuple[float, ...]], ...]:
    steps = []
    var = next(iter(function.inputs.values()))
    while len(var.child_ops) == 1 and var.child_ops[0].op_type in ("mul", "add"):
        op = var.child_ops[0]
        constant = op.inputs["y"] if op.inputs["x"] is var else op.inputs["x"]
        if constant.val is None:
            break
        steps.append((op.op_type, tuple(float(v) for v in np.ravel(constant.val))))
        var = op.outputs[0]
    return tuple(steps)


def _bits(dtype: Any) -> int:
    from coremltools.converters.mil.mil import types

    name = types.builtin_to_string(dtype)
    digits = re.sub(r"\D", "", name)
    return int(digits) if digits else 1


def _compressed(op: Any) -> CompressedWeight:
    output = op.outputs[0]
    stored = sum(
        _bits(var.dtype) * int(np.size(var.val)) for var in op.inputs.values() if var.val is not None
    )
    shape = tuple(int(d) for d in output.shape)
    return CompressedWeight(op.name, op.op_type, shape, _bits(output.dtype) * int(np.prod(shape)), stored)


def _feature(description: Any) -> Feature:
    kind = description.type.WhichOneof("Type")
    if kind == "imageType":
        image = description.type.imageType
        color = type(image).ColorSpace.Name(image.colorSpace)
        return Feature(description.name, "image", (image.height, image.width), color)
    if kind == "multiArrayType":
        array = description.type.multiArrayType
        return Feature(
            description.name, "multiArray", tuple(array.shape), type(array).ArrayDataType.Name(array.dataType)
        )
    return Feature(description.name, kind.removesuffix("Type"))
