"""Typed stage results shared by every exporter: what goes in (options) and what comes out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vitedge.errors import UsageError
from vitedge.runtime.manifest import InputSpec, OutputsSpec

EXPORTERS = ("torchscript", "dynamo")
ATTENTION_KERNELS = ("eager", "sdpa")


@dataclass(frozen=True)
class ExportOptions:
    """Options of one export. Formats ignore what does not apply to them.

    Attributes:
        precision: A name from :data:`vitedge.formats.PRECISIONS` the format supports.
        opset: ONNX opset (ONNX only).
        exporter: ``torchscript`` or ``dynamo`` (ONNX only; chosen by measurement, see onnx_export).
        attention: attention kernel traced into the graph: ``eager`` or ``sdpa``.
    """

    precision: str = "fp32"
    opset: int = 17
    exporter: str = "torchscript"
    attention: str = "eager"

    def __post_init__(self) -> None:
        if self.exporter not in EXPORTERS:
            raise UsageError(f"unknown exporter {self.exporter!r}", hint=f"choose one of: {', '.join(EXPORTERS)}")
        if self.attention not in ATTENTION_KERNELS:
            raise UsageError(
                f"unknown attention kernel {self.attention!r}", hint=f"choose one of: {', '.join(ATTENTION_KERNELS)}"
            )


@dataclass(frozen=True)
class ExportedModel:
    """What an exporter wrote into the work folder, described for the manifest."""

    files: tuple[str, ...]
    input: InputSpec
    outputs: OutputsSpec
    recipe: dict[str, Any] = field(default_factory=dict)
    tools: dict[str, str] = field(default_factory=dict)
