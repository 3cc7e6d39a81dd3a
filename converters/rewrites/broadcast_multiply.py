"""MobileViT V2's separable self-attention with its last multiply broadcast implicitly.

transformers multiplies the values by ``context_vector.expand_as(value)``; litert-torch lowers that
expand followed by the multiply into a ``tfl.mul`` whose operands it then reports as not
broadcast-compatible, and the conversion fails. Multiplying by the (B, D, P, 1) context vector
directly is the same product (broadcasting is what ``expand_as`` spells out) and lowers everywhere.
"""

from __future__ import annotations

import torch
from torch import nn

from vitedge.converters.rewrites.patching import Patches, patched

NAME = "mobilevitv2-attention-implicit-broadcast"
ATTENTION = ("MobileViTV2LinearSelfAttention",)


def apply(model: nn.Module, image_size: int, patches: Patches) -> int:
    """Rewrite every MobileViT V2 linear self-attention in ``model``; returns how many."""
    count = 0
    for module in model.modules():
        if type(module).__name__ in ATTENTION and not patched(module, "forward"):
            patches.method(module, "forward", separable_attention)
            count += 1
    return count


def separable_attention(self: nn.Module, hidden_states: torch.Tensor) -> torch.Tensor:
    """transformers' ``MobileViTV2LinearSelfAttention.forward``, the final ``expand_as`` left to broadcasting."""
    qkv = self.qkv_proj(hidden_states)
    query, key, value = torch.split(qkv, split_size_or_sections=[1, self.embed_dim, self.embed_dim], dim=1)
    context_scores = self.attn_dropout(torch.nn.functional.softmax(query, dim=-1))
    context_vector = torch.sum(key * context_scores, dim=-1, keepdim=True)
    return self.out_proj(torch.nn.functional.relu(value) * context_vector)
