"""The torch side of a diagnosis: where to tap a model, its fp32 tensors there, and the head as a lens.

:func:`model_layout` finds the embeddings, the encoder blocks (a ModuleList of ``num_hidden_layers``
modules named ``layers``/``layer``/``blocks``), the final norm and every Linear/Conv layer of a Hugging
Face ViT-family classifier; :func:`reference_tensors` records their fp32 outputs with forward hooks;
:func:`head_lens` feeds any block's output through the final norm and the classifier (its [CLS] token),
so a block's output can be judged by the prediction it would lead to.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from vitedge.converters.diagnose.probe import ModelLayout, Tap
from vitedge.converters.loading import SourceModel
from vitedge.errors import UsageError

_BLOCK_LIST = re.compile(r"(?:^|\.)(?:layers?|blocks?)$")
FINAL_NORMS = ("layernorm", "norm", "final_layernorm", "post_layernorm")
LOGITS = "logits"


def call_chain(module_path: str) -> tuple[str, ...]:
    """``vit.layers.3.mlp`` → ``("vit", "layers.3", "mlp")``: a ModuleList child stays with its list."""
    chain: list[str] = []
    for part in module_path.split("."):
        if part.isdigit() and chain:
            chain[-1] += "." + part
        else:
            chain.append(part)
    return tuple(chain)


def _blocks(model: nn.Module) -> tuple[str, int]:
    """(path of the ModuleList of encoder blocks, how many)."""
    depth = getattr(model.config, "num_hidden_layers", None)
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and _BLOCK_LIST.search(name) and len(module) and \
                (depth is None or len(module) == depth):
            return name, len(module)
    raise UsageError(
        f"diagnose cannot find the encoder blocks of this {model.config.model_type} model",
        hint="diagnose knows ViT-family models whose blocks are a ModuleList named layers, layer or blocks",
    )


def model_layout(model: nn.Module) -> ModelLayout:
    """The taps (embeddings, blocks, final norm, logits) and the weight layers of ``model``."""
    container, count = _blocks(model)
    backbone = container.split(".")[0]
    modules = dict(model.named_modules())
    taps = []
    if f"{backbone}.embeddings" in modules:
        taps.append(Tap("embeddings", f"{backbone}.embeddings", call_chain(f"{backbone}.embeddings")))
    taps += [Tap(f"block {i}", f"{container}.{i}", call_chain(f"{container}.{i}")) for i in range(count)]
    norm = next((f"{backbone}.{name}" for name in FINAL_NORMS if f"{backbone}.{name}" in modules), None)
    if norm is not None:
        taps.append(Tap("final norm", norm, call_chain(norm)))
    taps.append(Tap(LOGITS, None))
    layers = {call_chain(name): name for name, module in modules.items() if isinstance(module, (nn.Linear, nn.Conv2d))}
    head = "classifier" if isinstance(getattr(model, "classifier", None), nn.Linear) else None
    return ModelLayout(tuple(taps), layers, head)


def _first_tensor(output) -> torch.Tensor:
    return output[0] if isinstance(output, (tuple, list)) else output


def reference_tensors(source: SourceModel, inputs: np.ndarray, layout: ModelLayout,
                      batch_size: int = 8) -> dict[str, np.ndarray]:
    """The fp32 model's output at every tap for ``inputs`` (preprocessed as the source model expects)."""
    model = source.model
    captured: dict[str, list[np.ndarray]] = {tap.name: [] for tap in layout.taps}

    def recorder(name: str):
        def hook(module, args, output):
            captured[name].append(_first_tensor(output).detach().float().numpy().copy())
        return hook

    handles = [model.get_submodule(tap.module).register_forward_hook(recorder(tap.name))
               for tap in layout.taps if tap.module is not None]
    wrapper = source.two_outputs()
    try:
        with torch.inference_mode():
            for start in range(0, len(inputs), batch_size):
                logits, _ = wrapper(torch.from_numpy(inputs[start : start + batch_size]))
                captured[LOGITS].append(logits.float().numpy())
    finally:
        for handle in handles:
            handle.remove()
    return {name: np.concatenate(parts) for name, parts in captured.items() if parts}


def head_lens(source: SourceModel, layout: ModelLayout) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Tap name → the classifier fed with that tap's output (through the final norm where it comes before).

    Only where that means something: a model with one linear ``classifier`` on the [CLS] token after
    the final norm (ViT, DeiT without the distillation head). Empty otherwise.
    """
    model = source.model
    head = getattr(model, "classifier", None)
    norm_tap = next((tap for tap in layout.taps if tap.name == "final norm"), None)
    if not isinstance(head, nn.Linear) or norm_tap is None:
        return {}
    norm = model.get_submodule(norm_tap.module)

    def through(apply_norm: bool) -> Callable[[np.ndarray], np.ndarray]:
        def lens(hidden: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                tokens = torch.from_numpy(np.ascontiguousarray(hidden, dtype=np.float32))
                return head((norm(tokens) if apply_norm else tokens)[:, 0]).numpy()
        return lens

    lenses = {tap.name: through(True) for tap in layout.taps if tap.is_block}
    lenses[norm_tap.name] = through(False)
    return lenses
