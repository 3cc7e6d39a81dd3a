"""Each model family's own image preprocessing: its processor's defaults at an input size, and the
``preprocessor_config.json`` that makes transformers (and ``vitedge convert``) reproduce a spec.

A model built from a preset or a ``config.json`` has no ``preprocessor_config.json`` of its own. It
takes its family's processor, as the published checkpoints configure it, scaled to its input size:

==============  ==========================  ==================================================================
family          processor                   at input size N
==============  ==========================  ==================================================================
ViT             ViTImageProcessor           N x N bilinear, mean = std = 0.5
DeiT            DeiTImageProcessor          (N*256/224)^2 bicubic, center crop N, ImageNet mean/std
BEiT            BeitImageProcessor          N x N bilinear, mean = std = 0.5
DINOv2          BitImageProcessor           shortest edge N*256/224 bicubic, center crop N, ImageNet mean/std
Swin, Swin V2   ViTImageProcessor           N x N bicubic, ImageNet mean/std
MobileViT (V2)  MobileViTImageProcessor     shortest edge N+32 bilinear, center crop N, RGB to BGR, no mean/std
==============  ==========================  ==================================================================

Training reads its inputs with that spec, the trained folder's ``preprocessor_config.json`` names that
processor (:func:`processor_config`), and converting the folder reads the same spec back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vitedge.runtime.preprocess_spec import PreprocessSpec

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)

_VIT, _MOBILEVIT, _BIT = "ViTImageProcessor", "MobileViTImageProcessor", "BitImageProcessor"
_PIL_RESAMPLE = {"nearest": 0, "lanczos": 1, "bilinear": 2, "bicubic": 3, "box": 4, "hamming": 5}


def exact_spec(size: int, resample: str, mean: tuple[float, ...], std: tuple[float, ...]) -> PreprocessSpec:
    """Resize to ``size`` x ``size``, rescale by 1/255, normalize."""
    return PreprocessSpec(resize_mode="exact", size=(size, size), resample=resample, rescale_factor=1 / 255,
                          mean=mean, std=std)


def deit_spec(crop: int) -> PreprocessSpec:
    """DeiTImageProcessor: resize to (crop*256/224)^2 bicubic, center crop, ImageNet statistics."""
    return PreprocessSpec(resize_mode="exact", size=(crop * 256 // 224,) * 2, resample="bicubic",
                          crop_size=(crop, crop), rescale_factor=1 / 255, mean=IMAGENET_MEAN, std=IMAGENET_STD)


def dinov2_spec(crop: int) -> PreprocessSpec:
    """BitImageProcessor as DINOv2 uses it: shortest edge crop*256/224 bicubic, center crop, ImageNet statistics."""
    return PreprocessSpec(resize_mode="shortest_edge", size=None, shortest_edge=crop * 256 // 224,
                          resample="bicubic", crop_size=(crop, crop), rescale_factor=1 / 255,
                          mean=IMAGENET_MEAN, std=IMAGENET_STD)


def mobilevit_spec(crop: int) -> PreprocessSpec:
    """MobileViTImageProcessor: shortest edge crop+32 bilinear, center crop, 1/255, RGB to BGR, never normalized."""
    return PreprocessSpec(resize_mode="shortest_edge", size=None, shortest_edge=crop + 32, resample="bilinear",
                          crop_size=(crop, crop), rescale_factor=1 / 255, mean=None, std=None, channel_order="BGR")


@dataclass(frozen=True)
class FamilyProcessor:
    """A family's image processor: its transformers class and its defaults at an input size."""

    processor_type: str
    defaults: Callable[[int], PreprocessSpec]


FAMILY_PROCESSORS: dict[str, FamilyProcessor] = {
    "vit": FamilyProcessor(_VIT, lambda size: exact_spec(size, "bilinear", HALF, HALF)),
    "deit": FamilyProcessor("DeiTImageProcessor", deit_spec),
    "beit": FamilyProcessor("BeitImageProcessor", lambda size: exact_spec(size, "bilinear", HALF, HALF)),
    "dinov2": FamilyProcessor(_BIT, dinov2_spec),
    "swin": FamilyProcessor(_VIT, lambda size: exact_spec(size, "bicubic", IMAGENET_MEAN, IMAGENET_STD)),
    "swinv2": FamilyProcessor(_VIT, lambda size: exact_spec(size, "bicubic", IMAGENET_MEAN, IMAGENET_STD)),
    "mobilevit": FamilyProcessor(_MOBILEVIT, mobilevit_spec),
    "mobilevitv2": FamilyProcessor(_MOBILEVIT, mobilevit_spec),
}


def family_spec(model_type: str | None, image_size: int) -> PreprocessSpec:
    """The preprocessing of ``model_type``'s image processor for inputs of ``image_size`` (ViT's for others)."""
    return FAMILY_PROCESSORS.get(model_type or "vit", FAMILY_PROCESSORS["vit"]).defaults(image_size)


def _processor_type(spec: PreprocessSpec, model_type: str | None) -> str:
    """The family's processor class, unless it cannot express ``spec``: a BGR flip needs MobileViT's
    processor (which never normalizes), a normalized spec cannot use it, anything else fits BiT's."""
    chosen = FAMILY_PROCESSORS[model_type].processor_type if model_type in FAMILY_PROCESSORS else _VIT
    normalized = spec.mean is not None and spec.std is not None
    if spec.channel_order == "BGR":
        if normalized:
            raise ValueError("no Hugging Face image processor both normalizes and flips RGB to BGR")
        return _MOBILEVIT
    if chosen == _MOBILEVIT and normalized:
        return _BIT
    if chosen == _VIT and (spec.crop_size or spec.resize_mode == "shortest_edge"):
        return _BIT  # ViTImageProcessor has no center crop
    return chosen


def processor_config(spec: PreprocessSpec, model_type: str | None = None) -> dict[str, Any]:
    """A ``preprocessor_config.json`` for ``model_type``'s processor that reproduces ``spec``.

    Args:
        spec: An NCHW spec without normalization in the model (what training reads).
        model_type: The model's family (``config.model_type``); None or unknown: ViT's processor.

    Returns:
        The file's contents; transformers' processor loaded from it gives ``spec``'s tensors.

    Raises:
        ValueError: ``spec`` normalizes and flips to BGR, which no transformers processor does.
    """
    kind = _processor_type(spec, model_type)
    config: dict[str, Any] = {"image_processor_type": kind, "do_resize": spec.resize_mode != "none",
                              "resample": _PIL_RESAMPLE[spec.resample]}
    if spec.resize_mode == "exact":
        config["size"] = {"height": spec.size[0], "width": spec.size[1]}
    elif spec.resize_mode == "shortest_edge":
        config["size"] = {"shortest_edge": spec.shortest_edge}
    config["do_center_crop"] = spec.crop_size is not None
    if spec.crop_size:
        config["crop_size"] = {"height": spec.crop_size[0], "width": spec.crop_size[1]}
    config.update(do_rescale=spec.rescale_factor is not None, rescale_factor=spec.rescale_factor or 1 / 255)
    if kind == _MOBILEVIT:
        config["do_flip_channel_order"] = spec.channel_order == "BGR"
    else:
        config.update(do_normalize=spec.mean is not None, image_mean=list(spec.mean or (0.0,) * 3),
                      image_std=list(spec.std or (1.0,) * 3))
    return config
