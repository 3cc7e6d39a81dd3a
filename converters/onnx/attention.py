"""Export ViT self-attention as one onnxruntime ``com.microsoft.Attention`` node.

onnxruntime's transformer optimizer fuses SkipLayerNorm and BiasGelu in ViT graphs but does not
recognise their attention subgraph under any exporter setting, and unfused attention is a dozen
small ops per layer. Instead of hoping for a pattern match, the exporter emits the fused op
directly: while tracing, every attention module computes its output through
:class:`FusedAttention`, a torch function whose ONNX symbolic is the contrib ``Attention`` op with
the q/k/v projections packed into one weight. Dynamic quantization then turns it into
``QAttention`` (int8 QKV GEMM). The graph needs onnxruntime (contrib ops); numerics are checked
against torch like every export.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

ATTENTION_DOMAIN = "com.microsoft"
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


@contextlib.contextmanager
def fused_attention(model: nn.Module) -> Iterator[int]:
    """While active, attention modules of ``model`` run through :class:`FusedAttention`.

    Yields the number of modules patched (0 when the architecture has none we recognise); their
    original ``forward`` is restored on exit.
    """
    patched = []
    if getattr(getattr(model, "config", None), "model_type", None) not in FUSABLE_MODEL_TYPES:
        yield 0  # BEiT's relative position bias and Swin's window masks are not plain self-attention
        return
    for module in model.modules():
        if _is_attention(module):
            patched.append(module)
            module.forward = _fused_forward(module)
    try:
        yield len(patched)
    finally:
        for module in patched:
            del module.forward  # back to the class's forward
