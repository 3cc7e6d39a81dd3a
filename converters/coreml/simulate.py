"""What a Core ML artifact computes, simulated in torch where Core ML cannot run (Linux, Windows).

The simulation runs the traced module again (:func:`vitedge.converters.coreml.export.coreml_module`:
the source model with the std folded in for an image input) after putting back every weight the
package stores compressed, decompressed exactly as Core ML decompresses it (read from the
.mlpackage itself, not recomputed), in the artifact's compute precision (fp16: weights and
activations in half precision). The image input's scale and bias are applied as Core ML applies them.

It is a stand-in: Core ML's kernels (GPU, Neural Engine) round differently, so reports made from it
say ``simulated``; ``vitedge verify`` on a Mac measures the artifact itself.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from vitedge.converters.coreml.export import coreml_module
from vitedge.converters.coreml.image import ImageInputPlan
from vitedge.converters.coreml.mlpackage import decompressed_weights
from vitedge.converters.loading import SourceModel
from vitedge.errors import ConversionError
from vitedge.runtime.manifest import Manifest

DTYPES = {"fp32": torch.float32, "fp16": torch.float16}


def image_plan(manifest: Manifest) -> ImageInputPlan | None:
    """The image input's plan as the manifest records it, or None for a MultiArray input."""
    model_input = manifest.conversion.recipe["input"]
    return ImageInputPlan.from_dict(model_input) if model_input["type"] == "image" else None


def load_package_weights(module: nn.Module, weights: dict[str, np.ndarray]) -> int:
    """Copy Core ML weights (by MIL op name) into the torch parameters they came from; returns how many.

    coremltools names a weight after the traced module's parameter path (dots become underscores)
    plus suffixes such as ``_to_fp16_quantized``; the longest parameter path that prefixes the op
    name, with the same shape, is the one.

    Raises:
        ConversionError: a weight matches no parameter (the simulation would be wrong).
    """
    parameters = {name.replace(".", "_"): parameter for name, parameter in module.named_parameters()}
    for op_name, value in weights.items():
        matches = [name for name in parameters if op_name == name or op_name.startswith(name + "_")]
        parameter = parameters[max(matches, key=len)] if matches else None
        if parameter is None or tuple(parameter.shape) != value.shape:
            raise ConversionError(
                f"cannot map the Core ML weight {op_name!r} {value.shape} back to the torch model",
                hint="the simulated validation needs it; report this with your coremltools version",
            )
        with torch.no_grad():
            parameter.copy_(torch.from_numpy(value.astype(np.float32)))
    return len(weights)


def simulated_outputs(
    folder: Path, manifest: Manifest, source: SourceModel, inputs: np.ndarray, *, batch_size: int = 8
) -> dict[str, np.ndarray]:
    """Logits and embeddings the artifact in ``folder`` would give for ``inputs``.

    Args:
        folder: The artifact folder.
        manifest: Its manifest.
        source: The torch model it was converted from.
        inputs: A batch preprocessed as ``manifest.preprocess`` says (what the runtime would feed).
        batch_size: Images per torch forward pass.
    """
    plan = image_plan(manifest)
    module = coreml_module(source, plan)
    load_package_weights(module, decompressed_weights(folder / manifest.model_file))
    dtype = DTYPES[manifest.conversion.recipe["compute_precision"]]
    module = module.to(dtype)
    network_inputs = inputs if plan is None else plan.network_input(inputs)
    logits, embeddings = [], []
    with torch.inference_mode():
        for start in range(0, len(network_inputs), batch_size):
            batch = torch.from_numpy(network_inputs[start : start + batch_size]).to(dtype)
            _, batch_logits, batch_embedding = module(batch)
            logits.append(batch_logits.float().numpy())
            embeddings.append(batch_embedding.float().numpy())
    return {"logits": np.concatenate(logits), "embedding": np.concatenate(embeddings)}
