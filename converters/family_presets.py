"""Presets of the other families: BEiT, DINOv2, Swin, Swin V2, MobileViT and MobileViT V2.

Each builds the exact architecture of a published checkpoint (its ``config.json`` values, 1000
labels) with random weights, and carries that checkpoint's preprocessing (its
``preprocessor_config.json``), so latency work and the tests need no download. The ``*-tiny-test``
presets (every family, ViT and DeiT included) keep every op of their family (relative position bias,
LayerScale, shifted windows, unfold/fold) at a size the tests convert in seconds. The ``*-mini``
presets are no published architecture either: each family's ops at about the quickstart ViT's size
(0.3-1.3 M parameters, 32x32 inputs; 64x64 for MobileViT), small enough to train on the built-in
dataset in a couple of minutes on two cores (the family study, benchmarks/studies/families.py).
Presets without a ``preprocess_spec`` take their family's preprocessing at their image size
(:func:`vitedge.converters.family_preprocess.family_spec`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vitedge.converters.family_preprocess import dinov2_spec, family_spec
from vitedge.runtime.preprocess_spec import PreprocessSpec


@dataclass(frozen=True)
class FamilyPreset:
    """A named architecture of a non-ViT family (built with ``AutoConfig.for_model``)."""

    name: str
    description: str
    model_type: str
    config: dict[str, Any]
    preprocess_spec: PreprocessSpec | None = None  # None: the family's at image_size
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
        return self.preprocess_spec or family_spec(self.model_type, self.image_size)


_BEIT_BASE = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
              "image_size": 224, "patch_size": 16, "use_relative_position_bias": True, "use_mean_pooling": True,
              "use_absolute_position_embeddings": False, "layer_scale_init_value": 0.1}
_SWIN_TINY = {"embed_dim": 96, "depths": [2, 2, 6, 2], "num_heads": [3, 6, 12, 24], "patch_size": 4}
# transformers maps DeiT to two classes: the one fine-tuning uses (the distilled one has two heads)
_DEIT = {"architectures": ["DeiTForImageClassification"]}
_TINY_VIT = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
_MINI_VIT_SIZES = {"hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 2, "image_size": 32,
                   "patch_size": 8, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
_MINI_VIT = {**_MINI_VIT_SIZES, "intermediate_size": 512}
_MINI_SWIN = {"embed_dim": 64, "depths": [2, 2], "num_heads": [2, 4], "patch_size": 4, "image_size": 32,
              "window_size": 4}
# MobileViT's convolutions need a wider initialization than transformers' default (std 0.02), about the scale of
# the Kaiming init Apple's training code uses: with 0.02 the mini's loss stayed at ln(10) for 40 steps on the
# shapes (AdamW 2e-3); with 0.1 it fell to 1.4 (MobileViT V2: 2.0 with 0.02, 1.8 with 0.1).
_MINI_MOBILEVIT_INIT = {"image_size": 64, "patch_size": 2, "initializer_range": 0.1}
_MINI_MOBILEVIT = {**_MINI_MOBILEVIT_INIT, "hidden_sizes": [64, 80, 96],
                   "neck_hidden_sizes": [16, 16, 24, 24, 48, 64, 320], "expand_ratio": 2.0}

FAMILY_PRESETS: tuple[FamilyPreset, ...] = (
    FamilyPreset("beit-base-patch16-224", "microsoft/beit-base-patch16-224 architecture", "beit", _BEIT_BASE),
    FamilyPreset("dinov2-small", "facebook/dinov2-small-imagenet1k-1-layer architecture (1-layer linear head)",
                 "dinov2", {"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6, "mlp_ratio": 4,
                            "image_size": 518, "patch_size": 14, "layerscale_value": 1.0}, dinov2_spec(224)),
    FamilyPreset("swin-tiny-patch4-window7-224", "microsoft/swin-tiny-patch4-window7-224 architecture", "swin",
                 {**_SWIN_TINY, "image_size": 224, "window_size": 7}),
    FamilyPreset("swinv2-tiny-patch4-window8-256", "microsoft/swinv2-tiny-patch4-window8-256 architecture", "swinv2",
                 {**_SWIN_TINY, "image_size": 256, "window_size": 8}),
    FamilyPreset("mobilevit-small", "apple/mobilevit-small architecture", "mobilevit",
                 {"image_size": 256, "patch_size": 2, "hidden_sizes": [144, 192, 240],
                  "neck_hidden_sizes": [16, 32, 64, 96, 128, 160, 640]}),
    FamilyPreset("mobilevitv2-1.0-256", "apple/mobilevitv2-1.0-imagenet1k-256 architecture", "mobilevitv2",
                 {"image_size": 256, "patch_size": 2, "width_multiplier": 1.0}),
    # Tiny variants for the tests: every op of the family, a few thousand parameters. MobileViT's default
# initialization (std 0.02, eval-mode BatchNorm) makes random activations vanish to exact zeros, so the
# tiny MobileViTs use a wider one: validation must see logits that differ between inputs.
    FamilyPreset("beit-tiny-test", "tiny BEiT for tests (relative position bias, LayerScale, mean pooling)", "beit",
                 {**_BEIT_BASE, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                  "intermediate_size": 64, "image_size": 32, "patch_size": 8}, num_labels=10),
    FamilyPreset("dinov2-tiny-test", "tiny DINOv2 for tests (interpolated position embeddings, LayerScale)",
                 "dinov2", {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "mlp_ratio": 2,
                            "image_size": 40, "patch_size": 8, "layerscale_value": 1.0}, dinov2_spec(32),
                 num_labels=10),
    FamilyPreset("swin-tiny-test", "tiny Swin for tests (shifted windows, patch merging)", "swin",
                 {"embed_dim": 16, "depths": [2, 2], "num_heads": [2, 2], "patch_size": 4, "image_size": 32,
                  "window_size": 4}, num_labels=10),
    FamilyPreset("swinv2-tiny-test", "tiny Swin V2 for tests (cosine attention, log-spaced position bias)",
                 "swinv2", {"embed_dim": 16, "depths": [2, 2], "num_heads": [2, 2], "patch_size": 4,
                            "image_size": 32, "window_size": 4}, num_labels=10),
    FamilyPreset("mobilevit-tiny-test", "tiny MobileViT for tests (unfold/fold around transformer blocks)",
                 "mobilevit", {"image_size": 64, "patch_size": 2, "hidden_sizes": [16, 24, 32],
                               "neck_hidden_sizes": [8, 8, 16, 16, 24, 24, 48], "num_attention_heads": 2,
                               "initializer_range": 0.4}, num_labels=10),
    FamilyPreset("mobilevitv2-tiny-test", "tiny MobileViT V2 for tests (separable self-attention)", "mobilevitv2",
                 {"image_size": 64, "patch_size": 2, "width_multiplier": 0.25, "initializer_range": 0.3},
                 num_labels=10),
    FamilyPreset("vit-tiny-test", "tiny ViT for tests", "vit", {**_TINY_VIT, "image_size": 32, "patch_size": 8},
                 num_labels=10),
    FamilyPreset("deit-tiny-test", "tiny DeiT for tests (DeiT's model class and preprocessing)", "deit",
                 {**_TINY_VIT, **_DEIT, "image_size": 32, "patch_size": 8}, num_labels=10),
    # Mini variants for the family study: trained on the built-in shapes (10 classes) in minutes.
    *(FamilyPreset(f"{model_type}-mini", f"{title} ops at the quickstart ViT's size ({what}); not a published "
                   "architecture", model_type, config, num_labels=10)
      for model_type, title, what, config in (
          ("vit", "ViT", "hidden 128, 4 layers, 32x32, patch 8", _MINI_VIT),
          ("deit", "DeiT", "hidden 128, 4 layers, 32x32, patch 8", {**_MINI_VIT, **_DEIT}),
          ("beit", "BEiT", "hidden 128, 4 layers, 32x32, patch 8",
           {**_BEIT_BASE, **_MINI_VIT}),
          ("dinov2", "DINOv2", "hidden 128, 4 layers, 32x32, patch 8",
           {**_MINI_VIT_SIZES, "mlp_ratio": 4, "layerscale_value": 1.0}),
          ("swin", "Swin", "embed 64, depths 2+2, 32x32, patch 4, window 4", _MINI_SWIN),
          ("swinv2", "Swin V2", "embed 64, depths 2+2, 32x32, patch 4, window 4", _MINI_SWIN),
          ("mobilevit", "MobileViT", "apple/mobilevit-xx-small's widths at 64x64", _MINI_MOBILEVIT),
          ("mobilevitv2", "MobileViT V2", "width multiplier 0.5 at 64x64",
           {**_MINI_MOBILEVIT_INIT, "width_multiplier": 0.5}),
      )),
)
