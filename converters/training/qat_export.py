"""Export a quantization-aware-trained folder to an ONNX int8 QDQ artifact with its learned ranges.

The graph is the plain one (standard ONNX ops), so that every linear layer's MatMul is
quantizable (onnxruntime's QDQ quantizer skips MatMuls fed by the fused contrib ops of the
optimized graph). The weight MatMuls get per-channel int8 weights and QDQ inputs, as the
int8-static recipe does (:func:`vitedge.converters.onnx.quantize.quantize`); the
activation-by-activation MatMuls of attention stay float, as QAT trained them. The calibration
step still runs (it builds the QDQ graph) but every activation scale and zero point it chose is
then replaced by the range QAT learned for that layer (``vitedge_qat.json``), computed with the
same arithmetic the fake-quant modules used in training. The artifact is validated against the
torch fp32 model like any conversion, and its recipe says it came from QAT.

:func:`export_int8_matmuls` without ranges is the post-training twin (same graph, same nodes,
calibrated ranges): the fair baseline for measuring what QAT buys.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from vitedge.converters.atomic import atomic_folder
from vitedge.converters.calibration import load_calibration
from vitedge.converters.export_types import (
    DEFAULT_CALIBRATION_SAMPLES,
    DEFAULT_VALIDATION_SAMPLES,
    ExportOptions,
)
from vitedge.converters.loading import SourceModel, load_source
from vitedge.converters.onnx.export import export_onnx
from vitedge.converters.onnx.quantize import Int8Scheme, quantizable_nodes, quantize
from vitedge.converters.stages import ConversionResult, describe, validate_into_manifest
from vitedge.converters.training.qat import QAT_RECORD, QatConfig, activation_qparams
from vitedge.errors import ConversionError, UsageError
from vitedge.formats import get_format

PRECISION = "int8-static"


def read_qat_ranges(folder: str | os.PathLike) -> tuple[QatConfig, dict[str, tuple[float, float]]]:
    """The scheme and learned input ranges a QAT run left in ``folder``."""
    path = Path(folder) / QAT_RECORD
    if not path.is_file():
        raise UsageError(f"{folder}: no {QAT_RECORD}: the model was not trained with --qat",
                         hint="train with --qat, or convert with post-training quantization (vitedge convert)")
    record = json.loads(path.read_text())
    config = QatConfig(signed_activations=record["activations"]["type"] == "int8",
                       reduce_range=bool(record["weights"]["reduce_range"])).resolved()
    return config, {name: (float(low), float(high)) for name, (low, high) in record["ranges"].items()}


def _module_name(node_name: str) -> str:
    """``/vit/layers.0/attention/q_proj/MatMul`` -> ``vit.layers.0.attention.q_proj``."""
    return node_name.strip("/").rsplit("/", 1)[0].replace("/", ".")


def apply_ranges(model_path: Path, ranges: dict[str, tuple[float, float]], config: QatConfig) -> int:
    """Overwrite the QDQ scale/zero point of each weight MatMul's input with the learned range.

    Inputs shared by several layers (query, key, value) get the union of their ranges.

    Returns:
        How many activation tensors got learned ranges.

    Raises:
        ConversionError: A learned range has no quantized MatMul in the graph, or the reverse.
    """
    model = onnx.load(str(model_path))
    producers = {output: node for node in model.graph.node for output in node.output}
    initializers = {init.name: init for init in model.graph.initializer}
    by_input: dict[tuple[str, str], list[str]] = {}
    for node in model.graph.node:
        if node.op_type != "MatMul":
            continue
        dequantize = producers.get(node.input[0])
        weight = producers.get(node.input[1])
        if dequantize is None or dequantize.op_type != "DequantizeLinear" or weight is None:
            continue
        name = _module_name(node.name)
        matches = [key for key in ranges if key == name or key.endswith("." + name) or name.endswith("." + key)]
        if len(matches) != 1:
            raise ConversionError(f"QAT export: no single learned range for MatMul {node.name} (found {matches})")
        by_input.setdefault((dequantize.input[1], dequantize.input[2]), []).append(matches[0])
    used = {name for names in by_input.values() for name in names}
    if used != set(ranges):
        raise ConversionError(f"QAT export: learned ranges without a quantized MatMul: {sorted(set(ranges) - used)[:5]}")
    (act_qmin, act_qmax), _ = config.integer_ranges()
    for (scale_name, zero_name), names in by_input.items():
        low = min(ranges[name][0] for name in names)
        high = max(ranges[name][1] for name in names)
        scale, zero_point = activation_qparams(torch.tensor(low), torch.tensor(high), act_qmin, act_qmax)
        zero_dtype = numpy_helper.to_array(initializers[zero_name]).dtype
        initializers[scale_name].CopyFrom(numpy_helper.from_array(
            np.asarray(scale.item(), dtype=np.float32), scale_name))
        initializers[zero_name].CopyFrom(numpy_helper.from_array(
            np.asarray(zero_point.item(), dtype=zero_dtype), zero_name))
    onnx.save_model(model, str(model_path))
    return len(by_input)


def export_int8_matmuls(
    model: str | os.PathLike | SourceModel,
    out: str | os.PathLike,
    *,
    qat: bool | None = None,
    calibration: str = "builtin",
    calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES,
    validation_samples: int = DEFAULT_VALIDATION_SAMPLES,
    overwrite: bool = False,
    strict: bool = True,
) -> ConversionResult:
    """An ONNX int8 QDQ artifact of the linear layers: QAT ranges when the folder has them, else calibrated.

    Args:
        model: A training output folder (or a loaded SourceModel).
        out: The artifact folder to create.
        qat: Use the folder's learned ranges (True), calibrate (False), or whichever it has (None).
        calibration: Calibration images: ``builtin`` or a folder (PTQ; with QAT only the graph needs them).
        calibration_samples: How many calibration images.
        validation_samples: Inputs the artifact is validated on against torch fp32.
        overwrite: Replace an existing artifact.
        strict: Refuse an artifact that misses the tolerance (False: write it; the manifest says it failed).

    Raises:
        UsageError: ``qat=True`` for a folder without learned ranges.
        ValidationFailedError: The artifact misses the int8-static tolerance; nothing is written.
    """
    source = model if isinstance(model, SourceModel) else load_source(str(model))
    folder = Path(source.info.model)
    has_ranges = (folder / QAT_RECORD).is_file()
    use_qat = has_ranges if qat is None else qat
    config, ranges = read_qat_ranges(folder) if use_qat else (None, None)
    scheme = Int8Scheme.for_cpu()
    if config is not None:  # the layout QAT trained for, whatever this CPU prefers
        scheme = dataclasses.replace(scheme, signed_activations=config.signed_activations,
                                     reduce_range=config.reduce_range, note="the int8 layout QAT trained with")
    fmt = get_format("onnx")
    out_path = Path(out)
    with atomic_folder(out_path, overwrite=overwrite) as work:
        exported = export_onnx(source, work, ExportOptions(precision="fp32", graph="plain"))
        fp32_path = work / "fp32.onnx"
        os.replace(work / "model.onnx", fp32_path)
        graph = onnx.load(str(fp32_path), load_external_data=False)
        weight_nodes = set(quantizable_nodes(graph, ("MatMul",)))
        float_nodes = tuple(n.name for n in graph.graph.node if n.op_type == "MatMul" and n.name not in weight_nodes)
        samples = min(calibration_samples, 8) if use_qat else calibration_samples
        calibration_set = load_calibration(source.preprocess, calibration, samples)
        recipe = quantize(fp32_path, work / "model.onnx", PRECISION, calibration=calibration_set,
                          calibration_method="minmax" if use_qat else "percentile", float_nodes=float_nodes, scheme=scheme)
        recipe["quantization"] = ("static int8 QDQ of the linear layers' MatMuls (per-channel int8 weights, per-tensor "
                                  "activations); attention's activation MatMuls, LayerNorm, Softmax, GELU, residuals in float; "
                                  "plain ONNX graph")
        calibration_record = calibration_set.describe("percentile")
        if use_qat:
            replaced = apply_ranges(work / "model.onnx", ranges, config)
            recipe["qat"] = {"activation_ranges": "learned by quantization-aware training (vitedge_qat.json)",
                             "quantized_inputs": replaced, "layers": len(ranges)}
            recipe.pop("calibration_method", None)
            calibration_record = {"source": "quantization-aware training: moving min/max of each layer's input",
                                  "samples": 0, "sha256": None, "method": "qat"}
        fp32_path.unlink()
        exported = dataclasses.replace(exported, recipe={**exported.recipe, **recipe}, calibration=calibration_record)
        manifest = describe(fmt, PRECISION, work, exported, source)
        manifest.write(work)
        manifest = validate_into_manifest(fmt, work, manifest, source, samples=validation_samples, images_dir=None,
                                          hint="nothing was written; train longer with --qat, or keep fp32",
                                          strict=strict)
    return ConversionResult(out_path, manifest)
