"""Post-training quantization of ViT ONNX graphs with onnxruntime, transformer-aware by default.

Recipes (one per precision; the manifest records the one used and why):

- ``fp16``: weights and activations in half precision, fp32 inputs and outputs kept. For size and
  GPU/NPU targets: on CPUs onnxruntime runs it slower than fp32.
- ``int8-dynamic``: int8 per-channel weights for every weight MatMul (q/k/v projections into a fused
  float ``MultiHeadAttention`` in the default graph: faster here than the plain graph and than
  ``QAttention``), activations quantized on the fly. No calibration.
- ``int8-static``: QDQ with calibrated activation ranges, MatMul only: LayerNorm, Softmax, GELU
  and residual Adds stay float (all-ops int8 collapses ViT accuracy), per-channel weights, an
  outlier-robust calibration method by default (percentile).
- ``int4-weight``: 4-bit blockwise symmetric weights (``MatMulNBits``), float activations.

The int8 formats follow the CPU (:mod:`vitedge.runtime.cpu_features`, :class:`Int8Scheme`): uint8
activations with int8 weights (U8S8) on x86, signed (S8S8) on ARM, reduce-range weights on x86
without VNNI, and a warning where int8 may not beat fp32.
"""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from vitedge.converters.calibration import CalibrationSet
from vitedge.errors import ConversionError
from vitedge.runtime.cpu_features import CpuFeatures, cpu_features

INT4_BLOCK_SIZE = 32
#: What every integer precision here quantizes: MatMuls with a weight input (convolutions and the rest stay float).
WEIGHT_OPS = ("MatMul",)
CALIBRATION_METHODS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}
_FLOAT = {"DefaultTensorType": onnx.TensorProto.FLOAT}  # contrib ops defeat ONNX shape inference


@dataclass(frozen=True)
class Int8Scheme:
    """How int8 is laid out for this CPU.

    Measured on an AVX512-VNNI x86 CPU (ViT-B, static QDQ MatMuls, onnxruntime 1.31): uint8
    activations with int8 weights (U8S8) ran at 0.39x fp32, signed activations (S8S8) at 0.79x:
    x86's int8 dot-product instructions (VNNI ``vpdpbusd``, AVX2 ``vpmaddubsw``) multiply unsigned
    by signed bytes, so S8S8 needs extra work there. ARM's ``sdot`` multiplies signed by signed,
    so S8S8 is its native layout. Without VNNI, AVX2's 16-bit intermediate sums can saturate:
    weights then use 7 bits (reduce_range).
    """

    signed_activations: bool
    reduce_range: bool
    fast: bool
    note: str

    @classmethod
    def for_cpu(cls, features: CpuFeatures | None = None) -> Int8Scheme:
        features = features or cpu_features()
        if features.machine in ("aarch64", "arm64"):
            if features.arm_dotprod:
                return cls(True, False, True, f"S8S8: ARM int8 dot products in hardware ({features.summary})")
            return cls(True, False, False, f"S8S8 without ARM dot-product instructions ({features.summary}); "
                                           "int8 may not run faster than fp32 on this CPU")
        if features.vnni:
            return cls(False, False, True, f"U8S8: x86 VNNI multiplies uint8 by int8 in hardware ({features.summary})")
        return cls(False, True, False, f"U8S8 with reduce_range: no int8 dot-product instructions ({features.summary}); "
                                       "int8 may not run faster than fp32 on this CPU")


def quantizable_nodes(model: onnx.ModelProto, op_types: tuple[str, ...]) -> list[str]:
    """Names of the nodes of ``op_types`` whose second input is a weight (an initializer)."""
    weights = {init.name for init in model.graph.initializer}
    return [n.name for n in model.graph.node if n.op_type in op_types and len(n.input) > 1 and n.input[1] in weights]


def quantize(
    fp32_path: Path,
    out_path: Path,
    precision: str,
    *,
    calibration: CalibrationSet | None = None,
    calibration_method: str = "percentile",
    float_nodes: tuple[str, ...] = (),
    scheme: Int8Scheme | None = None,
) -> dict[str, Any]:
    """Write the ``precision`` version of ``fp32_path`` to ``out_path``; returns the recipe for the manifest."""
    scheme = scheme or Int8Scheme.for_cpu()
    model = onnx.load(str(fp32_path))
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # onnxruntime.quantization logs advice through the root logger, and prints
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return _quantize(model, fp32_path, out_path, precision, calibration, calibration_method, float_nodes, scheme)
    finally:
        root.setLevel(level)


def _quantize(model, fp32_path, out_path, precision, calibration, calibration_method, float_nodes, scheme) -> dict[str, Any]:
    if precision == "fp16":
        return _fp16(model, out_path, float_nodes)
    if not quantizable_nodes(model, WEIGHT_OPS):
        # every integer precision here quantizes MatMuls with weights; a graph without any would come out float
        raise ConversionError(f"{precision}: the graph has no MatMul with weights left to quantize (ONNX int8 and int4 "
                              "quantize MatMuls only; 1x1 convolutions, as in MobileViT V2, stay float)",
                              hint="use fp16 here, or a format that quantizes convolutions (vitedge formats --families)")
    if precision == "int8-dynamic":
        return _int8_dynamic(model, fp32_path, out_path, float_nodes, scheme)
    if precision == "int8-static":
        if calibration is None:
            raise ConversionError("int8-static needs calibration images", hint="pass --calibration DIR or builtin")
        return _int8_static_or_minmax(model, fp32_path, out_path, calibration, calibration_method, float_nodes, scheme)
    if precision == "int4-weight":
        return _int4(model, out_path, float_nodes)
    raise ConversionError(f"no ONNX quantization recipe for {precision!r}")


def _fp16(model: onnx.ModelProto, out_path: Path, float_nodes: tuple[str, ...] = ()) -> dict[str, Any]:
    from onnxruntime.transformers.onnx_model import OnnxModel

    wrapped = OnnxModel(model)
    wrapped.convert_float_to_float16(keep_io_types=True, node_block_list=list(float_nodes))
    wrapped.save_model_to_file(str(out_path))
    return {"quantization": "fp16 weights and compute, fp32 inputs/outputs (onnxruntime float16 converter)",
            "note": "for size and GPU/NPU targets; on CPU onnxruntime runs fp16 slower than fp32",
            **({"float_nodes": list(float_nodes)} if float_nodes else {})}


def _int8_dynamic(model, fp32_path, out_path, float_nodes, scheme) -> dict[str, Any]:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    op_types = WEIGHT_OPS
    quantize_dynamic(
        str(fp32_path), str(out_path), op_types_to_quantize=list(op_types), per_channel=True,
        reduce_range=scheme.reduce_range, weight_type=QuantType.QInt8,
        nodes_to_exclude=list(float_nodes), extra_options=_FLOAT,
    )
    return {"quantization": "dynamic int8: per-channel int8 weights of every MatMul (attention's "
                      "projections included), activations quantized per tensor at run time; LayerNorm, Softmax, "
                      "GELU, residuals and the attention score products (softmax(QK^T)V, one MultiHeadAttention "
                      "op per layer where the graph fuses it) in float",
            "op_types": list(op_types), "per_channel": True, "int8_scheme": scheme.note,
            "quantized_nodes": len(quantizable_nodes(model, op_types)) - len(float_nodes),
            "float_nodes": list(float_nodes)}


#: Calibration images whose activations onnxruntime holds in memory at once. Its histogram calibrators
#: (percentile, entropy) otherwise keep every MatMul input of every image until the end: ViT-L/16-384 with
#: 64 images went past 24 GB and was killed.
CALIBRATION_CHUNK = 4


class _Reader:
    """onnxruntime's CalibrationDataReader over a CalibrationSet: one image per call, in chunks.

    ``__len__`` and ``set_range`` let ``quantize_static`` (``CalibStridedMinMax``) collect the
    activations chunk by chunk, merging ranges and histograms as it goes.
    """

    def __init__(self, calibration: CalibrationSet, input_name: str) -> None:
        self._inputs = calibration.inputs
        self._input_name = input_name
        self.set_range(0, len(self._inputs))

    def __len__(self) -> int:
        return len(self._inputs)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._next, self._end = start_index, min(end_index, len(self._inputs))

    def get_next(self):
        if self._next >= self._end:
            return None
        self._next += 1
        return {self._input_name: self._inputs[self._next - 1 : self._next]}

    @property
    def chunk(self) -> int:
        """The largest chunk of at most CALIBRATION_CHUNK images that divides the set evenly."""
        return max(size for size in range(1, CALIBRATION_CHUNK + 1) if len(self) % size == 0)


def _int8_static_or_minmax(model, fp32_path, out_path, calibration, method, float_nodes, scheme) -> dict[str, Any]:
    """int8-static with ``method``; min/max when a histogram method cannot bin an activation of (near) zero range
    (numpy's "Too many bins for data range", e.g. a MobileViT activation that calibration never moves)."""
    try:
        return _int8_static(model, fp32_path, out_path, calibration, method, float_nodes, scheme)
    except ValueError as error:
        if method == "minmax" or "Too many bins" not in str(error):
            raise
    recipe = _int8_static(model, fp32_path, out_path, calibration, "minmax", float_nodes, scheme)
    return {**recipe, "calibration_note": f"{method} calibration could not bin an activation of (near) zero range; "
                                          "fell back to minmax"}


def _int8_static(model, fp32_path, out_path, calibration, method, float_nodes, scheme) -> dict[str, Any]:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    op_types = WEIGHT_OPS
    # quantize MatMul inputs only: outputs (into residual Adds, LayerNorm, GELU) stay float
    reader = _Reader(calibration, model.graph.input[0].name)
    extra = {**_FLOAT, "OpTypesToExcludeOutputQuantization": list(op_types), "CalibStridedMinMax": reader.chunk}
    if method == "percentile":
        extra["CalibPercentile"] = 99.999
    quantize_static(
        str(fp32_path), str(out_path), reader,
        quant_format=QuantFormat.QDQ, op_types_to_quantize=list(op_types), per_channel=True,
        reduce_range=scheme.reduce_range,
        activation_type=QuantType.QInt8 if scheme.signed_activations else QuantType.QUInt8,
        weight_type=QuantType.QInt8, nodes_to_exclude=list(float_nodes),
        calibrate_method=getattr(CalibrationMethod, CALIBRATION_METHODS[method]), extra_options=extra,
    )
    return {"quantization": "static int8 QDQ: MatMul only with calibrated activation ranges and per-channel int8 weights; "
                      "LayerNorm, Softmax, GELU and residual Adds in float",
            "op_types": list(op_types), "per_channel": True, "calibration_method": method,
            "int8_scheme": scheme.note,
            "quantized_nodes": len(quantizable_nodes(model, op_types)) - len(float_nodes),
            "float_nodes": list(float_nodes)}


def _int4(model: onnx.ModelProto, out_path: Path, float_nodes: tuple[str, ...] = ()) -> dict[str, Any]:
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    quantizable = len(quantizable_nodes(model, WEIGHT_OPS))
    quantizer = MatMulNBitsQuantizer(model, bits=4, block_size=INT4_BLOCK_SIZE, is_symmetric=True, accuracy_level=4,
                                     nodes_to_exclude=list(float_nodes))
    quantizer.process()
    onnx.save_model(quantizer.model.model, str(out_path))
    return {"quantization": f"4-bit symmetric blockwise weights (block {INT4_BLOCK_SIZE}) for every MatMul (MatMulNBits, "
                      "int8 compute where the CPU has it: accuracy_level 4); activations float",
            "block_size": INT4_BLOCK_SIZE, "quantized_nodes": quantizable - len(float_nodes),
            "float_nodes": list(float_nodes)}

