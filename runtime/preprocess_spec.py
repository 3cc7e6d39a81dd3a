"""What turns an image into the model's input tensor: the ``preprocess`` block of the manifest.

It reproduces the source model's Hugging Face image processor (ViTImageProcessor, DeiT, BEiT, …):
resize (to an exact size, or the shortest edge to a length keeping the aspect ratio), optional
center crop, rescale, normalize, channel order and layout. Torch free.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from vitedge.errors import ArtifactError

RESAMPLE_FILTERS = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")
LAYOUTS = ("NCHW", "NHWC")


@dataclass(frozen=True)
class PreprocessSpec:
    """How an RGB image becomes one input tensor.

    Attributes:
        resize_mode: ``"exact"`` resizes to ``size`` (height, width); ``"shortest_edge"`` resizes
            the shorter side to ``shortest_edge`` keeping the aspect ratio (the longer side is
            ``int(shortest_edge * long / short)``, as transformers computes it); ``"none"`` keeps it.
        size: (height, width) for ``"exact"``.
        shortest_edge: target length of the shorter side for ``"shortest_edge"``.
        resample: PIL filter name, one of :data:`RESAMPLE_FILTERS`.
        crop_size: (height, width) of a center crop after the resize, or None.
        rescale_factor: multiplies uint8 pixel values (1/255 for [0, 1]); None skips it.
        mean, std: per-channel normalization after rescaling; None skips it.
        channel_order: ``"RGB"`` or ``"BGR"``.
        layout: ``"NCHW"`` or ``"NHWC"`` of the model input.
        normalization_in_model: when True the model takes raw uint8-range pixels and does
            rescale/normalize itself; the runtime then only resizes and crops.
    """

    resize_mode: str = "exact"
    size: tuple[int, int] | None = (224, 224)
    shortest_edge: int | None = None
    resample: str = "bilinear"
    crop_size: tuple[int, int] | None = None
    rescale_factor: float | None = 1 / 255
    mean: tuple[float, float, float] | None = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] | None = (0.5, 0.5, 0.5)
    channel_order: str = "RGB"
    layout: str = "NCHW"
    normalization_in_model: bool = False

    def __post_init__(self) -> None:
        problems = []
        if self.resize_mode not in ("exact", "shortest_edge", "none"):
            problems.append(f"resize_mode {self.resize_mode!r} is not exact|shortest_edge|none")
        if self.resize_mode == "exact" and not self.size:
            problems.append("resize_mode 'exact' needs size")
        if self.resize_mode == "shortest_edge" and not self.shortest_edge:
            problems.append("resize_mode 'shortest_edge' needs shortest_edge")
        if self.resample not in RESAMPLE_FILTERS:
            problems.append(f"resample {self.resample!r} is not one of {', '.join(RESAMPLE_FILTERS)}")
        if self.layout not in LAYOUTS:
            problems.append(f"layout {self.layout!r} is not NCHW or NHWC")
        if self.channel_order not in ("RGB", "BGR"):
            problems.append(f"channel_order {self.channel_order!r} is not RGB or BGR")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is not None and len(value) != 3:
                problems.append(f"{name} needs 3 values, got {len(value)}")
        if self.std is not None and any(s == 0 for s in self.std):
            problems.append("std has a zero")
        if problems:
            raise ArtifactError("invalid preprocess spec: " + "; ".join(problems))

    @property
    def output_size(self) -> tuple[int, int] | None:
        """(height, width) of the tensor this spec produces, when it is fixed."""
        if self.crop_size:
            return self.crop_size
        if self.resize_mode == "exact":
            return self.size
        return None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PreprocessSpec:
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ArtifactError(f"preprocess block has unknown keys: {', '.join(sorted(unknown))}")
        values = dict(data)
        for key in ("size", "crop_size", "mean", "std"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        return cls(**values)
