"""A pretrained model at another input size: fine-tuning at a higher (or lower) resolution.

ViT and DeiT learn one absolute position embedding per patch of their training grid. At another input
size the grid changes, so the patch part of the table is resampled (bicubic, antialiased when it
shrinks) to the new grid and the special tokens' rows ([CLS], DeiT's distillation token) are kept: the
recipe that made ViT-B/16-384 from ViT-B/16-224 (Dosovitskiy et al., 2021, section 3.2) and timm's
``resample_abs_pos_embed``. The model then runs at the new size without ``interpolate_pos_encoding`` (one
static shape, as every exporter wants), and the preprocessing scales with it. Families without such a
table (relative position biases, windows, convolutions) are refused: their input size is fixed by more
than one table.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from vitedge.errors import UsageError
from vitedge.runtime.preprocess_spec import PreprocessSpec

#: Model types whose only size-bound weights are an absolute position table -> its leading special tokens.
SPECIAL_TOKENS = {"vit": 1, "deit": 2}


def resample_positions(table: torch.Tensor, special: int, grid: int) -> torch.Tensor:
    """``table`` (1, special + g*g, D) with its g x g patch rows resampled to ``grid`` x ``grid``."""
    patches = table.shape[1] - special
    old = math.isqrt(patches)
    if old * old != patches:
        raise UsageError(f"position table of {patches} patches is not a square grid; cannot resample it")
    if old == grid:
        return table.detach().clone()
    dim = table.shape[-1]
    image = table[:, special:].detach().float().reshape(1, old, old, dim).permute(0, 3, 1, 2)
    resized = nn.functional.interpolate(image, size=(grid, grid), mode="bicubic", align_corners=False,
                                        antialias=grid < old)
    rows = resized.permute(0, 2, 3, 1).reshape(1, grid * grid, dim).to(table.dtype)
    return torch.cat([table[:, :special].detach(), rows], dim=1)


def spec_at_size(spec: PreprocessSpec, size: int) -> PreprocessSpec:
    """``spec`` scaled so that its output is ``size`` x ``size`` (resize and crop keep their ratio)."""
    height, _ = spec.output_size or (size, size)
    if spec.resize_mode == "none" and not spec.crop_size:
        raise UsageError("the model's preprocessing does not resize; its input size cannot be changed")
    ratio = size / height
    changes: dict = {"crop_size": (size, size) if spec.crop_size else None}
    if spec.resize_mode == "exact":
        changes["size"] = (size, size) if not spec.crop_size else tuple(round(side * ratio) for side in spec.size)
    elif spec.resize_mode == "shortest_edge":
        changes["shortest_edge"] = size if not spec.crop_size else round(spec.shortest_edge * ratio)
    return dataclasses.replace(spec, **changes)


def resize_input(model: nn.Module, spec: PreprocessSpec, image_size: int) -> PreprocessSpec:
    """Make the pretrained ``model`` take ``image_size`` x ``image_size`` inputs (in place); its new preprocessing.

    Raises:
        UsageError: The family's size is bound to more than a position table, or the size does not fit the patches.
    """
    config = model.config
    special = SPECIAL_TOKENS.get(config.model_type)
    if special is None:
        raise UsageError(f"--image-size on a pretrained {config.model_type} model is not supported: only ViT and DeiT "
                         "have a single position table to resample",
                         hint="fine-tune it at its own input size, or start from a preset with --image-size")
    patch = config.patch_size if isinstance(config.patch_size, int) else config.patch_size[0]
    if image_size % patch:
        raise UsageError(f"--image-size {image_size} is not a multiple of the model's patch size {patch}")
    embeddings = getattr(model, config.model_type).embeddings
    embeddings.position_embeddings = nn.Parameter(
        resample_positions(embeddings.position_embeddings, special, image_size // patch))
    embeddings.patch_embeddings.image_size = (image_size, image_size)
    embeddings.patch_embeddings.num_patches = (image_size // patch) ** 2
    if hasattr(embeddings, "image_size"):
        embeddings.image_size = (image_size, image_size)
    config.image_size = image_size
    return spec_at_size(spec, image_size)
