"""Turn RGB PIL images into model input tensors, exactly as the manifest's spec says. Torch free.

The steps and their arithmetic mirror transformers' PIL-backend image processors (``PilBackend``:
ViT, DeiT, BEiT, BiT/DINOv2, CLIP, …), so the result equals ``processor(image)["pixel_values"]``
bit for bit when given the same RGB image:

1. resize with Pillow (``Image.resize``, no ``reducing_gap``): to ``size``, or the shorter side to
   ``shortest_edge`` and the longer to ``int(shortest_edge * long / short)``;
2. center crop on the uint8 pixels: ``top = (height - crop_height) // 2``, and where the crop is
   larger than the image, zero padding with ``ceil(missing / 2)`` rows/columns before;
3. rescale in float64 (``pixels * rescale_factor``) cast to float32, then normalize in float32
   (``(x - mean) / std``). As the pixels are uint8, step 3 runs as a per-channel lookup table.

Mean and std are in RGB order; ``channel_order="BGR"`` reverses the channels after normalizing.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from PIL import Image

from vitedge.errors import UsageError
from vitedge.runtime.preprocess_spec import PreprocessSpec

_PIL_FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}


def resized_size(width: int, height: int, spec: PreprocessSpec) -> tuple[int, int]:
    """(width, height) of an image after the spec's resize step, with transformers' rounding.

    Args:
        width: Width of the input image.
        height: Height of the input image.
        spec: The preprocessing spec.

    Returns:
        The (width, height) Pillow resizes to (the input size for ``resize_mode="none"``).
    """
    if spec.resize_mode == "exact":
        out_h, out_w = spec.size
        return out_w, out_h
    if spec.resize_mode == "shortest_edge":
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = spec.shortest_edge, int(spec.shortest_edge * long / short)
        return (new_short, new_long) if width <= height else (new_long, new_short)
    return width, height


def _crop_window(length: int, crop: int) -> tuple[int, int, int]:
    """(pad_before, start, stop) along one axis, as transformers' numpy ``center_crop``."""
    if crop <= length:
        start = (length - crop) // 2
        return 0, start, start + crop
    return -(-(crop - length) // 2), 0, crop


def _center_crop(pixels: np.ndarray, crop_h: int, crop_w: int) -> np.ndarray:
    """Center crop an HWC array, zero padding where the crop is larger than the image."""
    height, width = pixels.shape[:2]
    pad_top, top, bottom = _crop_window(height, crop_h)
    pad_left, left, right = _crop_window(width, crop_w)
    if crop_h <= height and crop_w <= width:
        return pixels[top:bottom, left:right]
    canvas = np.zeros((max(crop_h, height), max(crop_w, width), pixels.shape[2]), dtype=pixels.dtype)
    canvas[pad_top : pad_top + height, pad_left : pad_left + width] = pixels
    return canvas[top:bottom, left:right]


@lru_cache(maxsize=32)
def _value_table(
    rescale_factor: float | None, mean: tuple[float, ...] | None, std: tuple[float, ...] | None
) -> np.ndarray:
    """(256, 3) float32: what each uint8 value of each channel becomes after rescale + normalize."""
    values = np.arange(256, dtype=np.float64)[:, None].repeat(3, axis=1)
    if rescale_factor is not None:
        table = (values * rescale_factor).astype(np.float32)
    else:
        table = values.astype(np.float32)
    if mean is not None and std is not None:
        table = (table - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    table.setflags(write=False)
    return table


def preprocess(image: Image.Image, spec: PreprocessSpec) -> np.ndarray:
    """One image to one input tensor (no batch dimension).

    Args:
        image: A PIL image; converted to RGB first when it is not (load files with
            :func:`vitedge.runtime.images.load_rgb`, which matches Hugging Face's ``load_image``).
        spec: The manifest's preprocessing spec.

    Returns:
        float32 array, (3, H, W) for ``layout="NCHW"`` or (H, W, 3) for ``"NHWC"``. With
        ``normalization_in_model`` the values are the resized, cropped 0..255 pixels.
    """
    if image.mode != "RGB":
        image = image.convert("RGB")
    target = resized_size(image.width, image.height, spec)
    if target != image.size:
        image = image.resize(target, resample=_PIL_FILTERS[spec.resample])
    pixels = np.asarray(image)
    if spec.crop_size:
        pixels = _center_crop(pixels, *spec.crop_size)
    if spec.normalization_in_model:
        table = _value_table(None, None, None)
    else:
        table = _value_table(spec.rescale_factor, spec.mean, spec.std)
    tensor = table[pixels, np.arange(3)]  # (H, W, 3) float32
    if spec.channel_order == "BGR":
        tensor = tensor[..., ::-1]
    if spec.layout == "NCHW":
        tensor = tensor.transpose(2, 0, 1)
    return np.ascontiguousarray(tensor)


def preprocess_batch(images: Sequence[Image.Image], spec: PreprocessSpec) -> np.ndarray:
    """Preprocess images and stack them into one batch tensor (N, …).

    Args:
        images: PIL images (see :func:`preprocess`).
        spec: The manifest's preprocessing spec.

    Returns:
        float32 array of shape (N, 3, H, W) or (N, H, W, 3).

    Raises:
        UsageError: The images end at different sizes (a spec without an exact resize or a
            center crop keeps the aspect ratio), or there are none and the size is not fixed.
    """
    tensors = [preprocess(image, spec) for image in images]
    if not tensors and spec.output_size:
        height, width = spec.output_size
        return np.zeros((0, 3, height, width) if spec.layout == "NCHW" else (0, height, width, 3), np.float32)
    if not tensors:
        raise UsageError("preprocess_batch got no images and the spec has no fixed output size")
    shapes = sorted({tensor.shape for tensor in tensors})
    if len(shapes) > 1:
        raise UsageError(
            f"images have different sizes after preprocessing ({', '.join(map(str, shapes))})",
            hint="batch them one by one, or use a spec with an exact resize or a center crop",
        )
    return np.stack(tensors)
