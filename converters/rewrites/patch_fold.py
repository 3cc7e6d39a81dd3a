"""MobileViT V2's unfold and fold as the reshapes they are.

MobileViT V2 cuts its feature map into patches with ``nn.functional.unfold`` and puts them back with
``nn.functional.fold``, with the kernel equal to the stride: the patches do not overlap, so both only
move values. Exporters lower them as general im2col/col2im, which costs: ONNX's Col2Im needs opset 18
(the torchscript exporter cannot trace it), and litert-torch turns fold into a ``stablehlo.scatter``
that LiteRT's interpreter refuses to run. This rewrite computes the same tensors with one reshape, one
transpose and one reshape each way (five dimensions at most); a feature map that does not divide into
whole patches still goes through the original.
"""

from __future__ import annotations

import torch
from torch import nn

from vitedge.converters.rewrites.patching import Patches, patched

NAME = "mobilevitv2-fold-as-reshape"
LAYERS = ("MobileViTV2Layer",)


def apply(model: nn.Module, image_size: int, patches: Patches) -> int:
    """Rewrite the unfolding and folding of every MobileViT V2 layer in ``model``; returns how many."""
    count = 0
    for module in model.modules():
        if type(module).__name__ in LAYERS and not patched(module, "unfolding"):
            patches.method(module, "unfolding", unfolding)
            patches.method(module, "folding", folding)
            count += 1
    return count


def unfolding(self: nn.Module, feature_map: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    """(B, C, H, W) -> (B, C, ph*pw, patches), as ``unfold`` with kernel = stride = (ph, pw) orders them."""
    batch, channels, height, width = feature_map.shape
    ph, pw = self.patch_height, self.patch_width
    if height % ph or width % pw:
        return type(self).unfolding(self, feature_map)
    grid = feature_map.reshape(batch * channels, height // ph, ph, width // pw, pw)
    patches = grid.permute(0, 2, 4, 1, 3).reshape(batch, channels, ph * pw, -1)
    return patches, (height, width)


def folding(self: nn.Module, patches: torch.Tensor, output_size: tuple[int, int]) -> torch.Tensor:
    """The inverse of :func:`unfolding`: (B, C, ph*pw, patches) -> (B, C, H, W)."""
    batch, channels, patch_area, _ = patches.shape
    height, width = output_size
    ph, pw = self.patch_height, self.patch_width
    if height % ph or width % pw or patch_area != ph * pw:
        return type(self).folding(self, patches, output_size)
    grid = patches.reshape(batch * channels, ph, pw, height // ph, width // pw)
    return grid.permute(0, 3, 1, 4, 2).reshape(batch, channels, height, width)
