"""The stages after export that every route to an artifact shares: describe it, validate it into its manifest.

``vitedge.converters.pipeline.convert`` and the QAT export (``vitedge.converters.training.qat_export``)
both export into an atomic work folder, then call :func:`describe` and :func:`validate_into_manifest`,
judged with :func:`tolerance_for`; a refused reduced precision says what to do (:func:`validation_hint`).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from vitedge._version import __version__
from vitedge.converters.export_types import ExportedModel
from vitedge.converters.loading import SourceModel
from vitedge.converters.selfcheck import write_selfcheck_into
from vitedge.converters.validate import validator_for
from vitedge.errors import ValidationFailedError
from vitedge.formats import Format, PrecisionSupport, Tolerance
from vitedge.runtime.manifest import ConversionInfo, FileEntry, Manifest, ValidationReport


@dataclass(frozen=True)
class ConversionResult:
    """A finished artifact: where it is, its manifest, and its validation against torch fp32."""

    path: Path
    manifest: Manifest

    @property
    def validation(self) -> ValidationReport | None:
        return self.manifest.validation


def warn_if_failed(result: ConversionResult) -> None:
    report = result.validation
    if report is not None and not report.passed:
        warnings.warn(
            f"{result.path}: written although it does not match the torch fp32 model ({'; '.join(report.failures)}); "
            "its manifest records the failed validation",
            stacklevel=3,
        )


#: Precisions to fall back on when a more compact one misses its tolerance, most compact first.
FALLBACK_PRECISIONS = ("int8-dynamic", "int8-weight", "fp16")


def validation_hint(fmt: Format, precision: str) -> str:
    """What to do when a fresh ``precision`` artifact misses its tolerance (a ValidationFailedError's hint).

    fp32 and fp16 should always pass: a failure there is a bug to report. A reduced precision can
    simply lose too much on a given model: the hint names the format's wider precisions, the ONNX
    accuracy budget, and the opt-in that writes the artifact anyway.
    """
    if precision in ("fp32", "fp16"):
        return "nothing was written; report this with the command you ran (vitedge --version)"
    wider = [name for name in FALLBACK_PRECISIONS if name in fmt.precision_names and name != precision]
    steps = [f"--precision {' or '.join(wider)}"] if wider else []
    if "max_accuracy_drop" in fmt.options:
        steps.append("--max-accuracy-drop POINTS with int8 (keeps the most sensitive layers in float)")
    steps.append("--accept-failed-validation to write it anyway, the failed validation recorded in its manifest")
    return "nothing was written; try " + ", or ".join(steps)


def validate_into_manifest(
    fmt: Format,
    work: Path,
    manifest: Manifest,
    source: SourceModel,
    *,
    samples: int,
    images_dir: str | os.PathLike | None,
    hint: str,
    strict: bool = True,
) -> Manifest:
    """Validate the artifact in ``work`` against ``source`` and write the report into its manifest,
    then its self-check (:func:`vitedge.converters.selfcheck.write_selfcheck_into`).

    Raises:
        ValidationFailedError: ``strict`` and the artifact misses the precision's tolerance (``hint``
            says what to do); the atomic folder around ``work`` then writes nothing.
    """
    support = fmt.support(manifest.precision)
    report = validator_for(fmt)(work, source, tolerance_for(support, source), samples=samples, images_dir=images_dir)
    if manifest.token_merging is not None:  # the reference is the token-merged model: say so
        report = dataclasses.replace(report, reference=f"{report.reference}, token-merged as token_merging says")
    if strict and not report.passed:
        raise ValidationFailedError(
            f"the {fmt.title} {manifest.precision} artifact does not match the torch fp32 model: "
            f"{'; '.join(report.failures)}",
            hint=hint,
        )
    manifest = manifest.with_validation(report)
    manifest.write(work)
    return write_selfcheck_into(work, manifest, source, report)


def tolerance_for(support: PrecisionSupport, source: SourceModel) -> Tolerance:
    """The precision's tolerance, adjusted for random-init weights (architecture presets).

    Random weights have near-uniform logits, which make top-1 a coin toss: not gated. Their
    layers also lack the structure trained weights have, so 4-bit weights with int8 activations
    lose more there (ViT-B/16 TFLite int4: min logits cosine 0.88, against 0.999 on a trained
    model): the cosines' allowed error (1 - cosine) doubles for random weights. The manifest
    records the tolerance applied.
    """
    tolerance = support.tolerance
    if source.info.weights != "random-init":
        return tolerance

    def looser(cosine: float | None) -> float | None:
        return None if cosine is None else 1 - 2 * (1 - cosine)

    return dataclasses.replace(tolerance, min_top1_agreement=None,
                               min_logits_cosine=looser(tolerance.min_logits_cosine),
                               min_embedding_cosine=looser(tolerance.min_embedding_cosine))


def describe(fmt: Format, precision: str, work: Path, exported: ExportedModel, source: SourceModel) -> Manifest:
    """The manifest of a freshly exported model (validation comes after)."""
    return Manifest(
        format=fmt.name,
        precision=precision,
        files=tuple(FileEntry.of(work, name) for name in exported.files),
        input=exported.input,
        outputs=exported.outputs,
        preprocess=exported.preprocess or source.preprocess,
        entry=exported.entry,
        labels=source.labels,
        source=source.info,
        conversion=ConversionInfo(
            vitedge_version=__version__,
            created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            tools=dict(exported.tools),
            recipe=dict(exported.recipe),
            calibration=exported.calibration,
        ),
    )
