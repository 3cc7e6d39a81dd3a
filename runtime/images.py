"""Read images into RGB, as Hugging Face's ``load_image`` does, and fail with clear errors. Torch free.

:func:`load_rgb` takes a path, encoded bytes, a PIL image or a numpy array and returns a fully
loaded RGB PIL image. For ordinary images it matches ``transformers.image_utils.load_image``: the
EXIF orientation is applied (``ImageOps.exif_transpose``), then ``convert("RGB")``, so alpha is
dropped (not composited) exactly as Hugging Face's pipelines see it. Multi-frame files (GIF, TIFF)
give their first frame; a PIL image passed in gives its current frame.

Where Pillow's ``convert("RGB")`` would clip instead of scale, the conversion is ours:

- 16-bit (``I;16``, ``I;16L``, ``I;16B``, ``I;16N`` modes and ``uint16`` arrays): ``round(v / 257)``,
  the exact inverse of the usual 8-to-16-bit expansion ``v * 257`` (so 8-bit data stored as
  16 bits comes back unchanged, and 65535 maps to 255).
- ``I`` (32-bit int): values within 0..65535 are read as 16-bit (as above); other ranges are
  stretched linearly from their min..max to 0..255.
- ``F`` (32-bit float) and float arrays: values in [0, 1] become ``round(v * 255)``; ``F`` images
  outside [0, 1] are stretched from min..max to 0..255 (float arrays outside [0, 1] are refused).
- ``bool`` arrays: True is 255.

Every failure is an :class:`~vitedge.errors.ImageLoadError` naming the image (see :func:`describe`).
"""

from __future__ import annotations

import io
import math
import os
import re
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from vitedge.errors import ImageLoadError, UsageError

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)
"""Lowercase suffixes of the files a folder expands to (see :func:`expand_image_paths`)."""

DEFAULT_MAX_PIXELS = 150_000_000
"""Largest width * height :func:`load_rgb` decodes unless told otherwise (a decompression bomb guard)."""

_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
_BOMB_HINT = "raise the limit with --max-pixels (Python: max_pixels=...) if you trust this file"
_FORMATS_HINT = (
    "vitedge reads JPEG, PNG, BMP, GIF, TIFF, WebP and PPM/PGM/PBM, and whatever else Pillow reads"
)
_CORRUPT_HINT = "the file may be incomplete or damaged; re-download or re-export it"


class _BadPixels(ValueError):
    """Decoded pixel values that have no sensible 8-bit reading."""


def describe(source: Any) -> str:
    """The name of an image in results and error messages.

    Args:
        source: Anything :func:`load_rgb` accepts.

    Returns:
        The path exactly as given for a str or path-like; a PIL image's ``filename`` when it has one,
        else ``<PIL image 640x480 RGB>``; ``<array 480x640x3 uint8>`` for an array;
        ``<bytes: N>`` for encoded bytes.
    """
    if isinstance(source, str):
        return source
    if isinstance(source, os.PathLike):
        return os.fsdecode(source)
    if isinstance(source, Image.Image):
        filename = getattr(source, "filename", None)
        if filename:
            return os.fsdecode(filename)
        return f"<PIL image {source.width}x{source.height} {source.mode}>"
    if isinstance(source, np.ndarray):
        return f"<array {'x'.join(str(n) for n in source.shape)} {source.dtype}>"
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<bytes: {memoryview(source).nbytes}>"
    return f"<{type(source).__name__}>"


def load_rgb(source: Any, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Load one image as a fully decoded RGB PIL image.

    Args:
        source: A path (str or path-like), encoded image bytes, a PIL image, or a numpy array
            (HxW, HxWx1, HxWx3 or HxWx4, channels last; uint8, uint16, bool, or float in [0, 1]).
        max_pixels: Refuse files whose header says width * height is larger than this, before
            decoding them. Pillow's own global limit is raised to allow it when needed.

    Returns:
        A new RGB image, upright (EXIF orientation applied); the input is never modified.

    Raises:
        ImageLoadError: The image is missing, unreadable, truncated, too large, or of an
            unsupported type; the message names it (see :func:`describe`) and says why.
        UsageError: ``max_pixels`` is not a positive integer.
    """
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels <= 0:
        raise UsageError(f"max_pixels must be a positive integer, got {max_pixels!r}")
    name = describe(source)
    if isinstance(source, (str, os.PathLike)):
        with _open_file(source, name) as fp:
            return _decode(fp, name, max_pixels)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if not memoryview(source).nbytes:
            raise ImageLoadError(name, "empty (0 bytes)", hint="pass the encoded image file's contents")
        return _decode(io.BytesIO(source), name, max_pixels)
    if isinstance(source, Image.Image):
        if isinstance(source, ImageFile.ImageFile):
            _check_pixels(source.size, name, max_pixels)
        return _guarded(name, max_pixels, lambda: _upright_rgb(source))
    if isinstance(source, np.ndarray):
        return _array_to_rgb(source, name)
    raise ImageLoadError(
        name,
        f"unsupported input type {type(source).__name__}",
        hint="pass a file path, encoded bytes, a PIL image or a numpy array",
    )


def expand_image_paths(inputs: Iterable[str | os.PathLike[str]], *, recursive: bool = True) -> list[str]:
    """Expand folders to the image files inside them, keeping everything else as given.

    Args:
        inputs: Paths of files or folders. A bare string or path counts as one input.
        recursive: Also look in subfolders.

    Returns:
        The inputs in order, each folder replaced by its image files (by :data:`IMAGE_EXTENSIONS`,
        case-insensitive), sorted, skipping hidden files and folders (names starting with ".").
        Files and paths that do not exist are kept as given: they fail later, one by one, when
        loaded.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    paths: list[str] = []
    for item in inputs:
        path = os.fsdecode(item)
        paths.extend(_images_in(path, recursive) if os.path.isdir(path) else [path])
    return paths


# -- files ---------------------------------------------------------------------------------------


def _images_in(folder: str, recursive: bool) -> list[str]:
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [name for name in dirs if not name.startswith(".")] if recursive else []
        found.extend(
            os.path.join(root, name)
            for name in files
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS
        )
    return sorted(found, key=lambda path: Path(os.path.relpath(path, folder)).parts)


def _open_file(path: str | os.PathLike[str], name: str) -> BinaryIO:
    if os.path.isdir(path):
        raise ImageLoadError(
            name,
            "is a directory, not an image file",
            hint="pass the image files inside it (the CLI expands folders)",
        )
    try:
        fp = open(path, "rb")  # noqa: SIM115 - returned to a with statement
    except FileNotFoundError:
        if name.startswith(("http://", "https://")):
            raise ImageLoadError(
                name, "URLs are not downloaded", hint="download the image and pass the file"
            ) from None
        raise ImageLoadError(name, "no such file", hint="check the path") from None
    except PermissionError:
        raise ImageLoadError(name, "permission denied", hint="check the file's permissions") from None
    except OSError as error:
        raise ImageLoadError(name, f"cannot open: {error.strerror or error}") from error
    if os.fstat(fp.fileno()).st_size == 0:
        fp.close()
        raise ImageLoadError(name, "empty file (0 bytes)", hint=_CORRUPT_HINT)
    return fp


# -- decoding ------------------------------------------------------------------------------------


def _decode(fp: BinaryIO, name: str, max_pixels: int) -> Image.Image:
    def decode() -> Image.Image:
        with Image.open(fp) as image:
            _check_pixels(image.size, name, max_pixels)
            return _upright_rgb(image)

    return _guarded(name, max_pixels, decode)


def _guarded(name: str, max_pixels: int, work: Callable[[], Image.Image]) -> Image.Image:
    """Run ``work()`` (Pillow decoding) turning every Pillow failure into an ImageLoadError."""
    _allow_in_pillow(max_pixels)
    try:
        with warnings.catch_warnings():
            # max_pixels is the limit; Pillow's lower warning threshold and its palette
            # transparency note are noise here.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            warnings.filterwarnings(
                "ignore", message="Palette images with Transparency", category=UserWarning
            )
            return work()
    except ImageLoadError:
        raise
    except _BadPixels as error:
        raise ImageLoadError(name, str(error)) from None
    except Image.DecompressionBombError as error:
        found = re.search(r"\((\d+) pixels\)", str(error))  # Pillow says "Image size (N pixels) exceeds ..."
        size = (
            f"{int(found.group(1)):,} pixels" if found else f"more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels"
        )
        raise ImageLoadError(
            name,
            f"image has {size}, over the limit of {max_pixels:,} (a possible decompression bomb)",
            hint=_BOMB_HINT,
        ) from None
    except UnidentifiedImageError:
        raise ImageLoadError(name, "not an image file Pillow can identify", hint=_FORMATS_HINT) from None
    except Exception as error:  # Pillow's decoders raise OSError, SyntaxError, ValueError, struct.error, ...
        reason = " ".join(str(error).split()) or type(error).__name__
        raise ImageLoadError(
            name, f"truncated or corrupt image data ({reason})", hint=_CORRUPT_HINT
        ) from error


def _allow_in_pillow(max_pixels: int) -> None:
    """Raise Pillow's global decompression bomb limit (never lower it) so max_pixels decides."""
    if Image.MAX_IMAGE_PIXELS is not None and max_pixels > 2 * Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = math.ceil(max_pixels / 2)


def _check_pixels(size: tuple[int, int], name: str, max_pixels: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise ImageLoadError(
            name,
            f"image is {width}x{height} = {width * height:,} pixels, over the limit of {max_pixels:,} "
            "(a possible decompression bomb)",
            hint=_BOMB_HINT,
        )


def _upright_rgb(image: Image.Image) -> Image.Image:
    """EXIF orientation applied, converted to RGB; always a new, loaded image.

    A freshly opened multi-frame file is at its first frame; a PIL image passed in keeps its frame.
    """
    upright = ImageOps.exif_transpose(image)
    if upright.mode in _SIXTEEN_BIT_MODES or upright.mode in ("I", "F"):
        return Image.fromarray(_gray_to_uint8(np.asarray(upright), upright.mode)).convert("RGB")
    if upright.mode == "La":  # premultiplied; Pillow converts it to LA but not to RGB
        upright = upright.convert("LA")
    return upright.convert("RGB")


# -- pixel values --------------------------------------------------------------------------------


def _sixteen_to_eight(values: np.ndarray) -> np.ndarray:
    """round(v / 257) for v in 0..65535 (there are no ties)."""
    return ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _stretch(values: np.ndarray) -> np.ndarray:
    """Map min..max linearly onto 0..255 (a constant image becomes 0)."""
    values = values.astype(np.float64)
    low, high = values.min(), values.max()
    scale = 255.0 / (high - low) if high > low else 0.0
    return np.rint((values - low) * scale).astype(np.uint8)


def _gray_to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    if mode in _SIXTEEN_BIT_MODES:
        return _sixteen_to_eight(values)
    if mode == "I":
        return _sixteen_to_eight(values) if values.min() >= 0 and values.max() <= 65535 else _stretch(values)
    if not np.isfinite(values).all():
        raise _BadPixels("32-bit float image has NaN or infinite values")
    if values.min() >= 0 and values.max() <= 1:
        return np.rint(values.astype(np.float64) * 255).astype(np.uint8)
    return _stretch(values)


def _array_to_rgb(array: np.ndarray, name: str) -> Image.Image:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise ImageLoadError(
            name, "unsupported array shape", hint="pass HxW, HxWx1, HxWx3 or HxWx4 (channels last)"
        )
    if array.size == 0:
        raise ImageLoadError(name, "empty array")
    if array.dtype == np.uint8:
        pixels = array
    elif array.dtype == np.bool_:
        pixels = array.astype(np.uint8) * np.uint8(255)
    elif array.dtype == np.uint16:
        pixels = _sixteen_to_eight(array)
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise ImageLoadError(
                name,
                "float pixel values must be finite and in [0, 1]",
                hint="scale the array to [0, 1] or uint8",
            )
        pixels = np.rint(array.astype(np.float64) * 255).astype(np.uint8)
    else:
        raise ImageLoadError(
            name,
            f"unsupported array dtype {array.dtype}",
            hint="pass uint8, uint16, bool, or float in [0, 1]",
        )
    return Image.fromarray(np.ascontiguousarray(pixels)).convert("RGB")
