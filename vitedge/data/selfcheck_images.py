"""The images an artifact's self-check carries: a few built-in shapes images and the odd cases. Torch free.

Each is encoded the way users' files come (PNG, JPEG) and chosen so that the self-check covers the
preprocessing paths a port can get wrong: RGB and JPEG decoding, grayscale (mode L), an alpha channel
that is dropped, not composited (RGBA), a palette (mode P), and a wide odd-sized image (aspect ratio,
shortest-edge rounding, crop padding). Small (48 to 96 pixels) so the whole self-check stays a few
hundred KB even for 384 x 384 models: the resize to the model's size is part of what is checked.
Deterministic: the same bytes on every machine and every run.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image

from vitedge.data.shapes import ShapesConfig, shapes_class_names, shapes_samples
from vitedge.runtime.selfcheck_files import EncodedImage

SELFCHECK_SHAPES = ShapesConfig(min_size=48, max_size=96)
"""The shapes dataset as the quickstart trains on it, in small images (test split: never trained on)."""


def _rgb(image: Image.Image) -> Image.Image:
    return image


def _gray(image: Image.Image) -> Image.Image:
    return image.convert("L")


def _alpha_ramp(image: Image.Image) -> Image.Image:
    rgba = image.convert("RGBA")
    ramp = np.tile(np.linspace(0, 255, rgba.width).astype(np.uint8), (rgba.height, 1))  # 0: transparent, colour kept
    rgba.putalpha(Image.fromarray(ramp, "L"))
    return rgba


def _palette(image: Image.Image) -> Image.Image:
    return image.quantize(colors=64, dither=Image.Dither.NONE)


def _wide_strip(image: Image.Image) -> Image.Image:
    top = image.height // 3
    return image.crop((0, top, image.width, top + 13)).resize((image.width + 57, 13), Image.Resampling.BILINEAR)


#: (class index, derive, encoding, what it covers)
_CASES: tuple[tuple[int, Callable[[Image.Image], Image.Image], str, str], ...] = (
    (0, _rgb, "PNG", "RGB PNG"),
    (1, _rgb, "PNG", "RGB PNG"),
    (2, _rgb, "JPEG", "RGB JPEG (4:4:4, quality 92)"),
    (3, _gray, "PNG", "grayscale PNG (mode L)"),
    (4, _alpha_ramp, "PNG", "RGBA PNG with an alpha ramp (alpha dropped, not composited)"),
    (5, _palette, "PNG", "palette PNG (mode P, 64 colours)"),
    (6, _wide_strip, "PNG", "wide odd-sized RGB PNG (about 8:1)"),
)


def _encode(image: Image.Image, encoding: str) -> bytes:
    buffer = io.BytesIO()
    if encoding == "JPEG":
        image.save(buffer, format="JPEG", quality=92, subsampling=0)
    else:
        image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def selfcheck_images() -> list[EncodedImage]:
    """The self-check's inputs, encoded; the same bytes every time."""
    names = shapes_class_names(SELFCHECK_SHAPES)
    samples = shapes_samples("test", 1, SELFCHECK_SHAPES)
    images = []
    for position, (class_index, derive, encoding, what) in enumerate(_CASES):
        image = derive(samples[class_index][0])
        name = f"{position}_{names[class_index]}_{derive.__name__.strip('_')}".lower().replace("-", "_")
        images.append(EncodedImage(name=name, what=f"{what}, {image.width}x{image.height}, a shapes '{names[class_index]}'",
                                   data=_encode(image, encoding), encoded_as=encoding))
    return images
