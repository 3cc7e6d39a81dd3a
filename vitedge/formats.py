"""The registries of formats and precisions: the one table everything else reads.

The CLI's ``--to`` and ``--precision`` choices, ``vitedge formats``, the README table and the
parametrized tests all come from :data:`FORMATS` and :data:`PRECISIONS`. Adding a format is adding
one row here plus its exporter module (``vitedge.converters``) and its backend module
(``vitedge.runtime.backends``), both named by dotted path so this module stays import-light.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

from vitedge.errors import UsageError, did_you_mean


@dataclass(frozen=True)
class Precision:
    """A numeric precision or quantization recipe, independent of the format."""

    name: str
    description: str
    needs_calibration: bool = False


@dataclass(frozen=True)
class Tolerance:
    """How close an artifact must be to the torch fp32 reference to pass validation.

    ``None`` disables a check. Cosines and agreement are minima over/means across the samples;
    ``max_abs_diff`` is relative to the largest reference logit magnitude (at least 1).
    """

    min_logits_cosine: float | None = None
    min_embedding_cosine: float | None = None
    min_top1_agreement: float | None = None
    max_abs_diff: float | None = None


@dataclass(frozen=True)
class PrecisionSupport:
    """One precision as a given format implements it."""

    precision: str
    tolerance: Tolerance
    note: str = ""


@dataclass(frozen=True)
class Format:
    """An artifact format: how it is produced, what runs it, which precisions it supports."""

    name: str
    title: str
    model_file: str
    exporter: str  # "module:callable" in the converters (torch side)
    backend: str  # "module:class" in the runtime (torch free)
    backend_modules: tuple[str, ...]  # importable modules, any of which makes the backend usable
    install_extra: str
    precisions: tuple[PrecisionSupport, ...]
    platforms: str = "any"
    notes: str = ""
    options: tuple[str, ...] = field(default_factory=tuple)

    @property
    def precision_names(self) -> tuple[str, ...]:
        return tuple(p.precision for p in self.precisions)

    def support(self, precision: str) -> PrecisionSupport:
        """The format's implementation of ``precision``, or a UsageError naming the valid ones."""
        for entry in self.precisions:
            if entry.precision == precision:
                return entry
        known = ", ".join(self.precision_names)
        if precision in PRECISIONS:
            raise UsageError(
                f"format {self.name!r} does not support precision {precision!r}",
                hint=f"choose one of: {known}",
            )
        raise UsageError(
            f"unknown precision {precision!r}{did_you_mean(precision, PRECISIONS)}",
            hint=f"format {self.name!r} supports: {known}",
        )

    def backend_installed(self) -> bool:
        """Whether one of the modules the runtime backend needs can be imported here."""
        return any(importlib.util.find_spec(module) is not None for module in self.backend_modules)


PRECISIONS: dict[str, Precision] = {
    p.name: p
    for p in (
        Precision("fp32", "32-bit float weights and activations: the reference"),
        Precision("fp16", "16-bit float weights (half the size); for GPU/NPU targets and size"),
        Precision("int8-dynamic", "int8 weights, activations quantized on the fly"),
        Precision("int8-static", "int8 weights and activations, ranges from calibration images", True),
        Precision("int4-weight", "4-bit weights, float activations"),
    )
}

#: fp32 exports must reproduce torch to float rounding.
FP32_TOLERANCE = Tolerance(
    min_logits_cosine=0.9999,
    min_embedding_cosine=0.9999,
    max_abs_diff=1e-3,
)

FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format(
            name="onnx",
            title="ONNX",
            model_file="model.onnx",
            exporter="vitedge.converters.onnx_export:export_onnx",
            backend="vitedge.runtime.backends.onnx:OnnxBackend",
            backend_modules=("onnxruntime",),
            install_extra="onnx",
            precisions=(PrecisionSupport("fp32", FP32_TOLERANCE, "graph with dynamic batch, opset 17"),),
            notes="onnxruntime on Linux, macOS, Windows, Raspberry Pi (arm64), Android",
            options=("opset", "exporter", "attention"),
        ),
    )
}


def get_format(name: str) -> Format:
    """Look a format up by name; a UsageError lists the valid names and the closest match."""
    try:
        return FORMATS[name.strip().lower()]
    except KeyError:
        raise UsageError(
            f"unknown format {name!r}{did_you_mean(name, FORMATS)}",
            hint=f"choose one of: {', '.join(FORMATS)}",
        ) from None


def get_precision(name: str) -> Precision:
    """Look a precision up by name, with a close-match suggestion on a typo."""
    try:
        return PRECISIONS[name]
    except KeyError:
        raise UsageError(
            f"unknown precision {name!r}{did_you_mean(name, PRECISIONS)}",
            hint=f"choose one of: {', '.join(PRECISIONS)}",
        ) from None


def load_entry_point(dotted: str):
    """Import ``"package.module:attribute"`` and return the attribute."""
    module_name, _, attribute = dotted.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attribute)
