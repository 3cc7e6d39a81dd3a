"""The conformance suite, generated from the format registry: every (format, precision) it lists.

Each case converts the tiny model once (the session's shared ``artifact_of``), then checks what every
artifact owes its users: a complete manifest, a validation within the registry's tolerance, the
runtime opening it (or saying why it cannot here), predict and embed agreeing with torch, a manifest
that survives a round trip, a tampered model file refused, and ``vitedge verify`` passing. A new
format is tested by adding its registry row; what is truly format-specific stays in its own file.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import DATA, TINY_LABELS, VALIDATION_SAMPLES
from vitedge._version import __version__
from vitedge.cli import main
from vitedge.errors import ArtifactError, BackendUnavailableError
from vitedge.formats import FORMATS, Format, Tolerance
from vitedge.runtime import Classifier
from vitedge.runtime.images import load_rgb
from vitedge.runtime.manifest import MANIFEST_NAME, SCHEMA, Manifest, read_manifest, sha256_file
from vitedge.runtime.preprocess import preprocess_batch

PHOTOS = [DATA / "astronaut.jpg", DATA / "chelsea.jpg", DATA / "coffee.png"]
#: The conversions the per-format tests always marked slow: TFLite int8-static (PT2E: a torch export,
#: calibration and a second litert-torch conversion; 7 s here) and Core ML palettization (k-means per
#: group; 5-7 s). The other precisions reuse their format's float conversion (fp32: 8-11 s) in 0.1-4 s.
SLOW = {("tflite", "int8-static"), ("coreml", "palettize4"), ("coreml", "palettize6")}


def _case_params() -> list:
    return [
        pytest.param((fmt.name, precision), id=f"{fmt.name}-{precision}",
                     marks=[pytest.mark.slow] if (fmt.name, precision) in SLOW else [])
        for fmt in FORMATS.values()
        for precision in fmt.precision_names
    ]


@dataclass(frozen=True)
class Case:
    fmt: Format
    precision: str
    folder: Path
    tolerance: Tolerance  # what convert applied: vitedge.converters.stages.tolerance_for


@pytest.fixture(scope="module")
def source(tiny_folder):
    from vitedge.converters.loading import load_source

    return load_source(str(tiny_folder))


@pytest.fixture(scope="module", params=_case_params())
def case(request, artifact_of, source) -> Case:
    from vitedge.converters.stages import tolerance_for

    fmt, precision = FORMATS[request.param[0]], request.param[1]
    return Case(fmt, precision, artifact_of(fmt.name, precision), tolerance_for(fmt.support(precision), source))


@pytest.fixture(scope="module")
def reference(source) -> dict[str, np.ndarray]:
    """The torch fp32 logits and embeddings of :data:`PHOTOS`."""
    import torch

    with torch.no_grad():
        logits, embedding = source.two_outputs()(torch.from_numpy(_inputs(source.preprocess)))
    return {"logits": logits.numpy(), "embedding": embedding.numpy()}


def _inputs(spec) -> np.ndarray:
    return preprocess_batch([load_rgb(path) for path in PHOTOS], spec)


def _open(case: Case, **options) -> Classifier:
    """The case's artifact opened by the runtime, or a skip saying why this machine cannot run it."""
    if not case.fmt.backend_supported_here():
        pytest.skip(f"{case.fmt.title} runs only on {', '.join(case.fmt.runtime_systems)}, not {platform.system()}")
    if not case.fmt.backend_installed():
        pytest.skip(f"the {case.fmt.title} backend is not installed: pip install 'vitedge[{case.fmt.install_extra}]'")
    return Classifier.open(case.folder, **options)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


# -- what the conversion wrote ----------------------------------------------------------------------


def test_manifest_describes_the_artifact(case, tiny_folder):
    manifest = read_manifest(case.folder)
    assert manifest.schema == SCHEMA and (manifest.format, manifest.precision) == (case.fmt.name, case.precision)
    assert manifest.model_file == case.fmt.model_file and (case.folder / manifest.model_file).exists()
    on_disk = {str(p.relative_to(case.folder)) for p in case.folder.rglob("*") if p.is_file()} - {MANIFEST_NAME}
    assert {entry.path for entry in manifest.all_files} == on_disk, "the manifest lists every file, and only those"
    assert manifest.selfcheck is not None and all(entry.path.startswith("selfcheck/") for entry in manifest.selfcheck.files)
    for entry in manifest.all_files:
        assert entry.sha256 == sha256_file(case.folder / entry.path) and entry.bytes == (case.folder / entry.path).stat().st_size
    assert (manifest.outputs.logits, manifest.outputs.embedding) == ("logits", "embedding")
    assert (manifest.outputs.num_classes, manifest.outputs.embedding_size) == (4, 64)
    assert [manifest.labels[i] for i in range(4)] == list(TINY_LABELS)
    assert manifest.preprocess.size == (32, 32) and manifest.preprocess.mean == (0.5, 0.5, 0.5)
    image_dims = {"NCHW": (3, 32, 32), "NHWC": (32, 32, 3)}[manifest.input.layout]
    assert manifest.input.shape[1:] == image_dims and manifest.input.dynamic_batch == (manifest.input.shape[0] is None)
    assert manifest.source.weights == "pretrained" and manifest.source.model == str(tiny_folder)
    assert manifest.source.weights_sha256 == sha256_file(tiny_folder / "model.safetensors")
    assert manifest.source.architecture["hidden_size"] == 64
    assert manifest.conversion.vitedge_version == __version__ and "torch" in manifest.conversion.tools
    assert not list(case.folder.parent.glob(".*partial*")), "no work folder left behind"


def test_validation_passed_within_the_registry_tolerance(case):
    report = read_manifest(case.folder).validation
    assert report.passed and not report.failures
    assert report.samples == VALIDATION_SAMPLES and report.reference == "torch fp32"
    assert report.tolerance == dataclasses.asdict(case.tolerance)
    assert report.top1_agreement >= (case.tolerance.min_top1_agreement or 1.0)  # fp32: every top-1 agrees
    simulated = case.fmt.validator is not None and not case.fmt.backend_supported_here()
    assert report.simulated is simulated  # measured by the format's own simulation where it cannot run


def test_manifest_round_trips(case, tmp_path):
    manifest = read_manifest(case.folder)
    written = (case.folder / MANIFEST_NAME).read_text(encoding="utf-8")
    as_json = json.loads(json.dumps(manifest.to_dict()))
    assert json.loads(written) == as_json and Manifest.from_dict(as_json) == manifest
    manifest.write(tmp_path)
    assert read_manifest(tmp_path) == manifest
    assert (tmp_path / MANIFEST_NAME).read_text(encoding="utf-8") == written


# -- the runtime ----------------------------------------------------------------------------------------


def test_the_runtime_opens_it_or_says_why_it_cannot_here(case):
    fmt = case.fmt
    if fmt.backend_supported_here():
        classifier = _open(case)
        assert classifier.manifest == read_manifest(case.folder) and classifier.labels == list(TINY_LABELS)
        return
    systems = ", ".join(fmt.runtime_systems)
    with pytest.raises(BackendUnavailableError,
                       match=re.escape(f"{fmt.title} artifacts run only on {systems}, not {platform.system()}")):
        Classifier.open(case.folder)


def test_predict_and_embed_match_torch(case, reference):
    classifier = _open(case)
    manifest = classifier.manifest
    outputs = classifier.run(_inputs(manifest.preprocess))
    assert _cosines(outputs["logits"], reference["logits"]).min() > case.tolerance.min_logits_cosine
    assert _cosines(outputs["embedding"], reference["embedding"]).min() > (case.tolerance.min_embedding_cosine or 0)
    results = classifier.predict(PHOTOS, top_k=4)
    assert [r.top.index for r in results] == list(np.argmax(outputs["logits"], axis=1))
    for result, logits in zip(results, outputs["logits"]):
        scores = [p.score for p in result.predictions]
        assert scores == sorted(scores, reverse=True) and abs(sum(scores) - 1) < 1e-5
        assert {p.label for p in result.predictions} == set(TINY_LABELS)
        assert result.predictions[0].score == pytest.approx(float(np.exp(logits.max()) / np.exp(logits).sum()), abs=1e-5)
    embeddings = classifier.embed(PHOTOS)
    assert np.asarray(embeddings).shape == (3, 64)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(embeddings), axis=1), 1, atol=1e-5)


def test_batches_of_mixed_images_match_single_calls_and_a_bad_one_fails_alone(case):
    classifier = _open(case, batch_size=8, num_threads=1)
    odd = np.random.default_rng(0).integers(0, 255, (7, 300, 3), dtype=np.uint8)
    images = [*PHOTOS, odd, Image.open(PHOTOS[1]).resize((40, 90)), b"not an image"]
    batch = classifier.predict(images, top_k=2)
    assert [r.ok for r in batch] == [True] * 5 + [False]
    # dynamic int8 quantizes activations with ranges of the whole batch: a batch may differ a little
    atol = 1e-6 if classifier.backend.max_batch_size == 1 or "dynamic" not in case.precision else 2e-2
    for result, image in zip(batch[:5], images[:5]):
        single = classifier.predict(image, top_k=2)
        assert [p.index for p in result.predictions] == [p.index for p in single.predictions]
        assert np.allclose([p.score for p in result.predictions], [p.score for p in single.predictions], atol=atol)
    embeddings = classifier.embed(images)
    assert np.asarray(embeddings).shape == (5, 64) and len(embeddings.errors) == 1


# -- integrity: tampering and `vitedge verify` ------------------------------------------------------------


def test_a_tampered_model_file_is_refused_by_the_runtime_and_by_verify(case, tmp_path, capsys):
    copy = Path(shutil.copytree(case.folder, tmp_path / "tampered"))
    weights = max(read_manifest(copy).files, key=lambda entry: entry.bytes)  # the model file (or its weights)
    data = bytearray((copy / weights.path).read_bytes())
    data[len(data) // 2] ^= 1
    (copy / weights.path).write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="sha256 checksum mismatch"):
        Classifier.open(copy)
    assert main(["verify", str(copy)]) == 1
    printed, errors = capsys.readouterr()
    assert printed == "" and errors.count("\n") == 1 and "Traceback" not in errors
    assert errors.startswith("vitedge: error: ") and f"{weights.path}: sha256 checksum mismatch" in errors


def test_verify_passes_on_the_artifact_as_converted(case, tiny_folder, capsys):
    assert main(["verify", str(case.folder), "--samples", "8"]) == 0
    lines = capsys.readouterr().out.splitlines()
    manifest = read_manifest(case.folder)
    assert lines[0] == f"checksums: OK ({len(manifest.files)} file(s) and the self-check's {len(manifest.selfcheck.files)} match the manifest)"
    assert lines[1].startswith("preprocessing parity: OK: 7 images, tensors bit-identical")
    runs_here = case.fmt.backend_supported_here() and case.fmt.backend_installed()
    assert lines[2].startswith("model parity: OK: 7 image(s) vs torch fp32" if runs_here else "model parity: not checked")
    simulated = " (simulated)" if manifest.validation.simulated else ""
    assert lines[-1].startswith(f"parity against {tiny_folder}: PASSED{simulated} vs torch fp32 on 8 ")
