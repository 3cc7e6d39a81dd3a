"""An attention kernel whose matmuls XNNPACK takes whole: two 3-D ``bmm``, no mask.

Hugging Face's eager attention multiplies 4-D tensors, which torch.export decomposes into
``expand_copy`` + ``view`` + ``bmm``: the bmm is delegated, but the ``expand_copy`` around it is
not, so every layer's attention is cut into several XNNPACK subgraphs with portable copies between
them (executorch issue 6961: ViTs whose attention falls back to portable kernels run many times
slower). SDPA is worse: its decomposition adds the "safe softmax" masking ops, none delegated.
This kernel folds the heads into the batch and calls ``torch.bmm`` on 3-D tensors, and registers
no mask function, so transformers builds no (all-true) mask for it either. It computes what eager
attention computes (softmax(q·kᵀ·scale + mask)·v); the only masks image classifiers pass are
additive biases (BEiT's relative position bias, Swin's shifted-window masks).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

#: The name the kernel is registered under in transformers' AttentionInterface.
KERNEL = "vitedge_bmm"


def bmm_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """softmax(q·kᵀ·scale + mask)·v on (batch, heads, tokens, head_dim) inputs, as two 3-D bmm.

    Returns ``(output (batch, tokens, heads, head_dim), None)``, the shape transformers' attention
    functions return.
    """
    batch, heads, tokens, head_dim = query.shape
    scale = head_dim**-0.5 if scaling is None else scaling
    q = (query * scale).reshape(batch * heads, tokens, head_dim)
    k = key.reshape(batch * heads, -1, head_dim)
    v = value.reshape(batch * heads, -1, head_dim)
    scores = torch.bmm(q, k.transpose(1, 2))
    if attention_mask is not None:  # BEiT's relative position bias, Swin's window masks: additive
        if attention_mask.dtype == torch.bool:
            raise ValueError("the bmm attention kernel takes additive (float) attention masks only")
        scores = (scores.reshape(batch, heads, tokens, -1) + attention_mask).reshape(batch * heads, tokens, -1)
    weights = torch.softmax(scores, dim=-1)
    output = torch.bmm(weights, v).reshape(batch, heads, tokens, head_dim)
    return output.transpose(1, 2).contiguous(), None


def _register() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(KERNEL, bmm_attention)


@contextlib.contextmanager
def attention_kernel(model: nn.Module, kernel: str | None) -> Iterator[str | None]:
    """Switch a transformers model's attention to ``kernel`` (``KERNEL``, ``eager``, ``sdpa``) for a while.

    ``None`` keeps the model's own. Yields the kernel in use (what the manifest records). A model that
    cannot switch (no ``set_attn_implementation``, or attention modules that do not call transformers'
    attention interface: Swin V2, MobileViT) keeps its own kernel; the delegation record then shows what
    XNNPACK made of it.
    """
    config = getattr(model, "config", None)
    previous = getattr(config, "_attn_implementation", None)
    can_switch = getattr(model, "_can_set_attn_implementation", lambda: hasattr(model, "set_attn_implementation"))
    if kernel is None or not hasattr(model, "set_attn_implementation") or not can_switch():
        yield previous
        return
    if kernel == KERNEL:
        _register()
    model.set_attn_implementation(kernel)
    try:
        yield kernel
    finally:
        model.set_attn_implementation(previous)
