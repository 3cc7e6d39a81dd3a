"""Presets of the other families: BEiT, DINOv2, Swin, Swin V2, MobileViT and MobileViT V2.

Each builds the exact architecture of a published checkpoint (its ``config.json`` values, 1000
labels) with random weights, and carries that checkpoint's preprocessing (its
``preprocessor_config.json``), so latency work and the tests need no download. The ``*-tiny-test``
presets keep every op of their family (relative position bias, LayerScale, shifted windows,
unfold/fold) at a size the tests convert in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vitedge.runtime.preprocess_spec import PreprocessSpec

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class FamilyPreset:
    """A named architecture of a non-ViT family (built with ``AutoConfig.for_model``)."""

    name: str
    description: str
    model_type: str
    config: dict[str, Any]
    preprocess_spec: PreprocessSpec
    num_labels: int = 1000

    @property
    def image_size(self) -> int:
        return int(self.config["image_size"])

    @property
    def patch_size(self) -> int:
        return int(self.config["patch_size"])

    def config_kwargs(self) -> dict[str, Any]:
        return {**self.config, "num_labels": self.num_labels}

    def build_config(self, **overrides: Any) -> Any:
        """The transformers config of this architecture (``overrides`` win)."""
        from transformers import AutoConfig

        return AutoConfig.for_model(self.model_type, **{**self.config_kwargs(), **overrides})

    def preprocess(self) -> PreprocessSpec:
        return self.preprocess_spec


def _exact(size: int, resample: str, mean: tuple[float, ...], std: tuple[float, ...]) -> PreprocessSpec:
    return PreprocessSpec(resize_mode="exact", size=(size, size), resample=resample, rescale_factor=1 / 255,
                          mean=mean, std=std)


def _dinov2_spec(crop: int) -> PreprocessSpec:  # BitImageProcessor: shortest edge 256, bicubic, crop 224
    return PreprocessSpec(resize_mode="shortest_edge", size=None, shortest_edge=crop * 256 // 224,
                          resample="bicubic", crop_size=(crop, crop), rescale_factor=1 / 255,
                          mean=_IMAGENET_MEAN, std=_IMAGENET_STD)


def _mobilevit_spec(crop: int) -> PreprocessSpec:  # MobileViTImageProcessor: edge crop+32, BGR, no normalize
    return PreprocessSpec(resize_mode="shortest_edge", size=None, shortest_edge=crop + 32, resample="bilinear",
                          crop_size=(crop, crop), rescale_factor=1 / 255, mean=None, std=None, channel_order="BGR")


_HALF = (0.5, 0.5, 0.5)
_BEIT_BASE = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
              "image_size": 224, "patch_size": 16, "use_relative_position_bias": True, "use_mean_pooling": True,
              "use_absolute_position_embeddings": False, "layer_scale_init_value": 0.1}
_SWIN_TINY = {"embed_dim": 96, "depths": [2, 2, 6, 2], "num_heads": [3, 6, 12, 24], "patch_size": 4}

FAMILY_PRESETS: tuple[FamilyPreset, ...] = (
    FamilyPreset("beit-base-patch16-224", "microsoft/beit-base-patch16-224 architecture", "beit", _BEIT_BASE,
                 _exact(224, "bilinear", _HALF, _HALF)),
    FamilyPreset("dinov2-small", "facebook/dinov2-small-imagenet1k-1-layer architecture (1-layer linear head)",
                 "dinov2", {"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6, "mlp_ratio": 4,
                            "image_size": 518, "patch_size": 14, "layerscale_value": 1.0}, _dinov2_spec(224)),
    FamilyPreset("swin-tiny-patch4-window7-224", "microsoft/swin-tiny-patch4-window7-224 architecture", "swin",
                 {**_SWIN_TINY, "image_size": 224, "window_size": 7},
                 _exact(224, "bicubic", _IMAGENET_MEAN, _IMAGENET_STD)),
    FamilyPreset("swinv2-tiny-patch4-window8-256", "microsoft/swinv2-tiny-patch4-window8-256 architecture", "swinv2",
                 {**_SWIN_TINY, "image_size": 256, "window_size": 8},
                 _exact(256, "bicubic", _IMAGENET_MEAN, _IMAGENET_STD)),
    FamilyPreset("mobilevit-small", "apple/mobilevit-small architecture", "mobilevit",
                 {"image_size": 256, "patch_size": 2, "hidden_sizes": [144, 192, 240],
                  "neck_hidden_sizes": [16, 32, 64, 96, 128, 160, 640]}, _mobilevit_spec(256)),
    FamilyPreset("mobilevitv2-1.0-256", "apple/mobilevitv2-1.0-imagenet1k-256 architecture", "mobilevitv2",
                 {"image_size": 256, "patch_size": 2, "width_multiplier": 1.0}, _mobilevit_spec(256)),
    # Tiny variants for the tests: every op of the family, a few thousand parameters. MobileViT's default
# initialization (std 0.02, eval-mode BatchNorm) makes random activations vanish to exact zeros, so the
# tiny MobileViTs use a wider one: validation must see logits that differ between inputs.
    FamilyPreset("beit-tiny-test", "tiny BEiT for tests (relative position bias, LayerScale, mean pooling)", "beit",
                 {**_BEIT_BASE, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                  "intermediate_size": 64, "image_size": 32, "patch_size": 8}, _exact(32, "bilinear", _HALF, _HALF),
                 num_labels=10),
    FamilyPreset("dinov2-tiny-test", "tiny DINOv2 for tests (interpolated position embeddings, LayerScale)",
                 "dinov2", {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "mlp_ratio": 2,
                            "image_size": 40, "patch_size": 8, "layerscale_value": 1.0}, _dinov2_spec(32),
                 num_labels=10),
    FamilyPreset("swin-tiny-test", "tiny Swin for tests (shifted windows, patch merging)", "swin",
                 {"embed_dim": 16, "depths": [2, 2], "num_heads": [2, 2], "patch_size": 4, "image_size": 32,
                  "window_size": 4}, _exact(32, "bicubic", _IMAGENET_MEAN, _IMAGENET_STD), num_labels=10),
    FamilyPreset("swinv2-tiny-test", "tiny Swin V2 for tests (cosine attention, log-spaced position bias)",
                 "swinv2", {"embed_dim": 16, "depths": [2, 2], "num_heads": [2, 2], "patch_size": 4,
                            "image_size": 32, "window_size": 4},
                 _exact(32, "bicubic", _IMAGENET_MEAN, _IMAGENET_STD), num_labels=10),
    FamilyPreset("mobilevit-tiny-test", "tiny MobileViT for tests (unfold/fold around transformer blocks)",
                 "mobilevit", {"image_size": 64, "patch_size": 2, "hidden_sizes": [16, 24, 32],
                               "neck_hidden_sizes": [8, 8, 16, 16, 24, 24, 48], "num_attention_heads": 2,
                               "initializer_range": 0.4},
                 _mobilevit_spec(64), num_labels=10),
    FamilyPreset("mobilevitv2-tiny-test", "tiny MobileViT V2 for tests (separable self-attention)", "mobilevitv2",
                 {"image_size": 64, "patch_size": 2, "width_multiplier": 0.25, "initializer_range": 0.3},
                 _mobilevit_spec(64), num_labels=10),
)
