"""From the exported fp32 graph to the asked precision: calibration, accuracy budget, quantization."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vitedge.converters.calibration import load_calibration
from vitedge.converters.export_types import ExportOptions
from vitedge.converters.loading import SourceModel
from vitedge.converters.onnx.budget import fit_budget, node_sensitivity, run_logits
from vitedge.converters.onnx.budget_data import budget_inputs
from vitedge.converters.onnx.quantize import Int8Scheme, quantizable_nodes, quantize
from vitedge.errors import UsageError

OP_TYPES = {"int8-dynamic": ("MatMul",), "int8-static": ("MatMul",)}
SENSITIVITY_SAMPLES = 8


@dataclass(frozen=True)
class Quantized:
    recipe: dict[str, Any]
    calibration: dict[str, Any] | None


def quantize_artifact_model(source: SourceModel, fp32_path: Path, out_path: Path, options: ExportOptions) -> Quantized:
    """Quantize ``fp32_path`` into ``out_path`` as ``options`` say; returns what the manifest records."""
    precision = options.precision
    scheme = Int8Scheme.for_cpu()
    if precision.startswith("int8") and not scheme.fast:
        warnings.warn(scheme.note, stacklevel=2)
    calibration = None
    if precision == "int8-static":
        calibration = load_calibration(source.preprocess, options.calibration, options.calibration_samples)

    def quantize_with(float_nodes: tuple[str, ...]) -> Path:
        recipe_holder["recipe"] = quantize(
            fp32_path, out_path, precision, calibration=calibration,
            calibration_method=options.calibration_method, float_nodes=float_nodes, scheme=scheme,
        )
        return out_path

    recipe_holder: dict[str, dict] = {}
    budget_record = None
    if options.max_accuracy_drop is not None:
        if precision not in OP_TYPES:
            raise UsageError(f"--max-accuracy-drop applies to int8 precisions, not {precision}")
        if source.info.weights == "random-init":
            raise UsageError(
                "--max-accuracy-drop needs a trained model: a random-init model's top-1 has no meaning",
                hint="drop the option for presets",
            )
        inputs = budget_inputs(source.preprocess, options)
        import onnx

        nodes = quantizable_nodes(onnx.load(str(fp32_path), load_external_data=False), OP_TYPES[precision])
        sensitivity = node_sensitivity(fp32_path, nodes, inputs[:SENSITIVITY_SAMPLES], reduce_range=scheme.reduce_range)
        ranked = sorted(sensitivity.items(), key=lambda item: item[1], reverse=True)
        result = fit_budget(quantize_with, run_logits(fp32_path, inputs), inputs, ranked, options.max_accuracy_drop)
        budget_record = {
            "max_drop_points": options.max_accuracy_drop,
            "images": len(inputs),
            "drop_points": round(result.drop_points, 3),
            "drop_points_all_quantized": round(result.drop_all_quantized, 3),
            "evaluations": result.evaluations,
            "most_sensitive": [{"node": name, "relative_error": round(error, 5)} for name, error in result.sensitivity],
        }
    else:
        quantize_with(())
    recipe = dict(recipe_holder["recipe"])
    if budget_record is not None:
        recipe["accuracy_budget"] = budget_record
    described = calibration.describe(options.calibration_method) if calibration is not None else None
    return Quantized(recipe, described)
