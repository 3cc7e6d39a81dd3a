"""The Core ML format's ``intermediates`` hook: the simulated artifact's tensor at every tap.

Core ML exposes no intermediate outputs of a compiled model, and it runs only on Apple systems, so
diagnose uses the simulation that validates Core ML artifacts everywhere
(:mod:`vitedge.converters.coreml.simulate`: the traced module with the package's own decompressed
weights, in its compute precision) and records each tap with a forward hook. Reports say ``simulated``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vitedge.converters.coreml.export import coreml_module
from vitedge.converters.coreml.mlpackage import decompressed_weights
from vitedge.converters.coreml.quantize import KEEP_FLOAT_PRECISIONS, MODEL_PREFIX, weight_module
from vitedge.converters.coreml.simulate import DTYPES, image_plan, load_package_weights
from vitedge.converters.diagnose.probe import ArtifactProbe, ModelLayout
from vitedge.converters.loading import SourceModel
from vitedge.runtime.manifest import Manifest


def _describe(manifest: Manifest) -> str:
    recipe = manifest.conversion.recipe
    compression = recipe.get("compression")
    compute = recipe["compute_precision"]
    if not compression:
        return f"{compute} weights and compute"
    if "palettize" in compression["method"]:
        return f"{compression['nbits']}-bit palettized weights, {compute} compute"
    return f"{compression['dtype']} {compression['granularity']} weights, {compute} compute"


def coreml_intermediates(folder: Path, manifest: Manifest, inputs: np.ndarray, layout: ModelLayout,
                         source: SourceModel, batch_size: int = 8) -> ArtifactProbe:
    """Every tap's tensor of the simulated artifact for ``inputs`` (preprocessed as its manifest says)."""
    plan = image_plan(manifest)
    module = coreml_module(source, plan)
    compressed = decompressed_weights(Path(folder) / manifest.model_file)
    load_package_weights(module, compressed)
    dtype = DTYPES[manifest.conversion.recipe["compute_precision"]]
    module = module.to(dtype)
    captured: dict[str, list[np.ndarray]] = {tap.name: [] for tap in layout.taps}

    def recorder(name: str):
        def hook(_module, _args, output):
            value = output[0] if isinstance(output, (tuple, list)) else output
            captured[name].append(value.float().numpy().copy())
        return hook

    hooks = [module.get_submodule(MODEL_PREFIX + tap.module).register_forward_hook(recorder(tap.name))
             for tap in layout.taps if tap.module is not None]
    network_inputs = inputs if plan is None else plan.network_input(inputs)
    try:
        with torch.inference_mode():
            for start in range(0, len(network_inputs), batch_size):
                _, logits, _ = module(torch.from_numpy(network_inputs[start : start + batch_size]).to(dtype))
                captured["logits"].append(logits.float().numpy())
    finally:
        for hook in hooks:
            hook.remove()
    layers = list(layout.layers.values())
    if manifest.conversion.recipe.get("compression"):
        ops = {path: _describe(manifest) for name in compressed if (path := weight_module(name, layers))}
    else:
        ops = {path: _describe(manifest) for path in layers} if dtype == torch.float16 else {}
    return ArtifactProbe(
        tensors={name: np.concatenate(parts) for name, parts in captured.items() if parts},
        quantized_ops=ops,
        how="simulated (Core ML exposes no intermediate tensors): torch with the package's decompressed "
            f"weights, {manifest.conversion.recipe['compute_precision']} compute",
        keep_float=manifest.precision in KEEP_FLOAT_PRECISIONS,
    )
