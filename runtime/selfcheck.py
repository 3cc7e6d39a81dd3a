"""An artifact's self-check: does the runtime on this machine compute what the conversion computed? Torch free.

Every ``vitedge convert`` writes ``selfcheck/`` into the artifact (:mod:`vitedge.runtime.selfcheck_files`):
a handful of encoded images, the input tensors the conversion made from them (pinned by sha256, sampled
on a grid) and the torch fp32 outputs for those tensors, with the tolerance the artifact's format and
precision passed at conversion. :func:`run_selfcheck` gives two verdicts:

- **preprocessing parity**: each image is decoded and preprocessed by this runtime, as
  :class:`~vitedge.runtime.Classifier` does, and its tensor compared with the reference (bit-identical
  in practice; at most :data:`~vitedge.runtime.selfcheck_files.TENSOR_TOLERANCE` apart). A miss says
  which image, by how much and what kind of difference it is (the manifest's spec edited, a per-channel
  scale/offset, swapped channels, other resampling, another JPEG decoder).
- **model parity**: the model runs on the reference inputs (this runtime's own tensors where they
  match, else the tensors the recorded spec gives) and its outputs are compared with torch's by the
  stored tolerance: reduced precisions are judged as at their conversion, not as fp32.

The Android and iOS demos' cores implement the same check (``SelfCheck.kt``, ``SelfCheck.swift``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import PIL

from vitedge.errors import ArtifactError, BackendUnavailableError, ImageLoadError
from vitedge.metrics import row_cosines
from vitedge.runtime.backends import open_backend
from vitedge.runtime.classifier import Classifier
from vitedge.runtime.images import load_rgb
from vitedge.runtime.manifest import Manifest, read_manifest
from vitedge.runtime.preprocess import preprocess
from vitedge.runtime.preprocess_spec import PreprocessSpec
from vitedge.runtime.selfcheck_files import (
    ReferenceImage,
    SelfCheckData,
    read_selfcheck,
    sample_tensor,
    tensor_sha256,
)

PASSED, FAILED, NOT_CHECKED = "passed", "failed", "not checked"
Runner = Callable[[np.ndarray], dict[str, np.ndarray]]
"""Runs one preprocessed batch (1, …) through the model: ``{"logits": (1, C), "embedding": (1, D)?}``."""


@dataclass(frozen=True)
class Verdict:
    """One stage's verdict: ``status`` passed, failed or not checked, a one-line ``summary``, and numbers."""

    stage: str
    status: str
    summary: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def line(self) -> str:
        status = self.status if self.status == NOT_CHECKED else ("OK" if self.status == PASSED else "FAILED")
        return f"{self.stage} parity: {status}: {self.summary}"

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "summary": self.summary, **self.details}


@dataclass(frozen=True)
class SelfCheckReport:
    """Both verdicts, or (``present`` False) why the artifact cannot check itself and how to fix that."""

    present: bool
    preprocessing: Verdict | None = None
    model: Verdict | None = None
    hint: str | None = None

    @property
    def ok(self) -> bool:
        """False when a stage failed (an artifact without a self-check is not a failure)."""
        return not any(verdict.status == FAILED for verdict in self.verdicts)

    @property
    def verdicts(self) -> tuple[Verdict, ...]:
        return tuple(verdict for verdict in (self.preprocessing, self.model) if verdict is not None)

    def lines(self) -> list[str]:
        if not self.present:
            return [f"self-check: not possible: {self.hint}"]
        return [verdict.line for verdict in self.verdicts]

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"present": self.present, "ok": self.ok}
        if not self.present:
            data["hint"] = self.hint
        for verdict in self.verdicts:
            data[verdict.stage] = verdict.to_dict()
        return data


@dataclass(frozen=True)
class ImageParity:
    """One image through this runtime's preprocessing, against its reference."""

    image: ReferenceImage
    tensor: np.ndarray | None
    max_abs_diff: float | None
    bit_identical: bool
    passed: bool
    problem: str | None = None


def regenerate_hint(manifest: Manifest) -> str:
    """How to get an artifact with a self-check: the conversion that made this one, into a new folder."""
    return (f"it was made before vitedge wrote self-checks; re-create it to add one: vitedge convert "
            f"{manifest.source.model} --to {manifest.format} --precision {manifest.precision} --out NEW_FOLDER")


def run_selfcheck(
    folder: str | os.PathLike,
    manifest: Manifest | None = None,
    *,
    runner: Runner | None = None,
    num_threads: int | None = None,
    device: str | None = None,
) -> SelfCheckReport:
    """Check this machine's preprocessing and model outputs against the artifact's self-check.

    Checksums are not checked here (:func:`vitedge.runtime.manifest.verify_files` does; ``vitedge
    verify`` runs both).

    Args:
        folder: The artifact folder.
        manifest: Its manifest, when already read.
        runner: Runs a preprocessed batch through the model (default: the artifact's backend, opened here).
        num_threads: Threads for the backend opened here.
        device: Where the backend opened here runs, for formats that offer a choice (None: its default).

    Returns:
        The report; ``present`` is False for an artifact made before self-checks (``hint`` says how to add one).

    Raises:
        ArtifactError: the manifest or the self-check's files are malformed.
    """
    folder = Path(folder)
    manifest = manifest or read_manifest(folder)
    data = read_selfcheck(folder, manifest)
    if data is None:
        return SelfCheckReport(present=False, hint=regenerate_hint(manifest))
    parities = [image_parity(data, image, manifest.preprocess) for image in data.images]
    inputs = model_inputs(data, parities, manifest.preprocess)
    opener = (lambda: runner) if runner is not None else (lambda: _backend_runner(folder, manifest, num_threads, device))
    return SelfCheckReport(
        present=True,
        preprocessing=preprocessing_verdict(data, parities, manifest.preprocess),
        model=model_verdict(data, inputs, opener, isolated=not all(parity.passed for parity in parities)),
    )


def _backend_runner(folder: Path, manifest: Manifest, num_threads: int | None, device: str | None) -> Runner:
    return Classifier(folder, manifest, open_backend(folder, manifest, num_threads=num_threads, device=device)).run


# -- preprocessing parity --------------------------------------------------------------------------


def image_parity(data: SelfCheckData, image: ReferenceImage, spec: PreprocessSpec) -> ImageParity:
    """Decode and preprocess one self-check image as the Classifier does; compare with its reference."""
    try:
        tensor = preprocess(load_rgb(data.image_bytes(image)), spec)
    except (ImageLoadError, OSError) as error:
        return ImageParity(image, None, None, False, False, problem=f"cannot be read here ({error})")
    if tuple(tensor.shape) != image.shape:
        problem = f"tensor shape {tuple(tensor.shape)} instead of {image.shape}: check size, crop_size and layout"
        return ImageParity(image, tensor, None, False, False, problem=problem)
    if tensor_sha256(tensor) == image.sha256:
        return ImageParity(image, tensor, 0.0, True, True)
    diff = float(np.max(np.abs(sample_tensor(tensor, spec.layout, image.rows, image.cols) - data.samples_of(image))))
    return ImageParity(image, tensor, diff, False, diff <= data.tensor_tolerance)


def preprocessing_verdict(data: SelfCheckData, parities: Sequence[ImageParity], spec: PreprocessSpec) -> Verdict:
    """All images agree (bit-identical, or within the tolerance at the sampled positions), or what differs."""
    details = {
        "images": len(parities),
        "bit_identical": sum(parity.bit_identical for parity in parities),
        "max_abs_diff": max((p.max_abs_diff for p in parities if p.max_abs_diff is not None), default=None),
        "tolerance": data.tensor_tolerance,
        "per_image": [{"image": p.image.file, "passed": p.passed, "max_abs_diff": p.max_abs_diff,
                       "bit_identical": p.bit_identical, **({"problem": p.problem} if p.problem else {})}
                      for p in parities],
    }
    failed = [parity for parity in parities if not parity.passed]
    if not failed:
        if details["bit_identical"] == len(parities):
            summary = f"{len(parities)} images, tensors bit-identical to the conversion's"
        else:
            summary = (f"{len(parities)} images, max |diff| {details['max_abs_diff']:.2g} <= {data.tensor_tolerance:g} "
                       f"({details['bit_identical']} bit-identical)")
        return Verdict("preprocessing", PASSED, summary, details)
    worst = max(failed, key=lambda p: np.inf if p.max_abs_diff is None else p.max_abs_diff)
    amount = f"max |diff| {worst.max_abs_diff:.3g} > {data.tensor_tolerance:g}" if worst.max_abs_diff is not None else worst.problem
    summary = (f"this runtime's preprocessing differs from the conversion's on {len(failed)} of {len(parities)} images "
               f"(worst: {worst.image.file}, {worst.image.what or worst.image.encoded_as}: {amount}); "
               f"{explain_difference(data, parities, spec)}")
    return Verdict("preprocessing", FAILED, summary, details)


def explain_difference(data: SelfCheckData, parities: Sequence[ImageParity], spec: PreprocessSpec) -> str:
    """The likeliest cause of a preprocessing miss, as advice: the spec, the values, the channels, the resize, JPEG."""
    changed = spec_changes(data.preprocess, spec)
    if changed:
        return f"the manifest's preprocess differs from the one the self-check was made with ({changed}): restore it"
    failed = [parity for parity in parities if not parity.passed]
    if all(p.image.encoded_as == "JPEG" for p in failed) and any(p.image.encoded_as != "JPEG" for p in parities):
        return "only JPEG images differ: this platform's JPEG decoder differs from Pillow's (libjpeg-turbo)"
    measured = [p for p in failed if p.max_abs_diff is not None]
    if not measured:
        return failed[0].problem or "check the preprocessing"
    worst = max(measured, key=lambda p: p.max_abs_diff)
    actual = sample_tensor(worst.tensor, spec.layout, worst.image.rows, worst.image.cols)
    return _kind_of_difference(data.samples_of(worst.image), actual) + _pillow_note(data)


def _pillow_note(data: SelfCheckData) -> str:
    """Pillow's resize arithmetic changes between versions (Pillow 13 runs some resizes vertical pass first)."""
    made = data.made_with.get("pillow")
    if not made or made == PIL.__version__:
        return ""
    return (f" (the self-check was made with Pillow {made}, this machine has Pillow {PIL.__version__}: resizes differ "
            "in the last bit between versions; install the conversion's version, or re-create the artifact with this one)")


def _kind_of_difference(reference: np.ndarray, actual: np.ndarray) -> str:
    """Tell a per-channel value change (mean/std/rescale), swapped channels and a spatial change (resize) apart."""
    if np.allclose(actual, reference[::-1], atol=1e-5):
        return "the channels are swapped: check channel_order (RGB or BGR)"
    if all(_is_affine(reference[c].ravel(), actual[c].ravel()) for c in range(3)):
        return ("the pixels are where they should be but their values are scaled or shifted per channel: "
                "check mean, std and rescale_factor")
    return ("the values differ from position to position: check the resize (size, resample filter such as "
            "bilinear vs bicubic) and the center crop")


def _is_affine(reference: np.ndarray, actual: np.ndarray) -> bool:
    """Whether actual = a * reference + b, up to float rounding."""
    spread = float(np.ptp(reference))
    if spread == 0:
        return float(np.ptp(actual)) <= 1e-4
    slope, offset = np.polyfit(reference.astype(np.float64), actual.astype(np.float64), 1)
    return float(np.max(np.abs(slope * reference + offset - actual))) <= 1e-4 * max(1.0, abs(slope) * spread)


def spec_changes(recorded: PreprocessSpec, spec: PreprocessSpec) -> str:
    """'mean [0.4, 0.5, 0.5] (made with [0.5, 0.5, 0.5]), …' for the fields that differ; '' when none do."""
    made, now = recorded.to_dict(), spec.to_dict()
    return ", ".join(f"{key} {_show(now[key])} (made with {_show(made[key])})" for key in made if made[key] != now[key])


def _show(value: Any) -> str:
    return "[" + ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) + "]" if isinstance(
        value, (list, tuple)) else str(value)


# -- model parity ----------------------------------------------------------------------------------


def model_inputs(data: SelfCheckData, parities: Sequence[ImageParity], spec: PreprocessSpec) -> list[np.ndarray | None]:
    """What the model runs on, per image: this runtime's tensor where it matches the reference, else the
    tensor the recorded spec gives when that one is the reference (a manifest edited after conversion), else None."""
    inputs = [parity.tensor if parity.passed else None for parity in parities]
    if all(tensor is not None for tensor in inputs) or data.preprocess == spec:
        return inputs
    for position, parity in enumerate(parities):
        if inputs[position] is None:
            again = image_parity(data, parity.image, data.preprocess)
            inputs[position] = again.tensor if again.bit_identical else None
    return inputs


def model_verdict(
    data: SelfCheckData, inputs: Sequence[np.ndarray | None], open_runner: Callable[[], Runner], *, isolated: bool = False
) -> Verdict:
    """Run the model on the reference inputs and judge its outputs against torch's with the stored tolerance."""
    available = [position for position, tensor in enumerate(inputs) if tensor is not None]
    if not available:
        return Verdict("model", NOT_CHECKED, "this runtime cannot reproduce the reference inputs, so the model cannot "
                       "be checked apart from the preprocessing: fix the preprocessing first")
    try:
        run = open_runner()
    except (BackendUnavailableError, ArtifactError) as error:
        return Verdict("model", NOT_CHECKED, str(error))
    outputs = [run(inputs[position][None]) for position in available]
    logits = np.stack([np.asarray(out["logits"], np.float32).reshape(-1) for out in outputs])
    embedding = None
    if data.embedding is not None and all("embedding" in out for out in outputs):
        embedding = np.stack([np.asarray(out["embedding"], np.float32).reshape(-1) for out in outputs])
    metrics = output_metrics(data.logits[available], logits,
                             None if embedding is None else data.embedding[available], embedding)
    failures = judge(metrics, data.model_tolerance)
    where = f"{len(available)} image(s)" + (" fed the reference inputs" if isolated else "") + f" vs {data.reference}"
    details = {**metrics, "tolerance": data.model_tolerance, "failures": failures,
               "per_image": [data.images[position].file for position in available]}
    if failures:
        return Verdict("model", FAILED, f"{where}: {'; '.join(failures)}; the model's outputs differ on this machine "
                       "(another backend version, delegate or accelerator?)", details)
    verdict = "; the model computes what torch did, the preprocessing above is what differs" if isolated else ""
    return Verdict("model", PASSED, f"{where}: {metrics_text(metrics)}{verdict}", details)


def output_metrics(
    reference_logits: np.ndarray, logits: np.ndarray, reference_embedding: np.ndarray | None, embedding: np.ndarray | None
) -> dict[str, Any]:
    """Top-1 agreement, min cosines and the largest logits difference relative to the largest reference logit."""
    if logits.shape != reference_logits.shape:
        raise ArtifactError(f"the model gives {logits.shape[1]} logits, the self-check has {reference_logits.shape[1]}",
                            hint="the self-check belongs to another model; re-create the artifact")
    scale = max(1.0, float(np.max(np.abs(reference_logits))))
    return {
        "images": len(logits),
        "top1_agreement": float(np.mean(np.argmax(logits, 1) == np.argmax(reference_logits, 1))),
        "min_logits_cosine": float(row_cosines(reference_logits, logits).min()),
        "min_embedding_cosine": None if embedding is None else float(row_cosines(reference_embedding, embedding).min()),
        "max_abs_diff": float(np.max(np.abs(logits.astype(np.float64) - reference_logits))) / scale,
    }


_CHECKS = (  # (metric and tolerance key, tolerance key, direction, name)
    ("top1_agreement", "min_top1_agreement", ">=", "top-1 agreement"),
    ("min_logits_cosine", "min_logits_cosine", ">=", "min logits cosine"),
    ("min_embedding_cosine", "min_embedding_cosine", ">=", "min embedding cosine"),
    ("max_abs_diff", "max_abs_diff", "<=", "max abs logits diff (relative)"),
)


def judge(metrics: dict[str, Any], tolerance: dict[str, float | None]) -> list[str]:
    """The metrics that miss their tolerance, as 'name value (needs >= limit)'; a None limit or value is not checked."""
    failures = []
    for metric, key, direction, name in _CHECKS:
        value, limit = metrics.get(metric), tolerance.get(key)
        if value is None or limit is None:
            continue
        if (direction == ">=" and value < limit) or (direction == "<=" and value > limit):
            failures.append(f"{name} {value:.6g} (needs {direction} {limit:g})")
    return failures


def metrics_text(metrics: dict[str, Any]) -> str:
    embedding = metrics["min_embedding_cosine"]
    return (f"top-1 agreement {metrics['top1_agreement']:.0%}, min logits cosine {metrics['min_logits_cosine']:.6f}"
            + ("" if embedding is None else f", min embedding cosine {embedding:.6f}")
            + f", max logits diff {metrics['max_abs_diff']:.2g} of the largest logit")
