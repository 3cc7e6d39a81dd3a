"""Read a Hugging Face image processor into the manifest's :class:`PreprocessSpec` (torch side).

The spec must make :func:`vitedge.runtime.preprocess.preprocess` give what the processor gives, so
anything the runtime cannot reproduce (a ``longest_edge`` or ``max_height`` resize, padding, a
processor with its own pipeline) is refused with a :class:`~vitedge.errors.ConversionError` naming
it, never approximated. Processors are loaded with transformers' PIL backend, the one the runtime
matches bit for bit (the torchvision backend resizes differently).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from PIL import Image

from vitedge.errors import ConversionError, ModelLoadError
from vitedge.runtime.preprocess_spec import RESAMPLE_FILTERS, PreprocessSpec

PROCESSOR_CONFIG = "preprocessor_config.json"

# Processors whose pipeline is resize -> center crop -> rescale -> normalize with transformers'
# standard steps (names without the "Pil"/"Fast" suffix, so transformers 4 and 5 both match).
_STANDARD_PROCESSORS = frozenset(
    {
        "ViTImageProcessor",
        "DeiTImageProcessor",
        "BeitImageProcessor",
        "BitImageProcessor",
        "CLIPImageProcessor",
    }
)
# ConvNeXT (and CvT, ConvNeXt V2, …): resize the shortest edge to size / crop_pct, then crop to size.
_CONVNEXT_PROCESSOR = "ConvNextImageProcessor"
_CONVNEXT_WARP_FROM = 384  # ConvNextImageProcessor warps to size x size from this size up
# MobileViT (and MobileViT V2): resize -> rescale -> center crop -> RGB to BGR, never normalized.
_MOBILEVIT_PROCESSOR = "MobileViTImageProcessor"
_STEP_METHODS = (
    "preprocess",
    "_preprocess_image_like_inputs",
    "_prepare_image_like_inputs",
    "process_image",
    "_preprocess",
    "resize",
    "center_crop",
    "rescale",
    "normalize",
)


def default_spec(image_size: int) -> PreprocessSpec:
    """ViTImageProcessor's defaults at a given resolution.

    Args:
        image_size: Height and width of the model input.

    Returns:
        Exact bilinear resize to ``image_size`` x ``image_size``, rescale by 1/255, mean = std = 0.5.
    """
    return PreprocessSpec(
        resize_mode="exact",
        size=(image_size, image_size),
        resample="bilinear",
        rescale_factor=1 / 255,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
    )


def spec_from_processor(processor: Any) -> PreprocessSpec:
    """The spec that reproduces a transformers image processor instance.

    Args:
        processor: An image processor (e.g. ``ViTImageProcessorPil``, ``DeiTImageProcessor``,
            ``BeitImageProcessorPil``, ``BitImageProcessorPil``, ``ConvNextImageProcessorPil``,
            ``MobileViTImageProcessorPil``).

    Returns:
        The preprocessing spec (RGB, NCHW).

    Raises:
        ConversionError: The processor does something the runtime cannot reproduce; the message
            names the processor and the setting.
    """
    name = _base_name(processor)
    if getattr(processor, "do_pad", None):
        raise _unsupported(processor, "do_pad=True (padding)")
    resample = _resample_name(processor)
    crop_size = _crop_size(processor) if getattr(processor, "do_center_crop", None) else None
    if not getattr(processor, "do_resize", None):
        resize: dict[str, Any] = {"resize_mode": "none", "size": None}
    elif name == _CONVNEXT_PROCESSOR:
        resize, crop_size = _convnext_resize(processor, crop_size)
    elif name in _STANDARD_PROCESSORS or name == _MOBILEVIT_PROCESSOR or _has_standard_steps(processor):
        resize = _resize(processor)
    else:
        raise _unsupported(processor, "its own preprocessing pipeline")
    return PreprocessSpec(
        **resize,
        resample=resample,
        crop_size=crop_size,
        rescale_factor=float(processor.rescale_factor) if getattr(processor, "do_rescale", None) else None,
        **(_mobilevit_color(processor) if name == _MOBILEVIT_PROCESSOR else _normalization(processor)),
    )


def load_spec(folder: str | Path, *, image_size: int) -> tuple[PreprocessSpec, dict[str, Any]]:
    """The preprocessing of a local Hugging Face model folder.

    Args:
        folder: A folder that may hold ``preprocessor_config.json``.
        image_size: The model's input resolution, used for :func:`default_spec` when the folder
            has no ``preprocessor_config.json`` (a processor's own sizes always win: DINOv2, for
            one, is configured at 518 but preprocessed to 224).

    Returns:
        The spec and the file's contents as a dict (for the manifest); ``default_spec(image_size)``
        and ``{}`` when the file is missing.

    Raises:
        ModelLoadError: The file exists but transformers cannot load it.
        ConversionError: The processor cannot be reproduced (see :func:`spec_from_processor`).
    """
    path = Path(folder) / PROCESSOR_CONFIG
    if not path.is_file():
        return default_spec(image_size), {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        with _quiet_transformers():
            from transformers import AutoImageProcessor

            processor = AutoImageProcessor.from_pretrained(str(folder), **_pil_backend())
    except Exception as error:
        raise ModelLoadError(
            f"{path}: cannot load the image processor ({type(error).__name__}: {' '.join(str(error).split())})",
            hint="check that it is a valid preprocessor_config.json (ImageProcessor.save_pretrained writes one)",
        ) from error
    return spec_from_processor(processor), raw


# -- reading the processor's settings --------------------------------------------------------------


def _base_name(processor: Any) -> str:
    name = type(processor).__name__
    for suffix in ("Pil", "Fast"):
        name = name.removesuffix(suffix)
    return name


def _unsupported(processor: Any, what: str) -> ConversionError:
    return ConversionError(
        f"{type(processor).__name__} uses {what}, which vitedge cannot reproduce in the runtime",
        hint="use a processor with an exact (height/width) or shortest_edge resize, or set a "
        "preprocess spec yourself",
    )


def _has_standard_steps(processor: Any) -> bool:
    """True when a transformers 5 processor class keeps its backend's resize/crop/rescale/normalize."""
    try:
        from transformers.image_processing_backends import PilBackend, TorchvisionBackend
    except ImportError:  # transformers 4: only the known processors are trusted
        return False
    cls = type(processor)
    backend = next((base for base in (PilBackend, TorchvisionBackend) if issubclass(cls, base)), None)
    return backend is not None and all(
        getattr(cls, method, None) is getattr(backend, method, None) for method in _STEP_METHODS
    )


def _size_dict(processor: Any, attribute: str) -> dict[str, int]:
    value = getattr(processor, attribute, None)
    if isinstance(value, dict):
        return {key: val for key, val in value.items() if val is not None}
    try:
        return dict(value)  # transformers 5 SizeDict iterates its set (key, value) pairs
    except (TypeError, ValueError):
        raise _unsupported(processor, f"{attribute}={value!r}") from None


def _height_width(processor: Any, attribute: str) -> tuple[int, int]:
    size = _size_dict(processor, attribute)
    if set(size) != {"height", "width"}:
        raise _unsupported(processor, f"{attribute}={size}")
    return int(size["height"]), int(size["width"])


def _resize(processor: Any) -> dict[str, Any]:
    size = _size_dict(processor, "size")
    if set(size) == {"height", "width"}:
        return {"resize_mode": "exact", "size": (int(size["height"]), int(size["width"]))}
    if set(size) == {"shortest_edge"}:
        return {"resize_mode": "shortest_edge", "size": None, "shortest_edge": int(size["shortest_edge"])}
    raise _unsupported(processor, f"size={size}")


def _crop_size(processor: Any) -> tuple[int, int]:
    return _height_width(processor, "crop_size")


def _convnext_resize(
    processor: Any, crop_size: tuple[int, int] | None
) -> tuple[dict[str, Any], tuple[int, int]]:
    size = _size_dict(processor, "size")
    if set(size) != {"shortest_edge"}:
        raise _unsupported(processor, f"size={size}")
    if crop_size is not None:
        raise _unsupported(processor, "do_center_crop=True on top of its crop_pct crop")
    edge = int(size["shortest_edge"])
    if edge >= _CONVNEXT_WARP_FROM:
        return {"resize_mode": "exact", "size": (edge, edge)}, None
    crop_pct = float(processor.crop_pct)
    return {"resize_mode": "shortest_edge", "size": None, "shortest_edge": int(edge / crop_pct)}, (edge, edge)


def _resample_name(processor: Any) -> str:
    value = getattr(processor, "resample", None)
    if value is None:
        return "bilinear"  # what transformers' PIL backend uses when unset
    name = getattr(value, "value", value)  # torchvision's InterpolationMode values are names
    if isinstance(name, str) and name.lower() in RESAMPLE_FILTERS:
        return name.lower()
    try:
        return Image.Resampling(int(value)).name.lower()
    except (TypeError, ValueError):
        raise _unsupported(processor, f"resample={value!r}") from None


def _normalization(processor: Any) -> dict[str, tuple[float, float, float] | None]:
    if not getattr(processor, "do_normalize", None):
        return {"mean": None, "std": None}
    values = {}
    for key, attribute in (("mean", "image_mean"), ("std", "image_std")):
        value = getattr(processor, attribute)
        channels = [float(value)] * 3 if isinstance(value, (int, float)) else [float(v) for v in value]
        if len(channels) != 3:
            raise _unsupported(processor, f"{attribute}={value!r} (not 3 channels)")
        values[key] = tuple(channels)
    return values


def _mobilevit_color(processor: Any) -> dict[str, Any]:
    """MobileViT's processor ignores ``do_normalize`` and flips RGB to BGR when asked."""
    flip = getattr(processor, "do_flip_channel_order", True)
    return {"mean": None, "std": None, "channel_order": "BGR" if flip else "RGB"}


# -- loading ---------------------------------------------------------------------------------------


def _pil_backend() -> dict[str, Any]:
    """from_pretrained arguments that pick the PIL backend (transformers 5) / slow processor (4)."""
    import transformers

    major = int(transformers.__version__.split(".")[0])
    return {"backend": "pil"} if major >= 5 else {"use_fast": False}


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' logging (e.g. its torchvision fallback notice) and Python warnings."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        hf_logging.set_verbosity(verbosity)
