"""OpenVINO precisions: how each is made (NNCF on the converted model) and in what precision it runs.

- ``fp32`` and ``bf16`` are the same fp32 IR; they differ in the execution precision the runtime asks
  OpenVINO for (``INFERENCE_PRECISION_HINT``): f32, pinned, so that ``fp32`` means fp32 on every CPU
  (OpenVINO's own default is bf16 on CPUs with AVX512-BF16 or AMX), or bf16.
- ``fp16`` stores the weights in fp16 (``ov.save_model(compress_to_fp16=True)``); it runs in f16 where
  the device computes in f16 (GPUs, NPUs, CPUs with AVX512-FP16), else in f32.
- ``int8-static``: ``nncf.quantize`` with the transformer preset (``model_type=TRANSFORMER``: int8
  MatMuls, LayerNorm/Softmax/GELU left float) on calibration images, SmoothQuant on (see
  :data:`SMOOTH_QUANT`).
- ``int8-weight`` / ``int4-weight``: ``nncf.compress_weights`` (int8 asymmetric per channel; int4
  symmetric in groups of :data:`INT4_GROUP_SIZE`, the patch embedding and classifier head kept int8).

The quantized precisions run their float parts in f32 (pinned, as ``fp32``). The backend reads the
precision to run in from the manifest (``conversion.recipe.inference_precision``) and records what the
device actually ran in the validation report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vitedge.converters.calibration import load_calibration
from vitedge.converters.export_types import ExportOptions
from vitedge.converters.loading import SourceModel
from vitedge.converters.openvino.compat import nncf, quiet

#: OpenVINO's INFERENCE_PRECISION_HINT per vitedge precision (the manifest's ``inference_precision``).
INFERENCE_PRECISION = {
    "fp32": "f32", "bf16": "bf16", "fp16": "f16", "int8-static": "f32", "int8-weight": "f32", "int4-weight": "f32",
}
#: Precisions whose weights are stored in fp16; the others keep fp32 wherever they are not quantized.
FP16_WEIGHTS = ("fp16",)
#: int4 groups: 32 divides every ViT width (192, 384, 768, 1024, their MLPs) and the tests' 64.
INT4_GROUP_SIZE = 32
#: NNCF's transformer preset turns SmoothQuant on (alpha 0.95 on MatMuls); NNCF's own reference loses 1.7 top-1
#: points on Swin-B with it, so it was measured on ViTs (benchmarks/results/openvino.md): with it the quickstart's
#: trained ViT keeps fp32's top-1 accuracy (89.0%; 88.8% without) at the same 98.2% agreement, min logits cosine
#: 0.980 (0.972 without), and the four tiny random-init test ViTs' min logits cosines rise from 0.895-0.995 to
#: 0.956-0.995. Kept on; re-measure when a new model family (e.g. Swin) is added.
SMOOTH_QUANT = True


@dataclass(frozen=True)
class Quantized:
    """The model at its precision, the recipe for the manifest, and the calibration set used (if any)."""

    model: Any  # openvino.Model
    recipe: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] | None = None


def quantize_model(model: Any, source: SourceModel, options: ExportOptions, *, smooth_quant: bool = SMOOTH_QUANT) -> Quantized:
    """``model`` (an fp32 ``openvino.Model``) made into ``options.precision`` (float precisions: unchanged).

    ``smooth_quant`` (int8-static) is for the study that measures it (benchmarks/studies/openvino_precisions.py).
    """
    precision = options.precision
    recipe: dict[str, Any] = {"inference_precision": INFERENCE_PRECISION[precision],
                              "weights": "fp16" if precision in FP16_WEIGHTS else "fp32"}
    if precision == "int8-static":
        return _static_int8(model, source, options, recipe, smooth_quant)
    if precision in ("int8-weight", "int4-weight"):
        return _compressed_weights(model, precision, recipe)
    return Quantized(model, recipe)


def _static_int8(model: Any, source: SourceModel, options: ExportOptions, recipe: dict[str, Any],
                 smooth_quant: bool) -> Quantized:
    module = nncf()
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        AdvancedSmoothQuantParameters,
    )

    calibration = load_calibration(source.preprocess, options.calibration, options.calibration_samples)
    alphas = AdvancedSmoothQuantParameters() if smooth_quant else AdvancedSmoothQuantParameters(matmul=-1)
    with quiet():
        quantized = module.quantize(
            model, module.Dataset(list(calibration.batches(1))), model_type=module.ModelType.TRANSFORMER,
            subset_size=len(calibration.inputs),
            advanced_parameters=AdvancedQuantizationParameters(smooth_quant_alphas=alphas),
        )
    recipe.update(weights="int8 per-channel symmetric", activations="int8 (MatMul inputs), the rest float",
                  tool="nncf.quantize", model_type="transformer", smooth_quant=smooth_quant)
    method = "nncf.quantize (transformer preset: min-max weights, activation ranges from calibration statistics)"
    return Quantized(quantized, recipe, calibration.describe(method))


def _compressed_weights(model: Any, precision: str, recipe: dict[str, Any]) -> Quantized:
    module = nncf()
    if precision == "int8-weight":
        settings: dict[str, Any] = {"mode": module.CompressWeightsMode.INT8_ASYM}
        recipe.update(weights="int8 per-channel asymmetric")
    else:
        settings = {"mode": module.CompressWeightsMode.INT4_SYM, "group_size": INT4_GROUP_SIZE, "ratio": 1.0}
        recipe.update(weights=f"int4 symmetric, groups of {INT4_GROUP_SIZE}; patch embedding and head int8 asymmetric")
    with quiet():
        compressed = module.compress_weights(model, **settings)
    recipe.update(activations="float", tool="nncf.compress_weights")
    return Quantized(compressed, recipe)
