"""``--max-accuracy-drop`` for OpenVINO: the shared per-layer search (:mod:`vitedge.converters.accuracy_budget`),
each candidate quantized by NNCF with those layers in its ignored scope and run on the CPU in f32 (as the
runtime runs the quantized precisions) against the fp32 IR on the budget images.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from vitedge.converters.accuracy_budget import (
    SENSITIVITY_SAMPLES,
    budget_inputs,
    budget_record,
    check_budget,
    layer_sensitivity,
    search_budget,
)
from vitedge.converters.export_types import ExportOptions
from vitedge.converters.loading import SourceModel
from vitedge.converters.openvino.compat import openvino
from vitedge.metrics import top1_agreement

#: The int8 precisions a budget applies to (int4-weight's error is not what the int8 sensitivity ranks).
BUDGET_PRECISIONS = ("int8-static", "int8-weight")
BATCH = 16


def ir_logits(model: Any, inputs: np.ndarray) -> np.ndarray:
    """Run an ``openvino.Model`` on the CPU in f32; float32 logits (its first output)."""
    compiled = openvino().Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    rows = []
    for start in range(0, len(inputs), BATCH):
        request.infer({0: np.ascontiguousarray(inputs[start : start + BATCH], np.float32)})
        rows.append(np.array(request.get_output_tensor(0).data, dtype=np.float32))
    return np.concatenate(rows)


def quantize_within_budget(fp32_model: Any, source: SourceModel, options: ExportOptions, layers: list[str],
                           quantize: Callable[[tuple[str, ...]], Any]) -> tuple[Any, dict[str, Any]]:
    """The result of ``quantize`` with the fewest of ``layers`` in float that meets ``options.max_accuracy_drop``,
    and the budget's record.

    ``quantize(float_layers)`` quantizes a fresh copy of ``fp32_model`` with those layers left in float and
    returns what :func:`vitedge.converters.openvino.quantize.quantize_model` returns.

    Raises:
        UsageError: a precision without a budget, or a random-init model.
    """
    check_budget(source, options.precision, BUDGET_PRECISIONS)
    images = budget_inputs(source.preprocess, options)
    reference = ir_logits(fp32_model, images)
    ranked = sorted(layer_sensitivity(source, images[:SENSITIVITY_SAMPLES], layers).items(),
                    key=lambda item: item[1], reverse=True)
    written: dict[str, Any] = {}

    def drop_with(float_layers: tuple[str, ...]) -> float:
        written["result"] = quantize(float_layers)
        return 100.0 * (1.0 - top1_agreement(reference, ir_logits(written["result"].model, images)))

    result = search_budget(drop_with, ranked, options.max_accuracy_drop)
    return written["result"], budget_record(result, options.max_accuracy_drop, len(images))
