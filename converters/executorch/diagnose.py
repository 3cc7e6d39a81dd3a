"""The ExecuTorch format's ``intermediates`` hook: a re-lowered copy of the program that also returns every tap.

A .pte program keeps no intermediate tensors (inside an XNNPACK subgraph they are never written out),
and ExecuTorch's debugging tools need an ETRecord and ETDump made at conversion time. So diagnose
lowers the model again by the artifact's recipe (the same attention kernel, quantizer and
``--keep-float`` layers), from a wrapper that also returns each tap's output, runs that program in
ExecuTorch's runtime and reads the taps. The logits are the artifact's own (its runtime); the report
gives the cosine between them and the copy's. Dynamic int8 and fp32 re-lower to the same numbers; a
calibrated (int8-static) recipe cannot be reproduced without the conversion's calibration images,
so only its logits are compared.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from vitedge.converters.diagnose.probe import ArtifactProbe, ModelLayout
from vitedge.converters.executorch.attention import attention_kernel
from vitedge.converters.executorch.export import MODEL_PREFIX, _quiet_conversion, lower
from vitedge.converters.executorch.quantize import get_recipe
from vitedge.converters.loading import SourceModel
from vitedge.metrics import row_cosines
from vitedge.runtime.classifier import Classifier
from vitedge.runtime.manifest import Manifest

LOGITS = "logits"


class TapOutputs(nn.Module):
    """``forward(pixel_values) -> (logits, *tap outputs)``: the two-output model with each tap's output returned."""

    def __init__(self, module: nn.Module, taps: list[str]) -> None:
        super().__init__()
        self.module = module
        self._taps = taps
        seen: dict[str, torch.Tensor] = {}  # not an attribute: torch.export refuses tensors assigned to one
        self._read = seen.pop
        self._hooks = [module.get_submodule(path).register_forward_hook(_recorder(seen, path)) for path in taps]

    def remove_hooks(self) -> None:
        """Take the hooks off the wrapped model (the source model is shared with the other artifacts)."""
        for hook in self._hooks:
            hook.remove()

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits, _ = self.module(pixel_values)
        return (logits, *(self._read(path) for path in self._taps))


def _recorder(seen: dict[str, torch.Tensor], path: str):
    def hook(_module, _args, output):
        seen[path] = output[0] if isinstance(output, (tuple, list)) else output
    return hook


def _run(program: bytes, inputs: np.ndarray) -> list[list[np.ndarray]]:
    from executorch.runtime import Runtime

    method = Runtime.get().load_program(program).load_method("forward")
    return [[out.numpy().copy() for out in method.execute((torch.from_numpy(inputs[i : i + 1]),))]
            for i in range(len(inputs))]


def executorch_intermediates(folder: Path, manifest: Manifest, inputs: np.ndarray, layout: ModelLayout,
                             source: SourceModel) -> ArtifactProbe:
    """Every tap's tensor of a re-lowered copy of the artifact for ``inputs`` (preprocessed as its manifest says)."""
    recipe = get_recipe(manifest.conversion.recipe["name"])
    kept = tuple(manifest.conversion.recipe.get("float_layers", ()))
    runtime_logits = Classifier.open(folder, verify=False).run(inputs)["logits"]
    quantized = {} if recipe.quantization == "none" else {
        path: f"{recipe.weights} weights, {recipe.activations} activations"
        for path in layout.layers.values() if path not in kept}
    taps = [tap for tap in layout.taps if tap.module is not None]
    if recipe.calibrated:
        why = "a calibrated recipe re-lowers to other ranges without the conversion's calibration images"
        return ArtifactProbe(tensors={LOGITS: runtime_logits}, quantized_ops=quantized, how="the runtime's logits only",
                             missing={tap.name: why for tap in taps})
    sample = (torch.from_numpy(inputs[:1]),)
    with _quiet_conversion(), attention_kernel(source.model, recipe.attention):
        wrapper = TapOutputs(source.two_outputs().eval(), [MODEL_PREFIX + tap.module for tap in taps]).eval()
        try:
            program, _ = lower(wrapper, sample, recipe, None,
                               float_modules=tuple(f"module.{MODEL_PREFIX}{layer}" for layer in kept))
        finally:
            wrapper.remove_hooks()
    runs = _run(program, inputs.astype(np.float32))
    tensors = {tap.name: np.concatenate([run[1 + i] for run in runs]) for i, tap in enumerate(taps)}
    copy_logits = np.concatenate([run[0] for run in runs])
    agreement = float(row_cosines(runtime_logits, copy_logits).min())
    return ArtifactProbe(
        tensors={**tensors, LOGITS: runtime_logits},
        quantized_ops=quantized,
        how=(f"a copy re-lowered by the artifact's recipe ({recipe.name}) with every tap as an extra output, run in "
             f"ExecuTorch's runtime (the .pte keeps no intermediates); its logits vs the artifact's: min cosine "
             f"{agreement:.6f}"),
    )
