"""ExecuTorch recipes: how each precision is made (XNNPACK quantizer, PT2E), chosen by measurement.

Every recipe goes torch.export → (XNNPACKQuantizer: ``prepare_pt2e``, calibrate, ``convert_pt2e``)
→ ``to_edge_transform_and_lower`` with the XnnpackPartitioner. vitedge's recipes change two things:
the attention kernel (:mod:`vitedge.converters.executorch.attention`: two 3-D bmm, no mask, so
XNNPACK takes the whole attention) and, for int8-static, which layers get int8 activations.
``executorch-docs-*`` are the plain recipe of ExecuTorch's XNNPACK documentation (the model's own
attention, ``set_global`` quantization): the peer the published benchmarks compare with.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vitedge.converters.executorch.attention import KERNEL
from vitedge.converters.recipes import Choice, chosen_recipe, named_recipe
from vitedge.errors import UsageError

QUANTIZATIONS = ("none", "dynamic", "static")
#: ``all``: the quantizer's global config (every op XNNPACKQuantizer annotates: linear, conv, add, mul, cat);
#: ``linear``: only Linear modules (convolutions, the residual adds, LayerNorm and softmax stay float);
#: ``linear-conv``: Linear modules and every 2-D convolution (MobileViT V2's attention and MLP are 1x1 convolutions).
OPERATORS = ("all", "linear", "linear-conv")
#: What each ``operators`` quantizes, for the manifest.
OPERATOR_TEXT = {"all": "set_global", "linear": "Linear modules only; convolutions stay float",
                 "linear-conv": "Linear modules and convolutions"}


@dataclass(frozen=True)
class ExecuTorchRecipe:
    """One way to make an ExecuTorch program at some precision.

    Attributes:
        name: Registry key, e.g. ``"xnnpack-dynamic-wi8"``.
        precision: The vitedge precision it implements.
        quantization: ``none``, ``dynamic`` (int8 activations quantized on the fly) or ``static`` (calibrated).
        operators: What is quantized (:data:`OPERATORS`).
        attention: The attention kernel exported (:data:`~vitedge.converters.executorch.attention.KERNEL`),
            or None for the model's own.
        weights: Weight storage, for the manifest.
        activations: Activation type, for the manifest.
        layer_norm: Export LayerNorm as ops XNNPACK delegates (:mod:`~vitedge.converters.executorch.layernorm`),
            so that it neither runs in a portable kernel nor splits the program into subgraphs.
    """

    name: str
    precision: str
    quantization: str
    operators: str
    attention: str | None
    weights: str
    activations: str
    layer_norm: bool = True

    def __post_init__(self) -> None:
        if self.quantization not in QUANTIZATIONS or self.operators not in OPERATORS:
            raise ValueError(f"recipe {self.name}: unknown quantization or operators")

    @property
    def calibrated(self) -> bool:
        return self.quantization == "static"

    def describe(self) -> dict[str, str]:
        """The manifest's view of the recipe."""
        quantizer = "none" if self.quantization == "none" else (
            f"XNNPACKQuantizer (PT2E), symmetric per-channel weights, {self.quantization} activations, "
            + OPERATOR_TEXT[self.operators])
        return {
            "name": self.name,
            "quantizer": quantizer,
            "weights": self.weights,
            "activations": self.activations,
            "attention_kernel": self.attention or "the model's own",
        }


RECIPES: dict[str, ExecuTorchRecipe] = {
    r.name: r
    for r in (
        ExecuTorchRecipe("xnnpack-fp32", "fp32", "none", "all", KERNEL, "float32", "float32"),
        ExecuTorchRecipe("xnnpack-dynamic-wi8", "int8-dynamic", "dynamic", "all", KERNEL,
                         "int8 per-channel", "int8 (dynamic)"),
        ExecuTorchRecipe("xnnpack-static-w8a8", "int8-static", "static", "all", KERNEL,
                         "int8 per-channel", "int8", layer_norm=False),  # set_global would quantize its adds and muls
        ExecuTorchRecipe("xnnpack-static-w8a8-linear", "int8-static", "static", "linear", KERNEL,
                         "int8 per-channel", "int8 (Linear inputs)"),
        # Families with convolutions: FAMILY_CHOSEN says which uses what. MobileViT V2 (its attention and MLP are 1x1
        # convolutions) with int8 convolutions fell to min logits cosine 0.83 (a mobilevitv2-mini trained on the
        # built-in shapes, 64 held-out images), so vitedge refuses its int8 precisions (vitedge.formats).
        ExecuTorchRecipe("xnnpack-dynamic-wi8-linear", "int8-dynamic", "dynamic", "linear", KERNEL,
                         "int8 per-channel (Linear)", "int8 (dynamic, Linear inputs)"),
        ExecuTorchRecipe("xnnpack-static-w8a8-linear-conv", "int8-static", "static", "linear-conv", KERNEL,
                         "int8 per-channel (Linear, convolutions)", "int8 (Linear and convolution inputs)"),
        # ExecuTorch's documented recipe, as a user would write it: the peer.
        ExecuTorchRecipe("executorch-docs-fp32", "fp32", "none", "all", None, "float32", "float32", layer_norm=False),
        ExecuTorchRecipe("executorch-docs-dynamic-wi8", "int8-dynamic", "dynamic", "all", None,
                         "int8 per-channel", "int8 (dynamic)", layer_norm=False),
        ExecuTorchRecipe("executorch-docs-static-w8a8", "int8-static", "static", "all", None,
                         "int8 per-channel", "int8", layer_norm=False),
    )
}

#: Measured on ViT-B/16-224 (random init, batch 1, 2 threads, each recipe's p50 in one interleaved run) and on the
#: tests' tiny ViTs and the quickstart's trained ViT (agreement with torch fp32 on held-out images).
CHOSEN: dict[str, Choice] = {
    "fp32": Choice(
        "xnnpack-fp32",
        "the reference; the bmm attention and the LayerNorm rewrite leave only the [CLS] token's copies outside "
        "XNNPACK (ViT-B/16: 2 portable nodes; without the rewrite 26 subgraphs and 27; the docs recipe: 50 and 214); "
        "~1.2x faster than the docs recipe before the rewrite",
    ),
    "int8-dynamic": Choice(
        "xnnpack-dynamic-wi8",
        "25% of fp32's size, ~3x faster than fp32 and ~1.7x faster than the docs recipe on ViT-B/16; the LayerNorm "
        "rewrite (38 -> 14 XNNPACK subgraphs, no portable LayerNorm) ran 0.82x of the same recipe without it; min "
        "logits cosine >= 0.9987 and 100% top-1 agreement on the tiny and the trained ViTs",
    ),
    "int8-static": Choice(
        "xnnpack-static-w8a8-linear",
        "int8 activations into Linear layers only: as fast as set_global on ViT-B/16 and closer to fp32 (tiny ViT: min "
        "logits cosine 0.994 vs 0.955; trained ViT: 99.0% vs 98.5% top-1 agreement)",
    ),
}


#: Families whose convolutions change the choice: (model type, precision) -> the recipe. Measured through the runtime
#: on the tests' tiny presets (random weights) and on a mobilevit-mini trained on the built-in shapes (67% top-1; 64
#: held-out images): int8-dynamic min logits cosine 0.9999, int8-static (``linear``: convolutions float) 0.9996, both
#: 100% top-1 agreement; int8-static with its convolutions int8 as well was no closer (an earlier, 20%-top-1 mini on
#: 16 images: 0.984 vs 0.985 with them float).
FAMILY_CHOSEN: dict[tuple[str, str], Choice] = {
    ("mobilevit", "int8-dynamic"): Choice(
        "xnnpack-dynamic-wi8-linear",
        "its transformer's Linear layers int8, its convolutions float: with set_global XNNPACK takes the dynamically "
        "quantized convolutions and then fails at run time (\"Propagating input shapes failed\")",
    ),
}


def chosen_for(precision: str, family: str | None = None) -> Choice:
    """The choice for ``precision``, ``family``'s own where it has one (:data:`FAMILY_CHOSEN`)."""
    return FAMILY_CHOSEN.get((family, precision)) or CHOSEN[precision]


def recipe_for(precision: str, family: str | None = None) -> ExecuTorchRecipe:
    """The recipe the exporter uses for ``precision`` (and ``family``, a Hugging Face model type)."""
    if (family, precision) in FAMILY_CHOSEN:
        return RECIPES[FAMILY_CHOSEN[family, precision].recipe]
    return chosen_recipe(RECIPES, CHOSEN, precision, "ExecuTorch")


def get_recipe(name: str) -> ExecuTorchRecipe:
    """A recipe by name (the benchmarks build the peers' and the candidates')."""
    return named_recipe(RECIPES, name, "ExecuTorch")


def outside_modules(float_modules: Sequence[str]) -> Callable[[Any], bool]:
    """A node filter: True for nodes that come from none of ``float_modules`` (qualified names in the
    exported module), read from torch.export's ``nn_module_stack`` paths.

    XNNPACKQuantizer's own ``set_module_name(name, None)`` cannot keep a module float: it asserts the
    config is not None ("not supported yet" in executorch 1.5), so vitedge filters the nodes instead.
    """
    def outside(node) -> bool:
        stack = node.meta.get("nn_module_stack", {}).values()
        return not any(path == name or path.startswith(name + ".") for path, _ in stack for name in float_modules)

    return outside


def xnnpack_quantizer(recipe: ExecuTorchRecipe, float_modules: Sequence[str] = ()):
    """The XNNPACKQuantizer of a quantized recipe (symmetric, per-channel weights), leaving the nodes of
    ``float_modules`` (qualified names in the exported module) unannotated, so they stay float."""
    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    config = get_symmetric_quantization_config(is_per_channel=True, is_dynamic=recipe.quantization == "dynamic")
    quantizer = XNNPACKQuantizer()
    if float_modules:
        quantizer.set_filter_function(outside_modules(float_modules))
    if recipe.operators == "all":
        return quantizer.set_global(config)
    quantizer.set_module_type(torch.nn.Linear, config)
    if recipe.operators == "linear-conv":  # by operator: a module-type filter never matches a convolution (it
        quantizer.set_operator_type(torch.ops.aten.conv2d.default, config)  # checks the weight, in no module)
    return quantizer


def pt2e_quantize(module, sample: tuple, recipe: ExecuTorchRecipe, calibration: Iterator[np.ndarray] | None,
                  float_modules: Sequence[str] = ()):
    """Quantize ``module`` with PT2E for XNNPACK; returns the converted graph module to export again.

    Args:
        module: The float module (one positional input, ``sample[0]``'s shape).
        sample: The export sample, ``(tensor,)``.
        recipe: A ``dynamic`` or ``static`` recipe.
        calibration: Batches of the model's input (static recipes only).
        float_modules: Qualified names (in ``module``) of submodules to leave in float (``--keep-float``).
    """
    import torch
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    with torch.no_grad():
        graph = torch.export.export(module, sample).module()
        prepared = prepare_pt2e(graph, xnnpack_quantizer(recipe, float_modules))
        if not recipe.calibrated:
            prepared(*sample)  # per-channel weight observers need one pass
        elif calibration is None:
            raise UsageError(f"recipe {recipe.name} needs calibration images")
        else:
            for batch in calibration:
                prepared(torch.from_numpy(batch))
        return convert_pt2e(prepared)
