"""One token-merged transformer block: attention with token sizes, then bipartite soft matching (ToMe).

Bolya et al., "Token Merging: Your ViT But Faster" (ICLR 2023). Between attention and MLP, a block
merges ``r`` of its tokens into others: the tokens (the protected ones — [CLS], DeiT's distillation
token — aside) are split alternately into sets A and B; each A token's most similar B token is found
by the cosine of their attention keys (averaged over heads); the ``r`` A tokens with the most similar
partners are averaged into them, weighted by how many patches each token already stands for (its
size); the other A tokens stay, in their order. Attention then adds ``log(size)`` to its logits
(proportional attention), so a merged token counts as the patches it stands for.

Every shape depends only on ``r`` (a Python int), never on the data, so a graph exports with static
token counts per block. The merge is written with ops every format lowers, and few passes over the
tokens: two TopKs (the r best matches; the order of the tokens that stay), ArgMax, one row gather
(``GatherND`` in ONNX), and a one-hot assignment matrix (a comparison with a constant range) whose
batched MatMul sums each merged token into its partner, in place of a scatter-add.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class BlockShape:
    """The static sizes of one block: Python ints, so a traced graph holds constants, not Shape ops."""

    tokens: int  # entering the block
    protected: int
    heads: int
    head_dim: int
    hidden: int


class SizedAttention(nn.Module):
    """A transformers ViT/DeiT attention's projections (shared, same names) as multi-head self-attention with
    proportional attention: ``log(size)`` added to each key's logits."""

    def __init__(self, attention: nn.Module, shape: BlockShape) -> None:
        super().__init__()
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = (
            attention.q_proj, attention.k_proj, attention.v_proj, attention.o_proj)
        self.scaling = float(attention.scaling)
        self.shape = shape

    def forward(self, hidden: torch.Tensor, log_size: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Attention over ``hidden`` ``(batch, tokens, hidden)``, after the block's first LayerNorm.

        ``log_size`` ``(batch, tokens, 1)`` is the log of the patches each token stands for; None while no
        token has been merged (all sizes 1: nothing to add). Returns the attention output and the keys
        averaged over heads ``(batch, tokens, head_dim)``: ToMe's similarity metric.
        """
        shape = self.shape
        query, key, value = self.q_proj(hidden), self.k_proj(hidden), self.v_proj(hidden)
        context = self.attend(query, key, value, log_size)
        return self.o_proj(context), key.view(-1, shape.tokens, shape.heads, shape.head_dim).mean(dim=2)

    def attend(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
               log_size: torch.Tensor | None) -> torch.Tensor:
        """softmax(QKᵀ·scale + log(size))V over heads, from the projections ``(batch, tokens, hidden)``; an exporter
        may put a fused op in its place (:func:`vitedge.converters.onnx.attention.fused_attention`)."""
        shape = self.shape
        heads = (-1, shape.tokens, shape.heads, shape.head_dim)
        query, keys, value = query.view(heads).transpose(1, 2), key.view(heads), value.view(heads).transpose(1, 2)
        scores = torch.matmul(query, keys.permute(0, 2, 3, 1)) * self.scaling
        if log_size is not None:
            scores = scores + log_size.transpose(1, 2).unsqueeze(1)  # (batch, 1, 1, tokens): per key
        context = torch.matmul(torch.softmax(scores, dim=-1), value).transpose(1, 2)
        return context.reshape(-1, shape.tokens, shape.heads * shape.head_dim)


class _Rows(torch.autograd.Function):
    """:func:`_rows` for the ONNX exporter: ``GatherND`` with ``batch_dims=1``, whose output shape ONNX infers
    (the token count stays static; its lowering of advanced indexing goes through dynamic reshapes)."""

    @staticmethod
    def forward(ctx, values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:  # noqa: D102 - torch API
        return values[torch.arange(values.shape[0]).unsqueeze(1), index]

    @staticmethod
    def symbolic(graph, values, index):  # noqa: D102 - torch API
        last = graph.op("Constant", value_t=torch.tensor([2]))
        return graph.op("GatherND", values, graph.op("Unsqueeze", index, last), batch_dims_i=1)


def _rows(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``values[b, index[b, i]]``: whole rows, one gather (a row GATHER_ND in TFLite, where a per-element
    ``torch.gather`` lowers to a per-element GATHER_ND, ~25x slower)."""
    if torch.onnx.is_in_onnx_export():
        return _Rows.apply(values, index)
    return values[torch.arange(values.shape[0]).unsqueeze(1), index]


def _layout(shape: BlockShape) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Constants of one block (built in Python: the graph holds them as they are): each token's index in A
    (-1 if none), A's token positions, and a rank per token that puts the protected tokens first, then A,
    then B, each in token order."""
    protected, tokens = shape.protected, shape.tokens
    a_positions = list(range(protected, tokens, 2))
    a_index = [-1] * tokens
    for index, position in enumerate(a_positions):
        a_index[position] = index
    rank = [3 * tokens - position if position < protected else (2 * tokens if a_index[position] >= 0 else tokens) - position
            for position in range(tokens)]
    return torch.tensor(a_index), torch.tensor(a_positions), torch.tensor(rank, dtype=torch.float32)


def bipartite_merge(
    hidden: torch.Tensor, size: torch.Tensor | None, keys: torch.Tensor, r: int, shape: BlockShape
) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge ``r`` tokens of ``hidden`` by bipartite soft matching on ``keys``; sizes weight the averages.

    Args:
        hidden: ``(batch, tokens, hidden)``.
        size: ``(batch, tokens, 1)``: how many patches each token stands for; None: one each.
        keys: ``(batch, tokens, dim)``: the similarity metric (the block's keys, averaged over heads).
        r: Tokens to merge away; at most half of the unprotected tokens.
        shape: The block's sizes; its leading ``protected`` tokens never merge ([CLS], DeiT's
            distillation token).

    Returns:
        ``hidden`` and ``size`` with ``tokens - r`` tokens: the protected ones first, then the A tokens
        left alone, then the B tokens (each in token order), each B token the size-weighted mean of
        itself and the A tokens merged into it.
    """
    protected, tokens = shape.protected, shape.tokens
    a_index, a_position, rank = _layout(shape)
    count_a = len(a_position)
    count_b = tokens - protected - count_a
    metric = keys[:, protected:] / keys[:, protected:].norm(dim=-1, keepdim=True)
    similarity = torch.matmul(metric[:, ::2], metric[:, 1::2].transpose(1, 2))  # (batch, A, B) cosines
    best, partner = similarity.max(dim=-1)
    merged = torch.topk(best, r).indices  # (batch, r): the A tokens with the most similar partners
    targets = torch.gather(partner, 1, merged)  # (batch, r): the B token each of them goes into
    # the tokens that stay, in output order: one largest-first TopK of the rank, 0 for a merged token (no
    # sort, which TFLite's TOPK_V2 cannot do; no integer arithmetic, which static quantizers would observe)
    is_merged = (merged.unsqueeze(-1) == a_index).any(dim=1)  # (batch, tokens)
    staying = torch.topk(torch.where(is_merged, torch.zeros_like(rank), rank), tokens - r).indices
    # where each merged token lands: a one-hot (batch, tokens - r, r) over the output's last count_b rows (B),
    # negated, so that its sums are subtractions (see _weighted)
    away = torch.neg(F.pad((targets.unsqueeze(1) == torch.arange(count_b).unsqueeze(-1)).to(hidden.dtype),
                           (0, 0, tokens - r - count_b, 0)))
    weighted = hidden if size is None else _weighted(hidden, size)
    sums = _rows(weighted, staying) - torch.matmul(away, _rows(weighted, a_position[merged]))
    if size is None:
        new_size = 1 - away.sum(dim=-1, keepdim=True)
    else:
        new_size = _rows(size, staying) - torch.matmul(away, _rows(size, a_position[merged]))
    return sums / new_size, new_size


def _weighted(hidden: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """``hidden * size``, as a division. The merge's arithmetic must stay float under static int8 quantization:
    PT2E-style quantizers observe every add and mul, and int8 steps would round the token sizes (small
    integers: a size of 1 read as 0.9 moves its token by 10%). Subtractions and divisions they leave alone
    (TFLite int8-static on the tests' tiny ViT, R = 4: min logits cosine 0.93 with add and mul, 0.99 without)."""
    return hidden / torch.reciprocal(size)


class TokenMergedBlock(nn.Module):
    """A transformers ViT/DeiT block (``layernorm_before``, ``attention``, ``layernorm_after``, ``mlp``: the
    same modules under the same names, so layers keep their paths) with proportional attention, then ``r``
    tokens merged, then its MLP (eval mode: no dropout)."""

    def __init__(self, block: nn.Module, r: int, shape: BlockShape) -> None:
        super().__init__()
        self.layernorm_before = block.layernorm_before
        self.attention = SizedAttention(block.attention, shape)
        self.layernorm_after = block.layernorm_after
        self.mlp = block.mlp
        self.r, self.shape = r, shape

    def forward(self, hidden: torch.Tensor, size: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``size`` is None until the first merge; the returned size is None only when it was and ``r`` is 0."""
        attended, keys = self.attention(self.layernorm_before(hidden), None if size is None else torch.log(size))
        hidden = hidden + attended
        if self.r > 0:
            hidden, size = bipartite_merge(hidden, size, keys, self.r, self.shape)
        return hidden + self.mlp(self.layernorm_after(hidden)), size
