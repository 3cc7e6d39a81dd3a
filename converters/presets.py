"""Architecture presets: published architectures with random weights, for latency work.

``vitedge convert preset:vit-base-patch16-224 …`` builds the architecture of
google/vit-base-patch16-224 (same hidden size, layers, heads, image and patch size, 1000 labels)
with seeded random weights; its artifact says ``weights: random-init``. The other families' presets
(BEiT, DINOv2, Swin, Swin V2, MobileViT, MobileViT V2) live in :mod:`.family_presets`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vitedge.converters.family_presets import FAMILY_PRESETS, FamilyPreset
from vitedge.converters.hf_preprocess import default_spec
from vitedge.errors import UsageError, did_you_mean
from vitedge.runtime.preprocess_spec import PreprocessSpec

PRESET_PREFIX = "preset:"


@dataclass(frozen=True)
class Preset:
    """A named ViT architecture."""

    name: str
    description: str
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    image_size: int
    patch_size: int
    num_labels: int = 1000
    model_type = "vit"

    def build_config(self, **overrides: Any) -> Any:
        """The ``ViTConfig`` of this architecture (``overrides`` win)."""
        from transformers import ViTConfig

        return ViTConfig(**{**self.config_kwargs(), **overrides})

    def preprocess(self) -> PreprocessSpec:
        """ViTImageProcessor's defaults at this resolution."""
        return default_spec(self.image_size)

    def config_kwargs(self) -> dict:
        return {
            "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "intermediate_size": self.intermediate_size,
            "image_size": self.image_size,
            "patch_size": self.patch_size,
            "num_labels": self.num_labels,
        }


PRESETS: dict[str, Preset | FamilyPreset] = {}


def register_preset(preset: Preset | FamilyPreset) -> Preset | FamilyPreset:
    if preset.name in PRESETS:
        raise ValueError(f"preset {preset.name!r} registered twice")
    PRESETS[preset.name] = preset
    return preset


for _preset in (
    Preset("vit-tiny-patch16-224", "DeiT-Tiny size: 192 hidden, 12 layers, 3 heads", 192, 12, 3, 768, 224, 16),
    Preset("vit-small-patch16-224", "DeiT-Small size: 384 hidden, 12 layers, 6 heads", 384, 12, 6, 1536, 224, 16),
    Preset("vit-base-patch16-224", "google/vit-base-patch16-224 architecture", 768, 12, 12, 3072, 224, 16),
    Preset("vit-base-patch16-384", "google/vit-base-patch16-384 architecture", 768, 12, 12, 3072, 384, 16),
    Preset("vit-base-patch32-384", "google/vit-base-patch32-384 architecture", 768, 12, 12, 3072, 384, 32),
    Preset("vit-large-patch16-224", "google/vit-large-patch16-224 architecture", 1024, 24, 16, 4096, 224, 16),
    Preset("vit-large-patch16-384", "google/vit-large-patch16-384 architecture", 1024, 24, 16, 4096, 384, 16),
    *FAMILY_PRESETS,
):
    register_preset(_preset)


def get_preset(name: str) -> Preset | FamilyPreset:
    """A preset by name (with or without the ``preset:`` prefix)."""
    name = name.removeprefix(PRESET_PREFIX)
    try:
        return PRESETS[name]
    except KeyError:
        raise UsageError(
            f"unknown preset {name!r}{did_you_mean(name, PRESETS)}",
            hint=f"choose one of: {', '.join(PRESETS)}",
        ) from None
