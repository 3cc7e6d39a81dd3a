"""BEiT's relative position bias gathered with a constant index at its native window size.

transformers' ``BeitRelativePositionBias`` rebuilds its relative position index at every call (a
tensor filled by in-place slice assignments, which coremltools cannot convert) and resizes its bias
table with a bilinear interpolation, which at the native window size is the identity (scale 1: every
output sample lands on an input one). At that size this rewrite gathers the table with the index
computed once, by transformers' own ``generate_relative_position_index``, and returns what the original
returns; another window size, or ``interpolate_pos_encoding``, still runs the original.
"""

from __future__ import annotations

import torch
from torch import nn

from vitedge.converters.rewrites.patching import Patches, patched

NAME = "relative-position-index-constant"
BIAS_MODULES = ("BeitRelativePositionBias", "Data2VecVisionRelativePositionBias")
INDEX = "relative_position_index_at_export"


def apply(model: nn.Module, image_size: int, patches: Patches) -> int:
    """Rewrite every BEiT relative position bias in ``model``; returns how many."""
    count = 0
    for module in model.modules():
        if type(module).__name__ in BIAS_MODULES and not patched(module, "forward"):
            index = type(module).generate_relative_position_index(tuple(module.window_size))
            patches.buffer(module, INDEX, index)
            patches.method(module, "forward", relative_position_bias)
            count += 1
    return count


def relative_position_bias(self: nn.Module, window_size, interpolate_pos_encoding: bool = False,
                           dim_size: int | None = None) -> torch.Tensor:
    """``BeitRelativePositionBias.forward``: (1, heads, tokens, tokens), the table gathered at the native size."""
    if interpolate_pos_encoding or tuple(window_size) != tuple(self.window_size):
        return type(self).forward(self, window_size, interpolate_pos_encoding, dim_size)
    tokens = self.window_size[0] * self.window_size[1] + 1
    bias = self.relative_position_bias_table[getattr(self, INDEX).view(-1)].view(tokens, tokens, -1)
    return bias.permute(2, 0, 1).contiguous().unsqueeze(0)
