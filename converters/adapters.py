"""Per-architecture adapters: a classifier as a module with two outputs, (logits, embedding).

Every exported graph has the same two outputs whatever the family: the classifier's logits and the
pooled embedding the classifier reads, exactly as transformers computes it (ViT and DeiT: the [CLS]
hidden state after the final LayerNorm; BEiT: its pooler, the mean of the patch tokens after a
LayerNorm; DINOv2: [CLS] concatenated with the mean of the patch tokens; Swin, Swin V2, MobileViT and
MobileViT V2: the spatial mean of the last feature map). :data:`EMBEDDINGS` names it per model type
for the manifest. Adding a family is registering one function here.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from vitedge.errors import ModelLoadError

Adapter = Callable[[nn.Module, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
ADAPTERS: dict[str, Adapter] = {}
#: What the ``embedding`` output is, per model type (recorded in the manifest's source architecture).
EMBEDDINGS: dict[str, str] = {}
_CLS = "cls-token-after-layernorm"
_SPATIAL_MEAN = "spatial-mean-of-last-feature-map"


def register_adapter(*model_types: str, embedding: str = _CLS) -> Callable[[Adapter], Adapter]:
    """Register ``function`` as the adapter of ``model_types``; ``embedding`` says what it returns."""

    def decorate(function: Adapter) -> Adapter:
        for model_type in model_types:
            ADAPTERS[model_type] = function
            EMBEDDINGS[model_type] = embedding
        return function

    return decorate


@register_adapter("vit")
def _vit(model: nn.Module, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    embedding = model.vit(pixel_values).last_hidden_state[:, 0]
    return model.classifier(embedding), embedding


@register_adapter("deit")
def _deit(model: nn.Module, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    hidden = model.deit(pixel_values).last_hidden_state
    embedding = hidden[:, 0]
    if hasattr(model, "distillation_classifier"):  # DeiTForImageClassificationWithTeacher
        logits = (model.cls_classifier(embedding) + model.distillation_classifier(hidden[:, 1])) / 2
        return logits, embedding
    return model.classifier(embedding), embedding


@register_adapter("beit", embedding="pooler-output (mean of patch tokens after layernorm, or [CLS])")
@register_adapter("swin", "swinv2", "mobilevit", "mobilevitv2", embedding=_SPATIAL_MEAN)
def _pooled(model: nn.Module, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Families whose classifier reads the backbone's ``pooler_output`` (dropout is off in eval)."""
    embedding = getattr(model, model.base_model_prefix)(pixel_values).pooler_output
    return model.classifier(embedding), embedding


@register_adapter("dinov2", embedding="cls-token-concat-mean-of-patch-tokens")
def _dinov2(model: nn.Module, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    hidden = model.dinov2(pixel_values).last_hidden_state
    embedding = torch.cat([hidden[:, 0], hidden[:, 1:].mean(dim=1)], dim=1)
    return model.classifier(embedding), embedding


class TwoOutputClassifier(nn.Module):
    """Wraps a Hugging Face image classifier: ``forward(pixel_values) -> (logits, embedding)``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        model_type = getattr(model.config, "model_type", None)
        if model_type not in ADAPTERS:
            raise ModelLoadError(
                f"model type {model_type!r} is not supported yet",
                hint=f"supported: {', '.join(sorted(ADAPTERS))}",
            )
        self.model = model
        self._adapter = ADAPTERS[model_type]

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._adapter(self.model, pixel_values)


def supported_model_types() -> tuple[str, ...]:
    return tuple(sorted(ADAPTERS))


def embedding_kind(model_type: str) -> str | None:
    """What the ``embedding`` output of ``model_type`` is (``None`` for an unknown type)."""
    return EMBEDDINGS.get(model_type)
