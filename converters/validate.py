"""Check an artifact against the torch fp32 reference, on the same preprocessed inputs.

Every conversion ends here: the artifact runs through the real runtime (the same code users call),
the reference runs in torch, and :func:`compare_outputs` measures top-1 agreement, cosines and
differences against the format's tolerance. The report goes into the manifest.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from vitedge.converters.export_types import DEFAULT_VALIDATION_SAMPLES
from vitedge.converters.loading import SourceModel
from vitedge.data.shapes import ShapesConfig, shapes_samples
from vitedge.errors import UsageError
from vitedge.formats import Format, Tolerance, load_entry_point
from vitedge.metrics import max_abs_diff, row_cosines, top1_agreement
from vitedge.runtime.classifier import Classifier
from vitedge.runtime.images import expand_image_paths, load_rgb
from vitedge.runtime.manifest import ValidationReport
from vitedge.runtime.preprocess import preprocess_batch
from vitedge.runtime.preprocess_spec import PreprocessSpec

DEFAULT_SAMPLES = DEFAULT_VALIDATION_SAMPLES
REFERENCE = "torch fp32"


def validation_inputs(
    spec: PreprocessSpec, samples: int = DEFAULT_SAMPLES, *, images_dir: str | Path | None = None
) -> tuple[np.ndarray, str]:
    """Preprocessed held-out inputs and a description of where they came from.

    From ``images_dir`` when given (the user's own images, first ``samples`` in sorted order), else
    from the built-in shapes dataset's test split (never its train or calibration splits).

    Raises:
        UsageError: ``images_dir`` does not exist or holds no images.
    """
    if images_dir is not None:
        paths = validation_image_paths(images_dir)[:samples]
        images = [load_rgb(path) for path in paths]
        description = f"{len(images)} images from {images_dir}"
    else:
        config = ShapesConfig()
        per_class = math.ceil(samples / config.num_classes)
        images = [image for image, _ in shapes_samples("test", per_class, config)][:samples]
        description = f"{len(images)} built-in shapes test images (seed {config.seed})"
    return preprocess_batch(images, spec), description


def validation_image_paths(images_dir: str | Path) -> list[str]:
    """The images of ``--validation-images`` (a folder, searched recursively, or one image file), sorted."""
    if not Path(images_dir).exists():
        raise UsageError(f"--validation-images {images_dir}: no such folder",
                         hint="pass a folder of images, or leave the option out to validate on built-in images")
    paths = expand_image_paths([str(images_dir)])
    if not paths:
        raise UsageError(
            f"--validation-images {images_dir}: no images in this folder",
            hint="put JPEG/PNG images in it (subfolders count), or leave the option out to validate on built-in images",
        )
    return paths


def torch_outputs(source: SourceModel, inputs: np.ndarray, batch_size: int = 8) -> dict[str, np.ndarray]:
    """The reference: logits and embedding from the torch model in fp32."""
    wrapper = source.two_outputs()
    logits, embeddings = [], []
    with torch.inference_mode():
        for start in range(0, len(inputs), batch_size):
            batch_logits, batch_embedding = wrapper(torch.from_numpy(inputs[start : start + batch_size]))
            logits.append(batch_logits.float().numpy())
            embeddings.append(batch_embedding.float().numpy())
    return {"logits": np.concatenate(logits), "embedding": np.concatenate(embeddings)}


def artifact_outputs(classifier: Classifier, inputs: np.ndarray, batch_size: int = 8) -> dict[str, np.ndarray]:
    parts = [classifier.run(inputs[start : start + batch_size]) for start in range(0, len(inputs), batch_size)]
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def compare_outputs(
    reference: dict[str, np.ndarray],
    candidate: dict[str, np.ndarray],
    tolerance: Tolerance,
    *,
    inputs: str,
    simulated: bool = False,
) -> ValidationReport:
    """Measure ``candidate`` against ``reference`` and judge it by ``tolerance``."""
    logits_cos = row_cosines(reference["logits"], candidate["logits"])
    scale = max(1.0, float(np.max(np.abs(reference["logits"]))))
    logits_diff = max_abs_diff(reference["logits"], candidate["logits"])
    has_embedding = "embedding" in candidate and "embedding" in reference
    embedding_cos = float(row_cosines(reference["embedding"], candidate["embedding"]).min()) if has_embedding else None
    embedding_diff = max_abs_diff(reference["embedding"], candidate["embedding"]) if has_embedding else None
    agreement = top1_agreement(reference["logits"], candidate["logits"])
    failures = []
    checks = (
        ("top-1 agreement", agreement, tolerance.min_top1_agreement, ">="),
        ("min logits cosine", float(logits_cos.min()), tolerance.min_logits_cosine, ">="),
        ("min embedding cosine", embedding_cos, tolerance.min_embedding_cosine, ">="),
        ("max abs logits diff (relative)", logits_diff / scale, tolerance.max_abs_diff, "<="),
    )
    for name, value, limit, direction in checks:
        if limit is None or value is None:
            continue
        if (direction == ">=" and value < limit) or (direction == "<=" and value > limit):
            failures.append(f"{name} {value:.6g} (needs {direction} {limit:g})")
    return ValidationReport(
        reference=REFERENCE,
        samples=len(reference["logits"]),
        inputs=inputs,
        top1_agreement=agreement,
        min_logits_cosine=float(logits_cos.min()),
        mean_logits_cosine=float(logits_cos.mean()),
        max_abs_diff_logits=logits_diff,
        min_embedding_cosine=embedding_cos,
        max_abs_diff_embedding=embedding_diff,
        tolerance={key: getattr(tolerance, key) for key in tolerance.__dataclass_fields__},
        passed=not failures,
        failures=tuple(failures),
        simulated=simulated,
    )


def validate_artifact(
    folder: Path,
    source: SourceModel,
    tolerance: Tolerance,
    *,
    samples: int = DEFAULT_SAMPLES,
    images_dir: str | Path | None = None,
    num_threads: int | None = None,
    device: str | None = None,
) -> ValidationReport:
    """Run the artifact through the runtime and the source through torch on the same images.

    The reference gets the source's preprocessing and the artifact its manifest's (which differs
    when the export changed the input: NHWC, normalization baked into the model). Backends that say
    where and in what precision they ran (``execution``, e.g. OpenVINO's device and the precision read
    back from the compiled model) have it recorded in the report. ``device``: where the artifact runs, for
    formats that offer a choice (None: the backend's default).
    """
    classifier = Classifier.open(folder, num_threads=num_threads, verify=False, device=device)
    reference_inputs, description = validation_inputs(source.preprocess, samples, images_dir=images_dir)
    artifact_inputs = reference_inputs
    if classifier.manifest.preprocess != source.preprocess:
        artifact_inputs, _ = validation_inputs(classifier.manifest.preprocess, samples, images_dir=images_dir)
    report = compare_outputs(
        torch_outputs(source, reference_inputs), artifact_outputs(classifier, artifact_inputs), tolerance, inputs=description
    )
    return dataclasses.replace(report, execution=getattr(classifier.backend, "execution", None))


def validator_for(fmt: Format) -> Callable[..., ValidationReport]:
    """The format's own validator (:attr:`Format.validator`, e.g. a simulation where its backend cannot
    run), else :func:`validate_artifact`; both take ``(folder, source, tolerance, *, samples, images_dir)``."""
    return load_entry_point(fmt.validator) if fmt.validator else validate_artifact
