"""``vitedge verify``: re-check an artifact's files and, when the source model is at hand, its parity."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from vitedge.converters.export_types import DEFAULT_VALIDATION_SAMPLES
from vitedge.errors import ModelLoadError
from vitedge.render import validation_text
from vitedge.runtime.manifest import ValidationReport, read_manifest, verify_files


@dataclass
class VerifyOutcome:
    """What was checked, line by line, whether it all held, and the parity report (when measured)."""

    ok: bool = True
    lines: list[str] = field(default_factory=list)
    report: ValidationReport | None = None


def verify_artifact(
    artifact: str | os.PathLike,
    *,
    against: str | None = None,
    samples: int = DEFAULT_VALIDATION_SAMPLES,
    allow_pickle: bool = False,
) -> VerifyOutcome:
    """Check checksums (always) and parity with the source model (when it can be loaded).

    Parity is judged as convert judged it: the precision's tolerance, relaxed for random-init
    weights (:func:`vitedge.converters.pipeline.tolerance_for`).

    Args:
        artifact: The artifact folder.
        against: The source model (hub id, folder, preset:NAME); default: the manifest's source.
        samples: Inputs for the parity check.
        allow_pickle: Accept a pickle checkpoint as the source.

    Raises:
        ArtifactError: the manifest or a file is missing, malformed or tampered with.
    """
    folder = Path(artifact)
    manifest = read_manifest(folder)
    verify_files(folder, manifest, checksums=True)
    outcome = VerifyOutcome()
    outcome.lines.append(f"checksums: OK ({len(manifest.files)} file(s) match the manifest)")
    try:
        from vitedge.converters.loading import load_source
        from vitedge.converters.stages import tolerance_for
        from vitedge.converters.validate import validator_for
        from vitedge.formats import get_format
    except ImportError as error:
        outcome.lines.append(f"parity: not checked: the converters need torch and transformers ({error.name} is missing); "
                             "pip install 'vitedge[convert]'")
        return outcome
    model = against or manifest.source.model
    try:
        source = load_source(model, allow_pickle=allow_pickle, seed=manifest.source.seed or 0)
    except ModelLoadError as error:
        outcome.lines.append(f"parity: not checked: source {model!r} is not available ({error}); pass --against MODEL")
        return outcome
    if source.info.weights_sha256 and manifest.source.weights_sha256 and source.info.weights_sha256 != manifest.source.weights_sha256:
        outcome.lines.append(f"note: {model} has other weights than the artifact was made from (weights sha256 differs)")
    fmt = get_format(manifest.format)
    tolerance = tolerance_for(fmt.support(manifest.precision), source)
    report = validator_for(fmt)(folder, source, tolerance, samples=samples)
    outcome.ok, outcome.report = report.passed, report
    outcome.lines.append(f"parity against {model}: {validation_text(report)}")
    return outcome
