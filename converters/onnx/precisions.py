"""From the exported fp32 graph to the asked precision: calibration, float layers, accuracy budget, quantization.

Layers are named as ``vitedge diagnose`` prints them (torch module paths); :func:`layer_nodes` maps
them onto the graph's nodes, which the TorchScript exporter names after their module.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from vitedge.converters.accuracy_budget import (
    SENSITIVITY_SAMPLES,
    budget_inputs,
    budget_record,
    check_budget,
    layer_sensitivity,
)
from vitedge.converters.calibration import load_calibration
from vitedge.converters.export_types import ExportOptions
from vitedge.converters.layer_names import onnx_module_path, select
from vitedge.converters.loading import SourceModel
from vitedge.converters.onnx.budget import fit_budget, run_logits
from vitedge.converters.onnx.quantize import Int8Scheme, quantizable_nodes, quantize
from vitedge.errors import UsageError

OP_TYPES = {"int8-dynamic": ("MatMul",), "int8-static": ("MatMul",)}
#: Weight ops each recipe quantizes, which --keep-float can leave in float (fp16: every node).
KEEP_FLOAT_OP_TYPES: dict[str, tuple[str, ...] | None] = {**OP_TYPES, "int4-weight": ("MatMul",), "fp16": None}


@dataclass(frozen=True)
class Quantized:
    recipe: dict[str, Any]
    calibration: dict[str, Any] | None


def check_keep_float(precision: str, patterns: tuple[str, ...]) -> None:
    """Refuse ``--keep-float`` where nothing is quantized (before the export)."""
    if patterns and precision not in KEEP_FLOAT_OP_TYPES:
        raise UsageError(f"--keep-float applies to reduced precisions ({', '.join(KEEP_FLOAT_OP_TYPES)}), not {precision}",
                         hint=f"{precision} keeps every op in float already")


def layer_nodes(model: onnx.ModelProto, precision: str) -> dict[str, list[str]]:
    """Module path → the names of its nodes that ``precision``'s recipe quantizes."""
    op_types = KEEP_FLOAT_OP_TYPES.get(precision)
    names = [node.name for node in model.graph.node] if op_types is None else quantizable_nodes(model, op_types)
    found: dict[str, list[str]] = {}
    for name in names:
        module = onnx_module_path(name)
        if module is not None:
            found.setdefault(module, []).append(name)
    return found


def quantize_artifact_model(source: SourceModel, fp32_path: Path, out_path: Path, options: ExportOptions) -> Quantized:
    """Quantize ``fp32_path`` into ``out_path`` as ``options`` say; returns what the manifest records."""
    precision = options.precision
    scheme = Int8Scheme.for_cpu()
    if precision.startswith("int8") and not scheme.fast:
        warnings.warn(scheme.note, stacklevel=2)
    if options.max_accuracy_drop is not None:
        check_budget(source, precision, tuple(OP_TYPES))
    calibration = None
    if precision == "int8-static":
        calibration = load_calibration(source.preprocess, options.calibration, options.calibration_samples)
    nodes = layer_nodes(onnx.load(str(fp32_path), load_external_data=False), precision)
    kept = select(options.keep_float, sorted(nodes), where="this ONNX graph") if options.keep_float else ()
    recipe_holder: dict[str, dict] = {}

    def quantize_with(float_layers: tuple[str, ...]) -> Path:
        float_nodes = tuple(node for layer in (*kept, *float_layers) for node in nodes[layer])
        recipe_holder["recipe"] = quantize(
            fp32_path, out_path, precision, calibration=calibration,
            calibration_method=options.calibration_method, float_nodes=float_nodes, scheme=scheme,
        )
        return out_path

    budget = None
    if options.max_accuracy_drop is not None:
        inputs = budget_inputs(source.preprocess, options)
        candidates = [layer for layer in nodes if layer not in kept]
        sensitivity = layer_sensitivity(source, inputs[:SENSITIVITY_SAMPLES], candidates, reduce_range=scheme.reduce_range)
        ranked = sorted(sensitivity.items(), key=lambda item: item[1], reverse=True)
        result = fit_budget(quantize_with, run_logits(fp32_path, inputs), inputs, ranked, options.max_accuracy_drop)
        budget = budget_record(result, options.max_accuracy_drop, len(inputs))
    else:
        quantize_with(())
    recipe = dict(recipe_holder["recipe"])
    if kept:
        recipe["float_layers"] = list(kept)
    if budget is not None:
        recipe["accuracy_budget"] = budget
    described = calibration.describe(options.calibration_method) if calibration is not None else None
    return Quantized(recipe, described)
