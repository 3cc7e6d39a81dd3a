"""``--keep-float`` for TFLite: layer names (as ``vitedge diagnose`` prints them) → what each quantizer takes.

ai-edge-quantizer rewrites the float flatbuffer and selects ops by their output tensor names, so the
layers become the output names of their ops there (:mod:`.op_names` maps ops to layers); PT2E
quantizes the torch graph and takes module names inside the exported module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vitedge.converters.diagnose.probe import ModelLayout
from vitedge.converters.layer_names import keep_float_layers
from vitedge.converters.tflite.op_names import FlatbufferOps, layer_weights, weight_op_modules
from vitedge.converters.tflite.quantize import TFLiteRecipe
from vitedge.runtime.native_noise import native_noise_hidden

#: Where the Hugging Face model sits in the exported module (EdgeClassifier.classifier.model).
MODEL_PREFIX = "classifier.model."
LOGITS_OUTPUT = "logits"


def selected_layers(recipe: TFLiteRecipe, patterns: Sequence[str], layout: ModelLayout) -> tuple[str, ...]:
    """The weight layers ``patterns`` name (checked before the slow conversion).

    Raises:
        UsageError: the recipe quantizes nothing (fp32), or a pattern names no layer.
    """
    return keep_float_layers(patterns, layout.layers.values(), precision=recipe.precision,
                             quantizes=recipe.quantizer != "none")


def pt2e_float_modules(layers: Sequence[str]) -> tuple[str, ...]:
    """The layers' qualified names in the exported module."""
    return tuple(MODEL_PREFIX + layer for layer in layers)


def aeq_float_scopes(float_model: bytes, layout: ModelLayout, layers: Sequence[str], model: Any) -> tuple[str, ...]:
    """ai-edge-quantizer scopes (output tensor names, ``;``-joined) of the ops of ``layers`` in ``float_model``
    (the ops found by their weights, compared with the torch ``model``'s)."""
    from ai_edge_litert.interpreter import Interpreter

    with native_noise_hidden():
        interpreter = Interpreter(model_content=float_model)
        interpreter.allocate_tensors()
    runner = interpreter.get_signature_runner()
    logits = int(runner.get_output_details()[LOGITS_OUTPUT]["index"])
    del runner
    ops = FlatbufferOps.of(interpreter)
    wanted = set(layers)
    named = weight_op_modules(ops, layout, logits, interpreter=interpreter, weights=layer_weights(model, layout))
    return tuple(";".join(ops.name(t) for t in ops.ops[index]["outputs"])
                 for index, layer in named.items() if layer in wanted)
