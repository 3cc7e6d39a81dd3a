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
import os
from collections.abc import Callable
from pathlib import Path

from vitedge.converters.atomic import atomic_folder, check_destination
from vitedge.converters.export_types import DEFAULT_VALIDATION_SAMPLES, ExportedModel, ExportOptions
from vitedge.converters.loading import SourceModel, load_source
from vitedge.converters.rewrites import rewritten_export
from vitedge.converters.stages import (
    ConversionResult,
    describe,
    validate_into_manifest,
    validation_hint,
    warn_if_failed,
)
from vitedge.converters.token_merging_option import AUTO, is_off
from vitedge.converters.validate import validation_image_paths
from vitedge.errors import UsageError
from vitedge.formats import Format, get_format, load_entry_point
from vitedge.runtime.manifest import TokenMergingInfo


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
    if validation_images is not None:
        validation_image_paths(validation_images)  # an empty or missing folder fails before the slow part
    if not isinstance(model, SourceModel):
        stage(f"loading {model}")
    source = model if isinstance(model, SourceModel) else load_source(model, revision=revision, allow_pickle=allow_pickle)
    fmt.check_family(source.model.config.model_type, precision, export_options)  # an op the format lacks
    learned_ranges = validation_images is None and _learned_int8_ranges(source, fmt, precision, export_options)
    token_merging = None
    if not is_off(export_options.token_merging):  # the exporter gets the token-merged model (and R resolved)
        from vitedge.converters.token_merging.apply import prepare_token_merging

        merged = prepare_token_merging(source, export_options, samples=validation_samples,
                                       images_dir=validation_images, stage=stage)
        source, export_options, token_merging = merged.source, merged.options, merged.info
    if learned_ranges:
        from vitedge.converters.training.qat_export import export_int8_matmuls

        stage("int8-static with the activation ranges quantization-aware training learned (vitedge_qat.json)")
        result = export_int8_matmuls(source, out_path, qat=True, validation_samples=validation_samples,
                                     overwrite=overwrite, strict=not accept_failed_validation)
    else:
        result = _export_validated(fmt, source, out_path, export_options, overwrite=overwrite, stage=stage,
                                   samples=validation_samples, images_dir=validation_images,
                                   strict=not accept_failed_validation, token_merging=token_merging)
    if accept_failed_validation:  # otherwise a failed validation raised
        warn_if_failed(result)
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
    token_merging: TokenMergingInfo | None = None,
) -> ConversionResult:
    """Export, describe and validate into a work folder that becomes ``out_path`` only when all went well."""
    exporter = load_entry_point(fmt.exporter)
    with atomic_folder(out_path, overwrite=overwrite) as work:
        stage(f"exporting to {fmt.title} {options.precision}")
        exported: ExportedModel = rewritten_export(exporter, source, work, options)
        manifest = dataclasses.replace(describe(fmt, options.precision, work, exported, source),
                                       token_merging=token_merging)
        manifest.write(work)
        stage(f"validating against the torch fp32 model on {samples} inputs")
        manifest = validate_into_manifest(fmt, work, manifest, source, samples=samples, images_dir=images_dir,
                                          hint=_hint(fmt, options.precision, token_merging), strict=strict)
    return ConversionResult(out_path, manifest)


def _hint(fmt: Format, precision: str, token_merging: TokenMergingInfo | None) -> str:
    hint = validation_hint(fmt, precision)
    if token_merging is None or precision == "fp32":
        return hint
    return (hint + "; or a smaller --token-merging R (reduced precision can flip which tokens merge, and a small "
            "model's few tokens make each merge count)")


def _learned_int8_ranges(source: SourceModel, fmt: Format, precision: str, options: ExportOptions) -> bool:
    """Whether this ONNX int8-static conversion should use the ranges a QAT run left in the folder.

    Only when the user asked for nothing that recipe does not do (a calibration set, a budget, a graph).
    """
    from vitedge.converters.training.qat import QAT_RECORD

    folder = Path(source.info.model)
    asked = set(options.changed()) - {"precision"}
    return fmt.name == "onnx" and precision == "int8-static" and not asked and (folder / QAT_RECORD).is_file()


def check_options(fmt: Format, options: ExportOptions) -> None:
    """Reject, in one place, options the format does not take."""
    spent = {"max_accuracy_drop"} if options.token_merging == AUTO else set()  # that budget chooses R
    unsupported = [name for name in options.changed() if name not in fmt.options and name not in spent]
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


