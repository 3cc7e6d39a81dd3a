"""Per-architecture adapters: a classifier as a module with two outputs, (logits, embedding).

Every exported graph has the same two outputs whatever the family: the classifier's logits and the
pooled embedding the classifier reads (for ViT and DeiT: the [CLS] hidden state after the final
LayerNorm). Adding a family is registering one function here.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from vitedge.errors import ModelLoadError

Adapter = Callable[[nn.Module, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
ADAPTERS: dict[str, Adapter] = {}


def register_adapter(*model_types: str) -> Callable[[Adapter], Adapter]:
    def decorate(function: Adapter) -> Adapter:
        for model_type in model_types:
            ADAPTERS[model_type] = function
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
