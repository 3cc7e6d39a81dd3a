"""Typed stage results shared by every exporter: what goes in (options) and what comes out.

Also the one home of the conversion defaults the CLI, :func:`~vitedge.converters.convert`, calibration
and validation share (the option choices, the calibration and validation sample counts). Torch free:
the CLI reads it to build its parser.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from vitedge.converters.token_merging_option import AUTO, parse_token_merging
from vitedge.errors import UsageError
from vitedge.runtime.manifest import InputSpec, OutputsSpec
from vitedge.runtime.preprocess_spec import PreprocessSpec

EXPORTERS = ("torchscript", "dynamo")
GRAPHS = ("optimized", "plain")
ATTENTION_KERNELS = ("eager", "sdpa")
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
INPUT_LAYOUTS = ("NCHW", "NHWC")
INPUT_TYPES = ("float", "uint8", "image")
#: Held-out inputs a fresh artifact is validated on (convert, verify and the CLI read this one number).
DEFAULT_VALIDATION_SAMPLES = 32
#: Calibration images of static quantization (ExportOptions, load_calibration and the CLI read this one number).
DEFAULT_CALIBRATION_SAMPLES = 64


@dataclass(frozen=True)
class ExportOptions:
    """Options of one export; each format declares which ones it accepts (:attr:`Format.options`).

    Attributes:
        precision: A name from :data:`vitedge.formats.PRECISIONS` the format supports.
        opset: ONNX opset.
        exporter: ONNX exporter, ``torchscript`` or ``dynamo`` (chosen by measurement, see onnx_export).
        attention: Attention kernel traced into the graph: ``eager`` or ``sdpa``.
        graph: ONNX graph: ``optimized`` (onnxruntime's fused Attention op where it measured faster:
            fp32 and fp16) or ``plain`` (standard ONNX ops only, any ONNX runtime).
        calibration: Where calibration images come from: ``"builtin"`` or a folder of images.
        calibration_samples: How many calibration images to use.
        calibration_method: How activation ranges are chosen: minmax, entropy or percentile.
        input_layout: The model input's layout: NCHW (default) or NHWC (mobile pipelines).
        input_type: ``float`` (normalized float input), ``uint8`` (raw pixels, normalization baked
            into the model) or ``image`` (a platform image type, e.g. Core ML ImageType).
        target: A deployment target (e.g. Core ML ``iOS17``); None for the format's default.
        max_accuracy_drop: Quantization budget in points of top-1 agreement with fp32; None: no budget.
        keep_float: Layers to leave in float (names as ``vitedge diagnose`` prints them: torch module
            paths such as ``vit.layers.3.mlp.fc1``, globs, or a whole block such as ``vit.layers.3``);
            each format maps them onto its own ops (:mod:`vitedge.converters.layer_names`).
        token_merging: Token merging (ToMe): R tokens merged in every block (0: off, the unmerged graph),
            a tuple with one count per block, or ``"auto"``: the largest R whose top-1 drop against the
            unmerged model stays within ``max_accuracy_drop`` (:mod:`vitedge.converters.token_merging`).
    """

    precision: str = "fp32"
    opset: int = 17
    exporter: str = "torchscript"
    attention: str = "eager"
    graph: str = "optimized"
    calibration: str = "builtin"
    calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES
    calibration_method: str = "percentile"
    input_layout: str = "NCHW"
    input_type: str = "float"
    target: str | None = None
    max_accuracy_drop: float | None = None
    keep_float: tuple[str, ...] = ()
    token_merging: int | tuple[int, ...] | str = 0

    def __post_init__(self) -> None:
        if isinstance(self.keep_float, str) or not all(isinstance(p, str) and p.strip() for p in self.keep_float):
            raise UsageError(f"keep float takes a tuple of layer names, got {self.keep_float!r}",
                             hint="e.g. ('vit.layers.3.mlp.fc1',), as vitedge diagnose prints them")
        object.__setattr__(self, "keep_float", tuple(p.strip() for p in self.keep_float))
        for name, allowed in (
            ("exporter", EXPORTERS),
            ("attention", ATTENTION_KERNELS),
            ("graph", GRAPHS),
            ("calibration_method", CALIBRATION_METHODS),
            ("input_layout", INPUT_LAYOUTS),
            ("input_type", INPUT_TYPES),
        ):
            value = getattr(self, name)
            if value not in allowed:
                raise UsageError(f"unknown {name.replace('_', ' ')} {value!r}", hint=f"choose one of: {', '.join(allowed)}")
        if self.calibration_samples < 1:
            raise UsageError(f"calibration samples must be at least 1, got {self.calibration_samples}")
        if self.max_accuracy_drop is not None and not 0 <= self.max_accuracy_drop <= 100:
            raise UsageError(f"max accuracy drop is in points (0-100), got {self.max_accuracy_drop}")
        object.__setattr__(self, "token_merging", parse_token_merging(self.token_merging))
        if self.token_merging == AUTO and self.max_accuracy_drop is None:
            raise UsageError("--token-merging auto chooses R by an accuracy budget: none was given",
                             hint="add --max-accuracy-drop POINTS (e.g. 1), or pass a number R")

    def changed(self) -> tuple[str, ...]:
        """Names of the options set to something other than their default (precision aside)."""
        return tuple(
            f.name for f in dataclasses.fields(self)
            if f.name != "precision" and getattr(self, f.name) != f.default
        )


@dataclass(frozen=True)
class ExportedModel:
    """What an exporter wrote into the work folder, described for the manifest.

    ``preprocess`` replaces the source model's preprocessing when the export changed it (an NHWC
    input, normalization baked into the model); ``calibration`` describes the calibration set used.
    """

    files: tuple[str, ...]
    input: InputSpec
    outputs: OutputsSpec
    recipe: dict[str, Any] = field(default_factory=dict)
    tools: dict[str, str] = field(default_factory=dict)
    preprocess: PreprocessSpec | None = None
    entry: str | None = None
    calibration: dict[str, Any] | None = None
