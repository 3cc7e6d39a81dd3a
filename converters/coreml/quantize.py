"""The Core ML precisions: compute precision, deployment target and coremltools.optimize recipe of each.

Weights are compressed after conversion with ``coremltools.optimize.coreml`` on the fp16 program, so
Core ML stores the compressed weights and decompresses them on load (or on the fly on the Neural
Engine); activations stay fp16. Tensors under coremltools' default threshold (2048 elements:
biases, LayerNorms, small heads) stay fp16.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from vitedge.converters.coreml.compat import coremltools, program_of, quiet
from vitedge.converters.layer_names import select
from vitedge.converters.rewrites.patching import AT_EXPORT
from vitedge.errors import UsageError

#: Where the Hugging Face model sits inside the traced module (CoreMLHead.classifier.model).
MODEL_PREFIX = "classifier.model."


@dataclass(frozen=True)
class CoreMLRecipe:
    """One Core ML precision.

    Attributes:
        precision: Its name in :data:`vitedge.formats.PRECISIONS`.
        compute_precision: ``"fp32"`` or ``"fp16"``: the dtype of the network's activations and ops.
        minimum_target: The oldest deployment target that runs it (per-block and grouped
            compression arrived in iOS 18).
        method: ``"linear_quantize_weights"``, ``"palettize_weights"`` or None (no compression).
        settings: Keyword arguments of the coremltools op config (OpLinearQuantizerConfig or
            OpPalettizerConfig).
    """

    precision: str
    compute_precision: str
    minimum_target: str
    method: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The recipe as the manifest records it."""
        data: dict[str, Any] = {"compute_precision": self.compute_precision}
        if self.method:
            data["compression"] = {"method": f"coremltools.optimize.coreml.{self.method}", **self.settings}
        return data


RECIPES: dict[str, CoreMLRecipe] = {
    r.precision: r
    for r in (
        CoreMLRecipe("fp32", "fp32", "iOS16"),
        CoreMLRecipe("fp16", "fp16", "iOS16"),
        CoreMLRecipe(
            "int8-weight", "fp16", "iOS16", "linear_quantize_weights",
            {"mode": "linear_symmetric", "dtype": "int8", "granularity": "per_channel"},
        ),
        CoreMLRecipe(
            "int4-weight", "fp16", "iOS18", "linear_quantize_weights",
            {"mode": "linear_symmetric", "dtype": "int4", "granularity": "per_block", "block_size": 32},
        ),
        CoreMLRecipe(
            "palettize4", "fp16", "iOS18", "palettize_weights",
            {"mode": "kmeans", "nbits": 4, "granularity": "per_grouped_channel", "group_size": 16},
        ),
        CoreMLRecipe(
            "palettize6", "fp16", "iOS16", "palettize_weights",
            {"mode": "kmeans", "nbits": 6, "granularity": "per_tensor"},
        ),
    )
}


def get_recipe(precision: str) -> CoreMLRecipe:
    """The recipe of ``precision`` (the registry has already checked the name for the user)."""
    try:
        return RECIPES[precision]
    except KeyError:
        raise UsageError(f"Core ML has no recipe for precision {precision!r}", hint=f"choose one of: {', '.join(RECIPES)}") from None


#: The precisions whose recipe compresses weights: those ``--keep-float`` can leave uncompressed.
KEEP_FLOAT_PRECISIONS = tuple(name for name, recipe in RECIPES.items() if recipe.method)


def weight_module(weight_name: str, layers: Sequence[str]) -> str | None:
    """The module a Core ML weight belongs to: coremltools names a weight after its parameter
    (``classifier_model_vit_layers_0_mlp_fc1_weight_to_fp16``); the longest module that prefixes it."""
    underscored = {path: (MODEL_PREFIX + path + ".weight").replace(".", "_") for path in layers}
    found = [path for path, name in underscored.items() if weight_name == name or weight_name.startswith(name + "_")]
    return max(found, key=len) if found else None


def check_keep_float(recipe: CoreMLRecipe, patterns: Sequence[str]) -> None:
    """Refuse ``--keep-float`` for a precision that compresses nothing (before the slow conversion)."""
    if patterns and recipe.method is None:
        raise UsageError(
            f"--keep-float applies to the Core ML precisions that compress weights ({', '.join(KEEP_FLOAT_PRECISIONS)}), "
            f"not {recipe.precision}",
            hint="fp16 and fp32 store every weight in float already",
        )


def float_weights(mlmodel: Any, recipe: CoreMLRecipe, patterns: Sequence[str], layers: Sequence[str]) -> tuple[str, ...]:
    """The const ops (weights) of the layers ``patterns`` select, to leave uncompressed.

    Raises:
        UsageError: the precision compresses nothing, or a pattern names no layer.
    """
    check_keep_float(recipe, patterns)
    if not patterns:
        return ()
    weights = {op.name: path for op in program_of(mlmodel).functions["main"].operations
               if op.op_type == "const" and (path := weight_module(op.name, layers))}
    kept = set(select(patterns, sorted(set(weights.values())), where="this Core ML model"))
    return tuple(name for name, path in weights.items() if path in kept)


def not_weights(mlmodel: Any, module: nn.Module) -> tuple[str, ...]:
    """The const ops of ``mlmodel`` that are no weight of the traced ``module``: constants coremltools folded
    (Swin's shifted-window masks plus position biases) and those the export rewrites computed (DINOv2's
    position table; names ending in ``_at_export``). They are activations computed once, not weights, and
    keep the compute precision; compressing only the weights is also what the simulation maps back."""
    weights = {name.replace(".", "_") for name, _ in module.named_parameters() if AT_EXPORT not in name}
    return tuple(
        op.name for op in program_of(mlmodel).functions["main"].operations
        if op.op_type == "const" and not any(op.name == w or op.name.startswith(w + "_") for w in weights)
    )


def compress(mlmodel: Any, recipe: CoreMLRecipe, float_weight_ops: Sequence[str] = ()) -> Any:
    """Compress an mlprogram's weights as ``recipe`` says, except ``float_weight_ops`` (const op names);
    unchanged when the recipe has no compression."""
    if recipe.method is None:
        return mlmodel
    coremltools()
    import coremltools.optimize.coreml as optimize

    config_class = {
        "linear_quantize_weights": optimize.OpLinearQuantizerConfig,
        "palettize_weights": optimize.OpPalettizerConfig,
    }[recipe.method]
    config = optimize.OptimizationConfig(global_config=config_class(**recipe.settings),
                                         op_name_configs=dict.fromkeys(float_weight_ops))
    with quiet():
        return getattr(optimize, recipe.method)(mlmodel, config)
