"""A ViT/DeiT classifier whose blocks merge tokens as a :class:`TokenMergingPlan` says.

:func:`token_merged_source` returns the source model with its backbone (transformers' ``ViTModel``
or ``DeiTModel``) swapped for a :class:`TokenMergedBackbone` that shares its modules and weights:
the same module names (``vit.layers.3.mlp.fc1``), the same adapters (:mod:`vitedge.converters.adapters`)
and the same two outputs, so every exporter, quantizer and validator takes it like any model.
"""

from __future__ import annotations

import copy
import dataclasses

import torch
from torch import nn

from vitedge.converters.loading import SourceModel
from vitedge.converters.token_merging.merge import BlockShape, TokenMergedBlock
from vitedge.converters.token_merging.plan import PROTECTED_TOKENS, TokenMergingPlan, plan_tokens
from vitedge.converters.token_merging_option import TokenMerging, text_of
from vitedge.errors import UsageError
from vitedge.formats import FAMILIES


class TokenMergedBackbone(nn.Module):
    """A transformers ViT/DeiT backbone whose blocks merge ``plan.schedule[i]`` tokens each.

    Blocks before the first merge are the original ones (their attention sees no sizes yet); from the
    first merging block on, each is a :class:`~vitedge.converters.token_merging.merge.TokenMergedBlock`
    around the original's modules. Module paths stay the original's (``vit.layers.3.attention.q_proj``).
    """

    def __init__(self, backbone: nn.Module, plan: TokenMergingPlan) -> None:
        super().__init__()
        self.embeddings = backbone.embeddings
        self.layers = nn.ModuleList(_blocks(backbone, plan))
        self.layernorm = backbone.layernorm
        self.pooler = backbone.pooler
        self.config = backbone.config
        self.plan = plan

    def forward(self, pixel_values: torch.Tensor, **_: object):
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        hidden = self.embeddings(pixel_values.to(self.embeddings.patch_embeddings.projection.weight.dtype))
        size = None
        for block in self.layers:
            if isinstance(block, TokenMergedBlock):
                hidden, size = block(hidden, size)
            else:
                hidden = block(hidden)
        sequence = self.layernorm(hidden)
        pooled = self.pooler(sequence) if self.pooler is not None else None
        return BaseModelOutputWithPooling(last_hidden_state=sequence, pooler_output=pooled)


def _blocks(backbone: nn.Module, plan: TokenMergingPlan) -> list[nn.Module]:
    """The original blocks up to the first merge, token-merged ones from there on."""
    first = next(index for index, r in enumerate(plan.schedule) if r)
    hidden = int(backbone.config.hidden_size)
    blocks = list(backbone.layers[:first])
    for block, r, tokens in zip(backbone.layers[first:], plan.schedule[first:], plan.tokens[first:]):
        attention = block.attention
        shape = BlockShape(tokens=tokens, protected=plan.protected, heads=int(attention.num_attention_heads),
                           head_dim=int(attention.head_dim), hidden=hidden)
        blocks.append(TokenMergedBlock(block, r, shape))
    return blocks


def model_tokens(source: SourceModel) -> tuple[int, int]:
    """Tokens entering the first block at the export's image size, and the number of blocks."""
    model = source.model
    backbone = getattr(model, model.base_model_prefix)
    with torch.no_grad():
        sample = torch.zeros(1, 3, source.image_size, source.image_size)
        tokens = backbone.embeddings(sample).shape[1]
    return int(tokens), len(backbone.layers)


def plan_for(source: SourceModel, value: TokenMerging) -> TokenMergingPlan:
    """The plan of ``value`` (R or a schedule) for ``source``; a UsageError for a family or a count it cannot take."""
    family = source.model.config.model_type
    if family not in PROTECTED_TOKENS:
        supported = " and ".join(FAMILIES[name] for name in PROTECTED_TOKENS)
        raise UsageError(f"--token-merging {text_of(value)}: {FAMILIES.get(family, family)} models cannot merge tokens "
                         f"(token merging supports {supported})", hint="convert it without --token-merging")
    tokens, blocks = model_tokens(source)
    return plan_tokens(value, tokens=tokens, blocks=blocks, protected=PROTECTED_TOKENS[family],
                       family=FAMILIES[family])


def token_merged_model(model: nn.Module, plan: TokenMergingPlan) -> nn.Module:
    """``model`` (a ViT/DeiT classifier) with a :class:`TokenMergedBackbone`; weights shared, ``model`` untouched.

    The copy carries ``vitedge_variant`` (what makes its graph differ from the weights alone), which
    caches keyed by the weights include.
    """
    prefix = model.base_model_prefix
    merged = copy.copy(model)
    merged._modules = dict(model._modules)  # a new child table: the original keeps its backbone
    merged._modules[prefix] = TokenMergedBackbone(getattr(model, prefix), plan)
    merged.vitedge_variant = f"token-merging {text_of(plan.schedule)}"
    return merged.eval()


def token_merged_source(source: SourceModel, plan: TokenMergingPlan) -> SourceModel:
    """``source`` with its model token-merged as ``plan`` says; unchanged when the plan merges nothing."""
    if not plan.merges:
        return source
    return dataclasses.replace(source, model=token_merged_model(source.model, plan))
