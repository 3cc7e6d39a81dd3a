"""TFLite quantization recipes: which tool and settings make each precision, chosen by measurement.

Two tools quantize for LiteRT: ai-edge-quantizer (AEQ) rewrites a float .tflite flatbuffer after
conversion, and PT2E (torchao's ``prepare_pt2e``/``convert_pt2e`` with litert-torch's quantizer)
quantizes the torch graph before conversion. :data:`RECIPES` holds every candidate that was
measured; :data:`CHOSEN` maps each precision to the one the exporter uses, with the reason.
``benchmarks/studies/tflite_latency.py`` and ``benchmarks/studies/tflite_accuracy.py`` re-measure all candidates
(results in ``benchmarks/results/tflite.md`` and ``tflite_accuracy.md``).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from vitedge.converters.recipes import Choice, chosen_recipe, named_recipe
from vitedge.converters.tflite.blocks import int8_scopes
from vitedge.errors import UsageError

SIGNATURE = "serving_default"
QUANTIZERS = ("none", "ai-edge-quantizer", "pt2e")
#: ai-edge-quantizer matches rules against an op's output tensor name; the head's is ``serving_default_logits_output``.
HEAD_OUTPUT_REGEX = "logits"


@dataclass(frozen=True)
class TFLiteRecipe:
    """One way to produce a TFLite model at some precision.

    Attributes:
        name: Registry key, e.g. ``"aeq-dynamic-wi8"``.
        precision: The vitedge precision it implements.
        quantizer: ``none``, ``ai-edge-quantizer`` (on the float flatbuffer) or ``pt2e`` (on the torch graph).
        setting: The tool's recipe: an ai_edge_quantizer.recipe function name, or the PT2E config.
        weights: Weight storage, e.g. ``"int8 per-channel"``.
        activations: ``"float32"``, ``"int8 (dynamic)"`` (quantized on the fly), ``"int8"`` or ``"int16"``.
        calibrated: Whether it needs calibration images.
        int8_head: Keep the classifier head (the layer producing ``logits``) at int8 weights.
        block_size: The weight block of a blockwise recipe (0: none); layers whose input size is not a
            multiple of it get int8 per-channel weights (:mod:`vitedge.converters.tflite.blocks`).
    """

    name: str
    precision: str
    quantizer: str
    setting: str
    weights: str
    activations: str
    calibrated: bool = False
    int8_head: bool = False
    block_size: int = 0

    def __post_init__(self) -> None:
        if self.quantizer not in QUANTIZERS:
            raise ValueError(f"unknown quantizer {self.quantizer!r}")

    def describe(self) -> dict[str, str]:
        """The manifest's view of the recipe."""
        return {
            "name": self.name,
            "quantizer": self.quantizer,
            "setting": self.setting,
            "weights": self.weights,
            "activations": self.activations,
            **({"classifier_head": "int8 weights"} if self.int8_head else {}),
            **({"layers_not_in_blocks": f"int8 per-channel weights: convolutions, and layers whose input size is "
                                        f"not a multiple of {self.block_size}"} if self.block_size else {}),
        }


RECIPES: dict[str, TFLiteRecipe] = {
    r.name: r
    for r in (
        TFLiteRecipe("float", "fp32", "none", "litert-torch float32", "float32", "float32"),
        TFLiteRecipe("aeq-fp16-weights", "fp16", "ai-edge-quantizer", "float_casting fp16 weight-only",
                     "float16", "float32"),
        TFLiteRecipe("aeq-dynamic-wi8", "int8-dynamic", "ai-edge-quantizer", "dynamic_wi8_afp32",
                     "int8 per-channel", "int8 (dynamic)"),
        TFLiteRecipe("pt2e-dynamic-wi8", "int8-dynamic", "pt2e", "symmetric per-channel, is_dynamic=True",
                     "int8 per-channel", "int8 (dynamic)"),
        TFLiteRecipe("pt2e-static-w8a8", "int8-static", "pt2e", "symmetric per-channel, HistogramObserver",
                     "int8 per-channel", "int8", calibrated=True),
        TFLiteRecipe("aeq-static-w8a8", "int8-static", "ai-edge-quantizer", "static_wi8_ai8",
                     "int8 per-channel", "int8", calibrated=True),
        TFLiteRecipe("aeq-static-w8a16", "int8-static", "ai-edge-quantizer", "static_wi8_ai16",
                     "int8 per-channel", "int16", calibrated=True),
        TFLiteRecipe("aeq-dynamic-wi4", "int4-weight", "ai-edge-quantizer", "dynamic_wi4_afp32",
                     "int4 per-channel", "int8 (dynamic)"),
        TFLiteRecipe("aeq-dynamic-wi4-b32", "int4-weight", "ai-edge-quantizer", "dynamic_wi4b32_afp32",
                     "int4 blocks of 32", "int8 (dynamic)", block_size=32),
        TFLiteRecipe("aeq-dynamic-wi4-head8", "int4-weight", "ai-edge-quantizer", "dynamic_wi4_afp32",
                     "int4 per-channel", "int8 (dynamic)", int8_head=True),
        TFLiteRecipe("aeq-dynamic-wi4-b32-head8", "int4-weight", "ai-edge-quantizer", "dynamic_wi4b32_afp32",
                     "int4 blocks of 32", "int8 (dynamic)", int8_head=True, block_size=32),
        TFLiteRecipe("aeq-weight-only-wi4", "int4-weight", "ai-edge-quantizer", "weight_only_wi4_afp32",
                     "int4 per-channel", "float32"),
    )
}

#: Measured on ViT-B/16-224 (random init, batch 1, 2 threads; benchmarks/results/tflite.md) and on the
#: quickstart's trained ViT (top-1 agreement with torch fp32; benchmarks/results/tflite_accuracy.md).
CHOSEN: dict[str, Choice] = {
    "fp32": Choice("float", "the reference: litert-torch's float32 conversion"),
    "fp16": Choice(
        "aeq-fp16-weights",
        "half the size at fp32 accuracy; XNNPACK on CPU computes in fp32 from the fp16 weights, so latency is fp32's",
    ),
    "int8-dynamic": Choice(
        "aeq-dynamic-wi8",
        "0.3x fp32 latency, 26% of its size, 99.8% top-1 agreement; as fast as PT2E dynamic and it quantizes "
        "the float flatbuffer, so no second torch export",
    ),
    "int8-static": Choice(
        "pt2e-static-w8a8",
        "0.3x fp32 latency, 99.2% top-1 agreement; ai-edge-quantizer's static w8a8 (0.9-1.6x fp32) and w8a16 "
        "(3.5-7x fp32) are slower on CPU and missed the cosine tolerance (min logits cosine ~0.5)",
    ),
    "int4-weight": Choice(
        "aeq-dynamic-wi4-b32-head8",
        "15% of fp32's size, 99.4% top-1 agreement, 0.7-0.8x fp32 latency; per-channel int4 is faster (~0.3x) but "
        "lost too much on small models (min logits cosine 0.72 on the test ViT); weight-only int4 runs at 4-8x fp32",
    ),
}


def recipe_for(precision: str) -> TFLiteRecipe:
    """The recipe the exporter uses for ``precision``."""
    return chosen_recipe(RECIPES, CHOSEN, precision, "TFLite")


def get_recipe(name: str) -> TFLiteRecipe:
    """A candidate recipe by name (benchmarks compare them all)."""
    return named_recipe(RECIPES, name, "TFLite")


def _calibration_threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Swallow the quantizers' progress bars and reports (Python-level output only)."""
    sink = io.StringIO()
    with contextlib.redirect_stderr(sink), contextlib.redirect_stdout(sink):
        yield


# -- ai-edge-quantizer: rewrites the float .tflite ------------------------------------------------


def aeq_recipe(recipe: TFLiteRecipe, float_scopes: Sequence[str] = (), int8_layers: Sequence[str] = ()) -> list[dict]:
    """The ai-edge-quantizer recipe (a JSON-able list of rules) for an ``ai-edge-quantizer`` recipe.

    ``int8_layers`` (scopes as below) get int8 per-channel weights: the layers a blockwise recipe cannot
    cut into blocks (:func:`vitedge.converters.tflite.blocks.int8_scopes`).

    ``float_scopes`` are the output tensor names of ops to leave in float (``--keep-float``): each gets
    a ``no_quantize`` rule matching exactly its scope (ai-edge-quantizer's scope is the op's output
    names, each followed by ``;``), after the others so that it wins.
    """
    from ai_edge_quantizer import qtyping
    from ai_edge_quantizer import recipe as aeq_recipes
    from ai_edge_quantizer.algorithm_manager import AlgorithmName
    from ai_edge_quantizer.recipe_manager import RecipeManager

    if recipe.name == "aeq-fp16-weights":
        manager = RecipeManager()
        manager.add_weight_only_config(
            ".*", qtyping.TFLOperationName.ALL_SUPPORTED, 16, algorithm_key=AlgorithmName.FLOAT_CASTING
        )
        rules = manager.get_quantization_recipe()
    else:
        rules = getattr(aeq_recipes, recipe.setting)()
        if recipe.int8_head:  # a later matching rule wins: the head's output tensor is the signature's logits
            rules = rules + aeq_recipes.dynamic_wi8c_afp32(regex=HEAD_OUTPUT_REGEX)
        for scope in int8_layers:
            rules = rules + aeq_recipes.dynamic_wi8c_afp32(regex=f"^{re.escape(scope)};$")
    if not float_scopes:
        return rules
    floats = RecipeManager()
    for scope in float_scopes:
        floats.add_quantization_config(f"^{re.escape(scope)};$", qtyping.TFLOperationName.ALL_SUPPORTED,
                                       algorithm_key=AlgorithmName.NO_QUANTIZE)
    return rules + floats.get_quantization_recipe()


def aeq_quantize(float_model: bytes, recipe: TFLiteRecipe, calibration: Iterator[np.ndarray] | None,
                 input_name: str, float_scopes: Sequence[str] = ()) -> bytes:
    """Quantize a float .tflite with ai-edge-quantizer.

    Args:
        float_model: The float flatbuffer.
        recipe: An ``ai-edge-quantizer`` recipe.
        calibration: Batches in the model's input dtype and layout (static recipes only).
        input_name: The signature's input name.
        float_scopes: Output tensor names of the ops to leave in float.
    """
    from ai_edge_quantizer import quantizer

    int8 = int8_scopes(float_model, recipe.block_size) if recipe.block_size else ()
    engine = quantizer.Quantizer(float_model, aeq_recipe(recipe, float_scopes, int8))
    ranges = None
    if engine.need_calibration:
        if calibration is None:
            raise UsageError(f"recipe {recipe.name} needs calibration images")
        samples = [{input_name: batch} for batch in calibration]
        with _quiet():
            ranges = engine.calibrate({SIGNATURE: samples}, num_threads=_calibration_threads())
    with _quiet():
        result = engine.quantize(ranges, enable_progress_bar=False, enable_progress_report=False)
    return bytes(result.quantized_model)


# -- PT2E: quantizes the torch graph before litert-torch converts it ------------------------------


def _quantizer_keeping(float_modules: Sequence[str]):
    """litert-torch's PT2EQuantizer, leaving the nodes of ``float_modules`` (qualified names in the
    exported module) unannotated, so they stay float, and every node that does not compute floats.

    Its add, mul and cat annotators match integer arithmetic too (Swin's window and mask index
    computations, traced into the graph), whose observers cannot take integers (``"histogram_cpu" not
    implemented for 'Long'``); integers are not quantized anyway. For the same reason the integer
    scalar of a float add or mul (Swin V2's ``16 * sigmoid(bias)``), which litert-torch lifts into an
    int64 constant before annotating, is made a float first: the same product.

    Its own ``set_module_name(name, None)`` cannot be used: its name filter strips ten characters of
    ``L__self___`` from torch.export's nn_module_stack keys, which torch 2.13 writes as ``L__self__…``
    (nine), and turns every ``_`` of the name into ``.``, so it matches nothing.
    """
    import torch
    from litert_torch.quantize import pt2e_quantizer

    def in_float_module(node) -> bool:
        stack = node.meta.get("nn_module_stack", {}).values()
        return any(path == name or path.startswith(name + ".") for path, _ in stack for name in float_modules)

    def computes_floats(node) -> bool:
        value = node.meta.get("val")
        return not isinstance(value, torch.Tensor) or value.is_floating_point()

    class KeepingQuantizer(pt2e_quantizer.PT2EQuantizer):
        def transform_for_annotation(self, model):
            _float_scalars(model)
            return super().transform_for_annotation(model)

        def _annotate_all_static_patterns(self, model, quantization_config, filter_fn=None):
            return super()._annotate_all_static_patterns(model, quantization_config, _excluding(filter_fn))

        def _annotate_all_dynamic_patterns(self, model, quantization_config, filter_fn=None):
            return super()._annotate_all_dynamic_patterns(model, quantization_config, _excluding(filter_fn))

    def _excluding(filter_fn):
        return lambda node: (filter_fn is None or filter_fn(node)) and not in_float_module(node) and computes_floats(node)

    return KeepingQuantizer()


def _float_scalars(model) -> None:
    """Turn the integer scalars of float-valued ``aten.add``/``aten.mul`` nodes into floats, in place."""
    import torch

    targets = (torch.ops.aten.add.Tensor, torch.ops.aten.mul.Tensor)
    for node in model.graph.nodes:
        value = node.meta.get("val")
        if node.target in targets and isinstance(value, torch.Tensor) and value.is_floating_point():
            node.args = tuple(float(arg) if type(arg) is int else arg for arg in node.args)


def pt2e_quantize(module, sample: Mapping[str, object], recipe: TFLiteRecipe,
                  calibration: Iterator[np.ndarray] | None, float_modules: Sequence[str] = ()):
    """Quantize a torch module with PT2E for litert-torch.

    Args:
        module: The module to convert (keyword input named as in ``sample``).
        sample: ``{input_name: tensor}``, the export sample.
        recipe: A ``pt2e`` recipe.
        calibration: Batches in the model's input dtype and layout (static recipes only).
        float_modules: Qualified names (in ``module``) of submodules to leave in float.

    Returns:
        ``(quantized_module, quant_config)`` to pass to ``litert_torch.convert``.
    """
    import torch
    from litert_torch.quantize import pt2e_quantizer, quant_config
    from torchao.quantization.pt2e import quantize_pt2e

    dynamic = not recipe.calibrated
    config = pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=dynamic)
    engine = _quantizer_keeping(float_modules).set_global(config)
    (input_name,) = sample
    with torch.no_grad():
        graph = torch.export.export(module, (), dict(sample)).module()
        prepared = quantize_pt2e.prepare_pt2e(graph, engine)
        if dynamic:
            prepared(**sample)  # per-channel weight observers need one pass
        else:
            if calibration is None:
                raise UsageError(f"recipe {recipe.name} needs calibration images")
            for batch in calibration:
                prepared(**{input_name: torch.from_numpy(batch)})
        quantized = quantize_pt2e.convert_pt2e(prepared, fold_quantize=False)
    return quantized, quant_config.QuantConfig(pt2e_quantizer=engine)
