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
  symmetric in groups of :data:`INT4_GROUP_SIZE`, smaller where that does not divide a layer's width, the patch
  embedding and classifier head kept int8).

``--keep-float`` (torch module paths, as ``vitedge diagnose`` prints them) becomes NNCF's ignored scope:
the friendly names of the layers' MatMul/Convolution ops, found by :mod:`.layers`. ``--max-accuracy-drop``
(int8-static, int8-weight) grows that scope by the shared per-layer search (:mod:`.budget`).

int8-weight and int4-weight run their float parts in f32 (pinned, as ``fp32``); int8-static in bf16 where the CPU
has it (:data:`INFERENCE_PRECISION`). The backend reads the
precision to run in from the manifest (``conversion.recipe.inference_precision``) and records what the
device actually ran in the validation report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vitedge.converters.calibration import load_calibration
from vitedge.converters.diagnose.reference import model_layout
from vitedge.converters.export_types import ExportOptions
from vitedge.converters.layer_names import select
from vitedge.converters.loading import SourceModel
from vitedge.converters.openvino.budget import quantize_within_budget
from vitedge.converters.openvino.compat import nncf, quiet
from vitedge.converters.openvino.layers import ModuleNames
from vitedge.errors import UsageError

#: OpenVINO's INFERENCE_PRECISION_HINT per vitedge precision (the manifest's ``inference_precision``). int8-static
#: runs its float parts (attention's activation products, softmax, LayerNorm, GELU) in bf16 where the CPU has bf16
#: arithmetic, f32 elsewhere: on an AMD EPYC with AVX512-BF16 (2 threads, batch 1, same run) ViT-L/16-384 ran 1.08x
#: faster (631 vs 682 ms p50, as fast as NNCF's defaults) at the same logits cosine with torch (0.99905 vs 0.99907;
#: NNCF's defaults 0.99599), ViT-B/16-224 1.03x; conversion validates it as it runs here.
INFERENCE_PRECISION = {
    "fp32": "f32", "bf16": "bf16", "fp16": "f16", "int8-static": "bf16", "int8-weight": "f32", "int4-weight": "f32",
}
#: Precisions that quantize weight layers (the ones ``--keep-float`` applies to).
QUANTIZED = ("int8-static", "int8-weight", "int4-weight")
#: Precisions whose weights are stored in fp16; the others keep fp32 wherever they are not quantized.
FP16_WEIGHTS = ("fp16",)
#: int4 groups: 32 divides every ViT width (192, 384, 768, 1024, their MLPs) and the tests' 64.
INT4_GROUP_SIZE = 32
#: Widths 32 does not divide (MobileViT-S's 144 and 240, the tiny test presets' 16) take NNCF's ADJUST fallback:
#: the largest power of two below 32 that divides them, down to this; a narrower layer keeps int8.
INT4_MIN_GROUP_SIZE = 16
#: NNCF's transformer preset turns SmoothQuant on (alpha 0.95 on MatMuls); NNCF's own reference loses 1.7 top-1
#: points on Swin-B with it, so it was measured on ViTs (benchmarks/results/openvino.md): with it the quickstart's
#: trained ViT keeps fp32's top-1 accuracy (89.0%; 88.8% without) at the same 98.2% agreement, min logits cosine
#: 0.980 (0.972 without), and the four tiny random-init test ViTs' min logits cosines rise from 0.895-0.995 to
#: 0.956-0.995. Kept on for every family: on Swin it made no difference (below).
SMOOTH_QUANT = True
#: OpenVINO op types int8-static leaves float, per family (NNCF's ignored types), by measurement. MobileViT's
#: convolutions with per-tensor int8 activations: a mobilevit-mini trained on the built-in shapes (67% top-1) fell to
#: min logits cosine 0.74 (95.3% top-1 agreement) on 64 held-out images; float: 0.9988 (100%). Swin: SmoothQuant on
#: or off made no difference there (swin-mini 0.9990 / 0.9991, swinv2-mini 0.9987 / 0.9991, both 100% on 64 images).
FLOAT_OP_TYPES: dict[str, tuple[str, ...]] = {"mobilevit": ("Convolution",)}


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
    scope = float_scope(model, source, precision, options.keep_float)
    if options.keep_float:
        recipe["float_layers"] = list(scope)
    if options.max_accuracy_drop is None:
        return _quantize(model, source, options, recipe, smooth_quant, scope)
    ops = _weight_ops(model, source)

    def quantize_with(float_layers: tuple[str, ...]) -> Quantized:
        extra = {layer: ops[layer] for layer in float_layers}
        return _quantize(model.clone(), source, options, dict(recipe), smooth_quant, {**scope, **extra})

    result, budget = quantize_within_budget(model, source, options, [layer for layer in ops if layer not in scope],
                                            quantize_with)
    result.recipe["accuracy_budget"] = budget
    return result


def _quantize(model: Any, source: SourceModel, options: ExportOptions, recipe: dict[str, Any], smooth_quant: bool,
              scope: dict[str, list[str]]) -> Quantized:
    if options.precision == "int8-static":
        return _static_int8(model, source, options, recipe, smooth_quant, scope)
    if options.precision in ("int8-weight", "int4-weight"):
        return _compressed_weights(model, options.precision, recipe, scope)
    return Quantized(model, recipe)


def _weight_ops(model: Any, source: SourceModel) -> dict[str, list[str]]:
    return ModuleNames(model, model_layout(source.model).layers.values()).weight_ops()


def float_scope(model: Any, source: SourceModel, precision: str, patterns: tuple[str, ...]) -> dict[str, list[str]]:
    """The weight layers ``--keep-float`` names → the friendly names of their ops in ``model`` (NNCF's ignored scope).

    Raises:
        UsageError: a float precision (nothing to keep), or a pattern that names no weight layer.
    """
    if not patterns:
        return {}
    if precision not in QUANTIZED:
        raise UsageError(f"--keep-float applies to reduced precisions ({', '.join(QUANTIZED)}), not {precision}",
                         hint=f"{precision} keeps every op in float already")
    ops = _weight_ops(model, source)
    return {layer: ops[layer] for layer in select(patterns, sorted(ops), where="this OpenVINO model")}


def _ignored(scope: dict[str, list[str]], types: tuple[str, ...] = ()) -> dict[str, Any]:
    names = [name for layer in scope.values() for name in layer]
    return {"ignored_scope": nncf().IgnoredScope(names=names, types=list(types))} if names or types else {}


def _static_int8(model: Any, source: SourceModel, options: ExportOptions, recipe: dict[str, Any],
                 smooth_quant: bool, scope: dict[str, list[str]]) -> Quantized:
    module = nncf()
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        AdvancedSmoothQuantParameters,
    )

    calibration = load_calibration(source.preprocess, options.calibration, options.calibration_samples)
    alphas = AdvancedSmoothQuantParameters() if smooth_quant else AdvancedSmoothQuantParameters(matmul=-1)
    float_types = FLOAT_OP_TYPES.get(getattr(source.model.config, "model_type", ""), ())
    with quiet():
        quantized = module.quantize(
            model, module.Dataset(list(calibration.batches(1))), model_type=module.ModelType.TRANSFORMER,
            subset_size=len(calibration.inputs),
            advanced_parameters=AdvancedQuantizationParameters(smooth_quant_alphas=alphas),
            **_ignored(scope, float_types),
        )
    recipe.update(weights="int8 per-channel symmetric", activations="int8 (MatMul inputs), the rest float",
                  tool="nncf.quantize", model_type="transformer", smooth_quant=smooth_quant,
                  **({"float_op_types": list(float_types)} if float_types else {}))
    method = "nncf.quantize (transformer preset: min-max weights, activation ranges from calibration statistics)"
    return Quantized(quantized, recipe, calibration.describe(method))


def _compressed_weights(model: Any, precision: str, recipe: dict[str, Any], scope: dict[str, list[str]]) -> Quantized:
    module = nncf()
    if precision == "int8-weight":
        settings: dict[str, Any] = {"mode": module.CompressWeightsMode.INT8_ASYM}
        recipe.update(weights="int8 per-channel asymmetric")
    else:
        from nncf.quantization.advanced_parameters import AdvancedCompressionParameters, GroupSizeFallbackMode

        settings = {"mode": module.CompressWeightsMode.INT4_SYM, "group_size": INT4_GROUP_SIZE, "ratio": 1.0,
                    "advanced_parameters": AdvancedCompressionParameters(
                        group_size_fallback_mode=GroupSizeFallbackMode.ADJUST,
                        min_adjusted_group_size=INT4_MIN_GROUP_SIZE)}
        recipe.update(weights=f"int4 symmetric, groups of {INT4_GROUP_SIZE} ({INT4_MIN_GROUP_SIZE} where 32 does not "
                              "divide the width); patch embedding and head int8 asymmetric")
    with quiet():
        compressed = module.compress_weights(model, **settings, **_ignored(scope))
    recipe.update(activations="float", tool="nncf.compress_weights")
    return Quantized(compressed, recipe)
