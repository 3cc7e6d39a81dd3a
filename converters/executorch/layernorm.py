"""LayerNorm as ops XNNPACK takes: the delegate has no layer_norm, so each one is a graph break.

ExecuTorch's XNNPACK partitioner delegates ``mean.dim`` only on 4-D tensors over their two inner
dimensions (as global average pooling), plus ``sub``, ``mul``, ``add`` and ``rsqrt``; it has no
``native_layer_norm``. Left alone, every LayerNorm of a ViT (25 in ViT-B) runs in ExecuTorch's portable
kernel, single-threaded, and cuts the program into one XNNPACK subgraph per side of it (38 for ViT-B).
Written as (x - mean) * rsqrt(var + eps) * weight + bias on ``x.unsqueeze(-1)`` (tokens become
channels, the normalized features the pooled plane), the whole encoder is one XNNPACK subgraph. It
computes what ``nn.LayerNorm`` computes, in fp32, up to summation order.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator

import torch
from torch import nn

#: What the manifest records for a program whose LayerNorms were rewritten.
DECOMPOSED = "xnnpack (mean/sub/mul/rsqrt over a 4-D view)"


def delegable_layer_norm(module: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    """``module(x)`` (a LayerNorm over the last dimension) from ops the XNNPACK partitioner delegates."""
    planes = x.unsqueeze(-1)  # (..., tokens, features, 1): mean over the last two dims is a global average pool
    while planes.dim() < 4:
        planes = planes.unsqueeze(0)
    mean = planes.mean(dim=(2, 3), keepdim=True)
    centered = planes - mean
    variance = (centered * centered).mean(dim=(2, 3), keepdim=True)
    normalized = (centered * torch.rsqrt(variance + module.eps)).reshape(x.shape)
    if module.weight is not None:
        normalized = normalized * module.weight
    if module.bias is not None:
        normalized = normalized + module.bias
    return normalized


def _rewritable(module: nn.Module) -> bool:
    return isinstance(module, nn.LayerNorm) and len(module.normalized_shape) == 1


@contextlib.contextmanager
def layer_norms_for_xnnpack(model: nn.Module, enabled: bool = True) -> Iterator[str | None]:
    """Run every last-dimension LayerNorm of ``model`` as :func:`delegable_layer_norm` for a while.

    Yields what the manifest records (:data:`DECOMPOSED`, or None when disabled or there is none). Inputs
    of more than 4 dimensions keep the module's own forward (the 4-D view needs at most 3).
    """
    patched = [m for m in model.modules() if _rewritable(m)] if enabled else []

    def forward(self: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
        return delegable_layer_norm(self, x) if x.dim() <= 3 else nn.LayerNorm.forward(self, x)

    for module in patched:
        module.forward = types.MethodType(forward, module)
    try:
        yield DECOMPOSED if patched else None
    finally:
        for module in patched:
            del module.forward
