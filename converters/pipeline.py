"""The conversion pipeline: load → export → describe → validate → package, each stage typed.

An artifact that misses its precision's tolerance is refused (nothing is written) with a hint that
says what to try instead, unless the caller accepts the failed validation: then it is written, its
manifest records the failure, and a warning says so.

    >>> from vitedge.converters import convert
    >>> result = convert("google/vit-base-patch16-224", to="onnx", out="artifacts/vit-b16")
    >>> result.manifest.validation.top1_agreement
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vitedge._version import __version__
from vitedge.converters.atomic import atomic_folder, check_destination
from vitedge.converters.export_types import DEFAULT_VALIDATION_SAMPLES, ExportedModel, ExportOptions
from vitedge.converters.loading import SourceModel, load_source
from vitedge.converters.validate import validator_for
from vitedge.errors import UsageError, ValidationFailedError
from vitedge.formats import Format, PrecisionSupport, Tolerance, get_format, load_entry_point
from vitedge.runtime.manifest import ConversionInfo, FileEntry, Manifest, ValidationReport


@dataclass(frozen=True)
class ConversionResult:
    """A finished artifact: where it is, its manifest, and its validation against torch fp32."""

    path: Path
    manifest: Manifest

    @property
    def validation(self) -> ValidationReport | None:
        return self.manifest.validation


def convert(
    model: str | SourceModel,
    *,
    to: str,
    out: str | os.PathLike,
    precision: str = "fp32",
    overwrite: bool = False,
    revision: str | None = None,
    allow_pickle: bool = False,
    validation_samples: int = DEFAULT_VALIDATION_SAMPLES,
    validation_images: str | os.PathLike | None = None,
    options: ExportOptions | None = None,
    accept_failed_validation: bool = False,
    on_stage: Callable[[str], None] | None = None,
) -> ConversionResult:
    """Convert a ViT classifier into an artifact folder, validated against the torch fp32 model.

    Args:
        model: ``preset:NAME``, a local Hugging Face folder, a hub id, or an already loaded SourceModel.
        to: Format name from :data:`vitedge.formats.FORMATS`.
        out: The artifact folder to create.
        precision: One of the format's precisions.
        overwrite: Replace an existing artifact at ``out``.
        revision: Hub revision (branch, tag or commit).
        allow_pickle: Accept a pickle (pytorch_model.bin) checkpoint. Only for sources you trust.
        validation_samples: How many held-out inputs the artifact is checked on.
        validation_images: A folder of the user's own images to validate on (default: built-in).
        options: Format-specific export options (precision is taken from ``precision``).
        accept_failed_validation: Write the artifact even when it misses the precision's tolerance
            (a reduced precision this model does not take well): its manifest records the failed
            validation (``validation.passed`` false and the failures), a warning says so, and the
            runtime loads it like any other.
        on_stage: Called with a short line as each stage starts (the CLI prints them).

    Raises:
        UsageError: unknown format or precision, or ``out`` exists without ``overwrite``.
        ModelLoadError: the model cannot be loaded.
        ConversionError: the export failed.
        ValidationFailedError: the artifact misses the format's tolerance and ``accept_failed_validation``
            is false; nothing is written, and the hint says what to try (:func:`validation_hint`).
    """
    stage = on_stage or (lambda line: None)
    fmt = get_format(to)
    fmt.support(precision)  # an unsupported precision fails here, before the slow part
    out_path = Path(out)
    check_destination(out_path, overwrite=overwrite)  # fail before the slow part
    export_options = ExportOptions(**{**_options_dict(options), "precision": precision})
    check_options(fmt, export_options)
    if not isinstance(model, SourceModel):
        stage(f"loading {model}")
    source = model if isinstance(model, SourceModel) else load_source(model, revision=revision, allow_pickle=allow_pickle)
    if validation_images is None and _learned_int8_ranges(source, fmt, precision, export_options):
        from vitedge.converters.training.qat_export import export_int8_matmuls

        stage("int8-static with the activation ranges quantization-aware training learned (vitedge_qat.json)")
        result = export_int8_matmuls(source, out_path, qat=True, validation_samples=validation_samples,
                                     overwrite=overwrite, strict=not accept_failed_validation)
    else:
        result = _export_validated(fmt, source, out_path, export_options, overwrite=overwrite, stage=stage,
                                   samples=validation_samples, images_dir=validation_images,
                                   strict=not accept_failed_validation)
    if accept_failed_validation:  # otherwise a failed validation raised
        _warn_if_failed(result)
    return result


def _export_validated(
    fmt: Format,
    source: SourceModel,
    out_path: Path,
    options: ExportOptions,
    *,
    overwrite: bool,
    stage: Callable[[str], None],
    samples: int,
    images_dir: str | os.PathLike | None,
    strict: bool,
) -> ConversionResult:
    """Export, describe and validate into a work folder that becomes ``out_path`` only when all went well."""
    exporter = load_entry_point(fmt.exporter)
    with atomic_folder(out_path, overwrite=overwrite) as work:
        stage(f"exporting to {fmt.title} {options.precision}")
        exported: ExportedModel = exporter(source, work, options)
        manifest = describe(fmt, options.precision, work, exported, source)
        manifest.write(work)
        stage(f"validating against the torch fp32 model on {samples} inputs")
        manifest = validate_into_manifest(fmt, work, manifest, source, samples=samples, images_dir=images_dir,
                                          hint=validation_hint(fmt, options.precision), strict=strict)
    return ConversionResult(out_path, manifest)


def _warn_if_failed(result: ConversionResult) -> None:
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
    """Validate the artifact in ``work`` against ``source`` and write the report into its manifest.

    Raises:
        ValidationFailedError: ``strict`` and the artifact misses the precision's tolerance (``hint``
            says what to do); the atomic folder around ``work`` then writes nothing.
    """
    support = fmt.support(manifest.precision)
    report = validator_for(fmt)(work, source, tolerance_for(support, source), samples=samples, images_dir=images_dir)
    if strict and not report.passed:
        raise ValidationFailedError(
            f"the {fmt.title} {manifest.precision} artifact does not match the torch fp32 model: "
            f"{'; '.join(report.failures)}",
            hint=hint,
        )
    manifest = manifest.with_validation(report)
    manifest.write(work)
    return manifest


def _learned_int8_ranges(source: SourceModel, fmt: Format, precision: str, options: ExportOptions) -> bool:
    """Whether this ONNX int8-static conversion should use the ranges a QAT run left in the folder.

    Only when the user asked for nothing that recipe does not do (a calibration set, a budget, a graph).
    """
    from vitedge.converters.training.qat import QAT_RECORD

    folder = Path(source.info.model)
    asked = set(options.changed()) - {"precision"}
    return fmt.name == "onnx" and precision == "int8-static" and not asked and (folder / QAT_RECORD).is_file()


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


def check_options(fmt: Format, options: ExportOptions) -> None:
    """Reject, in one place, options the format does not take."""
    unsupported = [name for name in options.changed() if name not in fmt.options]
    if unsupported:
        accepted = ", ".join(fmt.options) or "none"
        raise UsageError(
            f"format {fmt.name!r} does not take the option(s) {', '.join(unsupported)}",
            hint=f"its options: {accepted}",
        )


def _options_dict(options: ExportOptions | None) -> dict:
    if options is None:
        return {}
    return {name: getattr(options, name) for name in options.__dataclass_fields__}


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
