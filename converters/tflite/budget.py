"""``--max-accuracy-drop`` for TFLite: the shared per-layer search (:mod:`vitedge.converters.accuracy_budget`),
each candidate converted with those layers in float and measured in LiteRT (with XNNPACK, as the runtime
runs it) against the torch fp32 module on the budget images.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

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
from vitedge.converters.tflite.diagnose import decode_output, encode_input
from vitedge.metrics import top1_agreement
from vitedge.runtime.backends.tflite import default_threads
from vitedge.runtime.native_noise import native_noise_hidden
from vitedge.runtime.preprocess_spec import PreprocessSpec

#: The int8 precisions a budget applies to, as for ONNX.
BUDGET_PRECISIONS = ("int8-dynamic", "int8-static")
INPUT_NAME = "pixel_values"


def flatbuffer_logits(model: bytes, inputs: np.ndarray) -> np.ndarray:
    """Run a batch-1 flatbuffer image by image in LiteRT; float32 logits."""
    from ai_edge_litert.interpreter import Interpreter

    with native_noise_hidden():
        interpreter = Interpreter(model_content=model, num_threads=default_threads())
    runner = interpreter.get_signature_runner()
    model_input = runner.get_input_details()[INPUT_NAME]
    output = runner.get_output_details()["logits"]
    rows = [decode_output(runner(**{INPUT_NAME: encode_input(image[None], model_input)})["logits"], output)
            for image in inputs]
    return np.concatenate(rows)


def quantize_within_budget(
    source: SourceModel,
    module: torch.nn.Module,
    spec: PreprocessSpec,
    options: ExportOptions,
    layers: list[str],
    convert: Callable[[tuple[str, ...]], bytes],
) -> tuple[bytes, dict[str, Any]]:
    """The flatbuffer with the fewest of ``layers`` in float that meets ``options.max_accuracy_drop``, and its record.

    ``convert(float_layers)`` converts with those layers left in float; ``module`` is the exported torch
    module (the reference); ``spec`` the artifact's preprocessing.
    """
    check_budget(source, options.precision, BUDGET_PRECISIONS)
    images = budget_inputs(spec, options)
    dtype = torch.uint8 if spec.normalization_in_model else torch.float32
    with torch.inference_mode():
        reference = module(**{INPUT_NAME: torch.from_numpy(images).to(dtype)})["logits"].float().numpy()
    source_images = budget_inputs(source.preprocess, options)[:SENSITIVITY_SAMPLES]
    ranked = sorted(layer_sensitivity(source, source_images, layers).items(), key=lambda item: item[1], reverse=True)
    written: dict[str, bytes] = {}

    def drop_with(float_layers: tuple[str, ...]) -> float:
        written["model"] = convert(float_layers)
        return 100.0 * (1.0 - top1_agreement(reference, flatbuffer_logits(written["model"], images)))

    result = search_budget(drop_with, ranked, options.max_accuracy_drop)
    return written["model"], budget_record(result, options.max_accuracy_drop, len(images))
