"""Swin's and Swin V2's input-independent attention terms, computed once at the export size.

Every window-attention layer adds terms that depend on the weights and the input size only:

- the shifted-window mask (``SwinLayer.get_attn_mask``), rebuilt on every call from ``arange``
  comparisons and integer arithmetic: ExecuTorch's quantizer trips on those integer ops ("Tensor
  dtype mismatch! Expected: Long") and XNNPACK takes none of them;
- Swin's relative position bias, a gather from its bias table;
- Swin V2's continuous position bias table, a two-layer MLP run on a constant coordinate table,
  whose weights a quantizer would otherwise compress (its output feeds ``16 * sigmoid``, where a small
  weight error moves every attention score).

This rewrite computes each term once, with transformers' own code (the numbers are the model's), and
stores it on the module (the mask as a buffer, the bias tables as frozen weights). A call for another
input size runs the original code.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vitedge.converters.rewrites.patching import Patches, patched

NAME = "window-attention-constants"
#: Window-attention layers whose ``get_attn_mask(height, width, dtype, device)`` builds the shifted-window mask.
LAYERS = ("SwinLayer", "Swinv2Layer")
#: Swin's bias modules: ``forward()`` gathers the (1, heads, tokens, tokens) bias from the table.
BIAS_MODULES = ("SwinRelativePositionBias",)
#: Swin V2's attention modules: ``continuous_position_bias_mlp(relative_coords_table)`` makes the table.
V2_ATTENTION = ("Swinv2SelfAttention",)
MASK = "attention_mask_at_export"
BIAS = "relative_position_bias_at_export"
TABLE = "position_bias_table_at_export"
_MASK_METHOD = "get_attn_mask"


def apply(model: nn.Module, image_size: int, patches: Patches) -> int:
    """Fix the masks and bias tables of every Swin / Swin V2 layer in ``model`` for ``image_size`` inputs;
    returns how many modules were rewritten."""
    count = 0
    for module in model.modules():
        name = type(module).__name__
        if name in BIAS_MODULES and not patched(module, "forward"):
            with torch.no_grad():
                patches.constant(module, BIAS, type(module).forward(module))
            patches.method(module, "forward", _constant_bias)
            count += 1
        elif name in V2_ATTENTION and not patched(module.continuous_position_bias_mlp, "forward"):
            mlp = module.continuous_position_bias_mlp
            with torch.no_grad():
                patches.constant(mlp, TABLE, mlp(module.relative_coords_table))
            patches.method(mlp, "forward", _constant_table)
            count += 1
    return count + _fix_masks(model, image_size, patches)


def _constant_bias(self: nn.Module) -> torch.Tensor:
    return getattr(self, BIAS)


def _constant_table(self: nn.Module, coordinates: torch.Tensor) -> torch.Tensor:
    table = getattr(self, TABLE)
    if coordinates.shape[:-1] != table.shape[:-1]:  # another window size: run the MLP
        return nn.Sequential.forward(self, coordinates)
    return table


def _fix_masks(model: nn.Module, image_size: int, patches: Patches) -> int:
    layers = [m for m in model.modules() if type(m).__name__ in LAYERS and not patched(m, _MASK_METHOD)]
    if not layers:
        return 0
    calls = _record_masks(model, layers, image_size)
    for layer in layers:
        if layer in calls:
            (height, width), mask = calls[layer]
            if mask is not None:
                patches.buffer(layer, MASK, mask)
            patches.method(layer, _MASK_METHOD, _make_mask_lookup(height, width, mask is not None))
    return len(calls)


def _record_masks(model: nn.Module, layers: list[nn.Module], image_size: int) -> dict[nn.Module, tuple[Any, Any]]:
    """Each layer's first ``get_attn_mask`` call in one forward pass at ``image_size``: its (height, width), its mask."""
    calls: dict[nn.Module, tuple[Any, Any]] = {}
    recording = Patches()

    def recorder(layer: nn.Module):
        def get_attn_mask(self: nn.Module, height: int, width: int, dtype: torch.dtype, device=None):
            mask = type(self).get_attn_mask(self, height, width, dtype, device)
            calls.setdefault(layer, ((int(height), int(width)), mask))
            return mask

        return get_attn_mask

    for layer in layers:
        recording.method(layer, _MASK_METHOD, recorder(layer))
    parameter = next(model.parameters())
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, image_size, image_size, dtype=parameter.dtype, device=parameter.device))
    finally:
        recording.undo()
    return calls


def _make_mask_lookup(height: int, width: int, has_mask: bool):
    def get_attn_mask(self: nn.Module, at_height: int, at_width: int, dtype: torch.dtype, device=None):
        if (at_height, at_width) != (height, width):  # another size: build it as transformers does
            return type(self).get_attn_mask(self, at_height, at_width, dtype, device)
        return getattr(self, MASK).to(dtype) if has_mask else None

    return get_attn_mask
