"""A Core ML image input (``ct.ImageType``) that reproduces the model's normalization exactly.

Core ML hands the network ``scale * pixel + bias[c]`` for 8-bit pixels: one scale for all channels,
a bias per channel. The Hugging Face processor computes ``(pixel * rescale - mean[c]) / std[c]``.

- When the three stds are equal (ViT: mean = std = 0.5) that is exactly ``scale = rescale / std``
  and ``bias[c] = -mean[c] / std`` (ViT: 1/127.5 and -1).
- When they differ (ImageNet statistics), the image input subtracts the mean only
  (``scale = rescale``, ``bias[c] = -mean[c]``) and the division by ``std[c]`` moves into the patch
  embedding: a convolution without padding is linear in each input channel, so dividing its weights
  for input channel ``c`` by ``std[c]`` gives the same output on the un-divided input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from vitedge.errors import ConversionError
from vitedge.runtime.preprocess_spec import PreprocessSpec


@dataclass(frozen=True)
class ImageInputPlan:
    """How a Core ML image input and the network split the normalization between them.

    Attributes:
        scale: Core ML's image scale (multiplies 0..255 pixel values).
        bias: Core ML's per-channel bias, in the model's channel order.
        color_layout: ``"RGB"`` or ``"BGR"``: the channel order the network sees.
        folded_std: The per-channel std divided into the patch-embedding weights; None when the
            image input does the whole normalization.
    """

    scale: float
    bias: tuple[float, float, float]
    color_layout: str = "RGB"
    folded_std: tuple[float, float, float] | None = None

    @classmethod
    def for_spec(cls, spec: PreprocessSpec) -> ImageInputPlan:
        """The plan that reproduces ``spec``'s rescale and normalization."""
        rescale = 1.0 if spec.rescale_factor is None else float(spec.rescale_factor)
        mean = (0.0, 0.0, 0.0) if spec.mean is None else tuple(float(m) for m in spec.mean)
        std = (1.0, 1.0, 1.0) if spec.std is None else tuple(float(s) for s in spec.std)
        if spec.channel_order == "BGR":  # spec mean/std are in RGB order; the network sees BGR
            mean, std = mean[::-1], std[::-1]
        if len(set(std)) == 1:
            return cls(rescale / std[0], tuple(-m / std[0] for m in mean), spec.channel_order)
        return cls(rescale, tuple(-m for m in mean), spec.channel_order, folded_std=std)

    def network_input(self, pixels_nhwc: np.ndarray) -> np.ndarray:
        """What Core ML feeds the network for a batch of 0..255 pixels (N, H, W, 3): NCHW float32.

        Channels are taken as they come: pass them in ``color_layout`` order.
        """
        pixels = np.asarray(pixels_nhwc, dtype=np.float32).transpose(0, 3, 1, 2)
        bias = np.asarray(self.bias, dtype=np.float32)[None, :, None, None]
        return np.ascontiguousarray(pixels * np.float32(self.scale) + bias)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scale": self.scale, "bias": list(self.bias), "color_layout": self.color_layout,
            "std_folded_into_patch_embedding": None if self.folded_std is None else list(self.folded_std),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageInputPlan:
        folded = data.get("std_folded_into_patch_embedding")
        return cls(float(data["scale"]), tuple(data["bias"]), data.get("color_layout", "RGB"),
                   None if folded is None else tuple(folded))


def patch_embedding(model: nn.Module) -> nn.Conv2d:
    """The model's patch-embedding convolution: its only Conv2d reading 3 channels, without padding."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.in_channels == 3]
    if len(convs) != 1 or any(p != 0 for p in convs[0].padding) or convs[0].groups != 1:
        raise ConversionError(
            f"cannot fold the per-channel std into {type(model).__name__}: expected one unpadded patch-embedding "
            f"convolution on the 3 image channels, found {len(convs)}",
            hint="use --input-type float for this model",
        )
    return convs[0]


def fold_std_into_patch_embedding(model: nn.Module, std: tuple[float, float, float]) -> None:
    """Divide the patch-embedding weights of input channel ``c`` by ``std[c]``, in place."""
    conv = patch_embedding(model)
    with torch.no_grad():
        conv.weight.div_(torch.tensor(std, dtype=conv.weight.dtype).view(1, 3, 1, 1))
