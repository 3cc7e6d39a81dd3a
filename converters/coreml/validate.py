"""Validate a Core ML artifact: the real model on macOS, a labelled torch simulation elsewhere.

This is the Core ML format's ``validator`` (see :class:`vitedge.formats.Format`), used by
``vitedge convert`` and ``vitedge verify`` in place of running the artifact through the runtime,
which only works where Core ML does.
"""

from __future__ import annotations

import dataclasses
import platform
from pathlib import Path

from vitedge.converters.coreml.checks import package_problems
from vitedge.converters.coreml.mlpackage import read_package
from vitedge.converters.coreml.simulate import simulated_outputs
from vitedge.converters.loading import SourceModel
from vitedge.converters.validate import (
    DEFAULT_SAMPLES,
    artifact_outputs,
    compare_outputs,
    torch_outputs,
    validation_inputs,
)
from vitedge.formats import Tolerance, get_format
from vitedge.runtime.classifier import Classifier
from vitedge.runtime.manifest import Manifest, ValidationReport, read_manifest


def validate_coreml(
    folder: Path,
    source: SourceModel,
    tolerance: Tolerance,
    *,
    samples: int = DEFAULT_SAMPLES,
    images_dir: str | Path | None = None,
    num_threads: int | None = None,
) -> ValidationReport:
    """Check the package against the manifest and measure it against the torch fp32 model on the same images.

    The reference gets the source model's preprocessing and the artifact its own (an image input
    takes raw pixels), from the same images. Where Core ML runs, the artifact runs; elsewhere
    :func:`vitedge.converters.coreml.simulate.simulated_outputs` stands in and the report says
    ``simulated``, naming how. What :func:`vitedge.converters.coreml.checks.package_problems`
    finds is added to the report's failures.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    report = _measure(folder, manifest, source, tolerance, samples, images_dir, num_threads)
    problems = tuple(package_problems(read_package(folder / manifest.model_file), manifest))
    return dataclasses.replace(report, passed=report.passed and not problems, failures=report.failures + problems)


def _measure(
    folder: Path, manifest: Manifest, source: SourceModel, tolerance: Tolerance, samples: int,
    images_dir: str | Path | None, num_threads: int | None,
) -> ValidationReport:
    reference_inputs, description = validation_inputs(source.preprocess, samples, images_dir=images_dir)
    artifact_inputs, _ = validation_inputs(manifest.preprocess, samples, images_dir=images_dir)
    reference = torch_outputs(source, reference_inputs)
    if get_format(manifest.format).backend_supported_here():
        classifier = Classifier.open(folder, num_threads=num_threads, verify=False)
        return compare_outputs(reference, artifact_outputs(classifier, artifact_inputs), tolerance, inputs=description)
    compute = manifest.conversion.recipe["compute_precision"]
    how = (
        f"{description}; simulated, as {platform.system()} cannot run Core ML: torch with the package's "
        f"decompressed weights, {compute} compute"
    )
    candidate = simulated_outputs(folder, manifest, source, artifact_inputs)
    return compare_outputs(reference, candidate, tolerance, inputs=how, simulated=True)
