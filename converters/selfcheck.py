"""The conversion's last stage: write the artifact's self-check (``selfcheck/``) and run it once here.

After validation, :func:`write_selfcheck_into` stores a handful of encoded images
(:func:`vitedge.data.selfcheck_images.selfcheck_images`), the input tensors the manifest's preprocessing
makes of them, and the torch fp32 outputs for the source's own preprocessing of the same images,
with the tolerance the validation applied. Then it runs the self-check through the runtime, as
``vitedge verify`` will on a device, so that a fresh artifact passes its own self-check here:

- the preprocessing must match (it is the same code: a miss is a bug, and the conversion fails);
- top-1 agreement on a handful of images cannot show a 90% tolerance (one flip in 7 is 86%): the
  device is held to the smaller of the tolerance and what the conversion machine measured on them
  (the other metrics keep the tolerance; a miss here is recorded and warned about).
"""

from __future__ import annotations

import platform
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import PIL

from vitedge._version import __version__
from vitedge.converters.loading import SourceModel
from vitedge.converters.validate import REFERENCE, torch_outputs
from vitedge.data.selfcheck_images import selfcheck_images
from vitedge.errors import ConversionError
from vitedge.runtime.images import load_rgb
from vitedge.runtime.manifest import Manifest, ValidationReport
from vitedge.runtime.preprocess import preprocess
from vitedge.runtime.selfcheck import FAILED, NOT_CHECKED, SelfCheckReport, run_selfcheck
from vitedge.runtime.selfcheck_files import EncodedImage, write_selfcheck


def write_selfcheck_into(work: Path, manifest: Manifest, source: SourceModel, report: ValidationReport) -> Manifest:
    """Write ``work/selfcheck/``, run it here, and return the manifest that lists it (written into ``work``).

    Raises:
        ConversionError: this machine's runtime does not reproduce the tensors just written (a bug).
    """
    images = selfcheck_images()
    decoded = [load_rgb(image.data) for image in images]
    tensors = [preprocess(rgb, manifest.preprocess) for rgb in decoded]
    outputs = [torch_outputs(source, preprocess(rgb, source.preprocess)[None]) for rgb in decoded]
    logits = np.concatenate([out["logits"] for out in outputs])
    embedding = np.concatenate([out["embedding"] for out in outputs]) if manifest.outputs.embedding else None
    made_with: dict[str, Any] = {"vitedge": __version__, "pillow": PIL.__version__, "validation_tolerance": dict(report.tolerance),
                                 "validation_passed": report.passed}

    def write(model_tolerance: dict[str, float | None]) -> Manifest:
        files = write_selfcheck(work, images=images, spec=manifest.preprocess, tensors=tensors, logits=logits,
                                embedding=embedding, reference=REFERENCE, model_tolerance=model_tolerance,
                                made_with=made_with)
        written = manifest.with_selfcheck(files)
        written.write(work)
        return written

    written = write(dict(report.tolerance))
    here = run_selfcheck(work, written)
    _check_preprocessing_here(here, images)
    made_with["at_conversion"] = {"host": f"{platform.system()} {platform.machine()}",
                                  **{v.stage: {"status": v.status, "summary": v.summary} for v in here.verdicts}}
    tolerance = _top1_for_a_handful(dict(report.tolerance), here, len(images), made_with)
    if here.model is not None and here.model.status == FAILED:
        warnings.warn(f"{work.name}: the self-check's model parity misses on this machine already "
                      f"({here.model.summary}); vitedge verify will report it on devices too", stacklevel=3)
    return write(tolerance)


def _check_preprocessing_here(report: SelfCheckReport, images: list[EncodedImage]) -> None:
    if report.preprocessing is None or report.preprocessing.status != "passed":
        summary = report.preprocessing.summary if report.preprocessing else "not run"
        raise ConversionError(f"the self-check of {len(images)} images does not reproduce here: {summary}",
                              hint="this is a bug: report it with the command you ran (vitedge --version)")


def _top1_for_a_handful(tolerance: dict[str, float | None], here: SelfCheckReport, count: int,
                        made_with: dict[str, Any]) -> dict[str, float | None]:
    """Hold top-1 agreement on the self-check's few images to what this machine measured when that is lower.

    Without a run here (a backend this OS lacks, e.g. Core ML on Linux) one flip is allowed.
    """
    wanted = tolerance.get("min_top1_agreement")
    if wanted is None:
        return tolerance
    model = here.model
    ran = model is not None and model.status != NOT_CHECKED
    measured = model.details["top1_agreement"] if ran else (count - 1) / count
    if measured >= wanted:
        return tolerance
    made_with["notes"] = [
        f"top-1 agreement on these {count} images is held to {measured:.4g} (the tolerance asks {wanted:g}): "
        + ("what the conversion machine measured on them" if ran else "one flip, as the model could not run here")
    ]
    return {**tolerance, "min_top1_agreement": measured}
