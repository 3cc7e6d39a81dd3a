"""Export ViT self-attention as one onnxruntime contrib node: ``Attention`` or ``MultiHeadAttention``.

onnxruntime's transformer optimizer fuses SkipLayerNorm and BiasGelu in ViT graphs but does not
recognise their attention subgraph under any exporter setting, and unfused attention is a dozen
small ops per layer. Instead of hoping for a pattern match, the exporter emits the fused op
directly: while tracing, every attention module computes its output through a torch function whose
ONNX symbolic is the contrib op. Two forms:

- ``Attention`` (:class:`FusedAttention`, the float graphs): the q/k/v projections packed into one
  weight inside the op. Dynamic quantization would turn it into ``QAttention`` (int8 QKV GEMM).
- ``MultiHeadAttention`` (:class:`FusedMultiHeadAttention`, int8-dynamic): the q, k and v projections
  stay ``MatMul`` nodes named after their modules (int8 per-channel GEMMs after quantization, and
  ``--keep-float``/``diagnose`` still address them one by one); only softmax(QKᵀ)V over the heads is one
  float op in place of the Reshape/Transpose/MatMul/Softmax chain (ViT-B/16: 175 nodes run per call after
  onnxruntime's optimizations instead of 379; ``benchmarks/results/onnx_exporter.md`` has the profiles).
  Token-merged blocks (:mod:`vitedge.converters.token_merging`) fuse too: their proportional attention's
  ``log(size)`` goes in as the op's ``attention_bias``.

The graph needs onnxruntime (contrib ops); numerics are checked against torch like every export.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

ATTENTION_DOMAIN = "com.microsoft"
ATTENTION = "Attention"
MULTI_HEAD_ATTENTION = "MultiHeadAttention"
#: Families whose attention is plain softmax(QK^T)V without masks or position bias.
FUSABLE_MODEL_TYPES = frozenset({"vit", "deit", "dinov2"})


class FusedAttention(torch.autograd.Function):
    """Multi-head self-attention from packed QKV weights; exports as ``com.microsoft.Attention``."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, num_heads: int, scale: float):  # noqa: D102 - torch API
        batch, tokens, _ = hidden.shape
        query, key, value = (hidden @ weight + bias).chunk(3, dim=-1)

        def split_heads(tensor: torch.Tensor) -> torch.Tensor:
            return tensor.reshape(batch, tokens, num_heads, -1).transpose(1, 2)

        query, key, value = split_heads(query), split_heads(key), split_heads(value)
        probabilities = torch.softmax((query @ key.transpose(-1, -2)) * scale, dim=-1)
        return (probabilities @ value).transpose(1, 2).reshape(batch, tokens, -1)

    @staticmethod
    def symbolic(graph, hidden, weight, bias, num_heads: int, scale: float):  # noqa: D102 - torch API
        output = graph.op(f"{ATTENTION_DOMAIN}::Attention", hidden, weight, bias, num_heads_i=num_heads, scale_f=scale)
        output.setType(hidden.type())
        return output


def _multi_head(query, key, value, num_heads: int, scale: float, bias=None):
    """softmax(QKᵀ·scale [+ bias])V over heads, from projected ``(batch, tokens, hidden)`` q, k, v."""
    batch, tokens, hidden = query.shape

    def split_heads(tensor: torch.Tensor) -> torch.Tensor:
        return tensor.reshape(batch, tokens, num_heads, -1).transpose(1, 2)

    scores = (split_heads(query) @ split_heads(key).transpose(-1, -2)) * scale
    probabilities = torch.softmax(scores if bias is None else scores + bias, dim=-1)
    return (probabilities @ split_heads(value)).transpose(1, 2).reshape(batch, tokens, hidden)


def _multi_head_symbolic(graph, query, key, value, attention_bias, num_heads: int, scale: float):
    inputs = (query, key, value)
    if attention_bias is not None:  # inputs 3 and 4 (packed bias, key padding mask) absent: '' in the graph
        absent = graph.op("prim::Constant").setType(torch._C.OptionalType.ofTensor())
        inputs += (absent, absent, attention_bias)
    output = graph.op(f"{ATTENTION_DOMAIN}::{MULTI_HEAD_ATTENTION}", *inputs, num_heads_i=num_heads, scale_f=scale)
    output.setType(query.type())
    return output


class FusedMultiHeadAttention(torch.autograd.Function):
    """softmax(QKᵀ·scale)V over heads from projected q, k, v; exports as ``com.microsoft.MultiHeadAttention``."""

    @staticmethod
    def forward(ctx, query, key, value, num_heads: int, scale: float):  # noqa: D102 - torch API
        return _multi_head(query, key, value, num_heads, scale)

    @staticmethod
    def symbolic(graph, query, key, value, num_heads: int, scale: float):  # noqa: D102 - torch API
        return _multi_head_symbolic(graph, query, key, value, None, num_heads, scale)


class FusedBiasedMultiHeadAttention(torch.autograd.Function):
    """:class:`FusedMultiHeadAttention` plus an additive ``(batch, 1, tokens, tokens)`` bias on the logits (the
    op's ``attention_bias`` input): token merging's proportional attention, ``log(size)`` per key."""

    @staticmethod
    def forward(ctx, query, key, value, bias, num_heads: int, scale: float):  # noqa: D102 - torch API
        return _multi_head(query, key, value, num_heads, scale, bias)

    @staticmethod
    def symbolic(graph, query, key, value, bias, num_heads: int, scale: float):  # noqa: D102 - torch API
        return _multi_head_symbolic(graph, query, key, value, bias, num_heads, scale)


def _is_attention(module: nn.Module) -> bool:
    return all(hasattr(module, name) for name in ("q_proj", "k_proj", "v_proj", "o_proj", "num_attention_heads", "scaling"))


def _fused_forward(module: nn.Module):
    def forward(hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs):
        if attention_mask is not None:
            raise NotImplementedError("fused attention export does not take an attention mask")
        projections = (module.q_proj, module.k_proj, module.v_proj)
        weight = torch.cat([p.weight for p in projections], dim=0).t()
        biases = [p.bias if p.bias is not None else torch.zeros_like(p.weight[:, 0]) for p in projections]
        context = FusedAttention.apply(
            hidden_states, weight, torch.cat(biases), int(module.num_attention_heads), float(module.scaling)
        )
        return module.o_proj(context), None

    return forward


def _multi_head_forward(module: nn.Module):
    def forward(hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs):
        if attention_mask is not None:
            raise NotImplementedError("fused attention export does not take an attention mask")
        context = FusedMultiHeadAttention.apply(
            module.q_proj(hidden_states), module.k_proj(hidden_states), module.v_proj(hidden_states),
            int(module.num_attention_heads), float(module.scaling),
        )
        return module.o_proj(context), None

    return forward


def _sized_multi_head_attend(module: nn.Module):
    """A token-merged block's softmax(QKᵀ)V (:meth:`~vitedge.converters.token_merging.merge.SizedAttention.attend`)
    as one ``MultiHeadAttention``, ``log(size)`` as its attention bias."""
    shape = module.shape

    def attend(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
               log_size: torch.Tensor | None) -> torch.Tensor:
        if log_size is None:
            return FusedMultiHeadAttention.apply(query, key, value, shape.heads, module.scaling)
        bias = log_size.transpose(1, 2).unsqueeze(1).expand(-1, 1, shape.tokens, shape.tokens)
        return FusedBiasedMultiHeadAttention.apply(query, key, value, bias, shape.heads, module.scaling)

    return attend


_FORWARDS = {ATTENTION: _fused_forward, MULTI_HEAD_ATTENTION: _multi_head_forward}


@contextlib.contextmanager
def fused_attention(model: nn.Module, op: str = ATTENTION) -> Iterator[int]:
    """While active, attention modules of ``model`` export as the contrib ``op`` (``Attention`` | ``MultiHeadAttention``).

    Yields the number of modules patched (0 when the architecture has none we recognise); their
    class's ``forward`` (``attend`` for a token-merged block's attention) is theirs again on exit.
    """
    patched = []
    if getattr(getattr(model, "config", None), "model_type", None) not in FUSABLE_MODEL_TYPES:
        yield 0  # BEiT's relative position bias and Swin's window masks are not plain self-attention
        return
    from vitedge.converters.token_merging.merge import SizedAttention

    for module in model.modules():
        if _is_attention(module):
            patched.append((module, "forward"))
            module.forward = _FORWARDS[op](module)
        elif isinstance(module, SizedAttention) and op == MULTI_HEAD_ATTENTION:  # Attention has no bias input here
            patched.append((module, "attend"))
            module.attend = _sized_multi_head_attend(module)
    try:
        yield len(patched)
    finally:
        for module, name in patched:
            delattr(module, name)  # back to the class's method
