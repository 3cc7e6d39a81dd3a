"""Every artifact carries a self-check (selfcheck/) that `vitedge verify` runs without torch: preprocessing parity and
model parity against what the conversion computed, with the tolerance its precision passed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.test_runtime_isolation import BLOCKER
from vitedge.cli import main
from vitedge.data.selfcheck_images import selfcheck_images
from vitedge.errors import ArtifactError
from vitedge.formats import FP32_TOLERANCE
from vitedge.runtime import Classifier
from vitedge.runtime import preprocess as preprocess_module
from vitedge.runtime import selfcheck as selfcheck_module
from vitedge.runtime.images import load_rgb
from vitedge.runtime.manifest import MANIFEST_NAME, read_manifest, sha256_file
from vitedge.runtime.preprocess import preprocess
from vitedge.runtime.preprocess_spec import PreprocessSpec
from vitedge.runtime.selfcheck import FAILED, NOT_CHECKED, PASSED, judge, run_selfcheck
from vitedge.runtime.selfcheck_files import SELFCHECK_DIR, TENSOR_TOLERANCE, read_selfcheck, write_selfcheck


def _copy(artifact: Path, tmp_path: Path, name: str = "copy") -> Path:
    return Path(shutil.copytree(artifact, tmp_path / name))


def _edit_manifest(folder: Path, edit) -> None:
    data = json.loads((folder / MANIFEST_NAME).read_text("utf-8"))
    edit(data)
    (folder / MANIFEST_NAME).write_text(json.dumps(data), encoding="utf-8")


def _verify_json(capsys, folder: Path) -> tuple[int, dict]:
    code = main(["verify", str(folder), "--json"])
    return code, json.loads(capsys.readouterr().out)


# -- what convert writes ------------------------------------------------------------------------------


def test_convert_writes_a_selfcheck_listed_with_checksums(tiny_artifact):
    manifest = read_manifest(tiny_artifact)
    assert manifest.selfcheck is not None and manifest.selfcheck.index == f"{SELFCHECK_DIR}/index.json"
    assert [entry.path for entry in manifest.files] == ["model.onnx"], "the model's files stay the model's"
    for entry in manifest.selfcheck.files:
        assert entry.sha256 == sha256_file(tiny_artifact / entry.path)
    data = read_selfcheck(tiny_artifact, manifest)
    encodings = {image.encoded_as for image in data.images}
    modes = {image.mode for image in data.images}
    assert encodings == {"PNG", "JPEG"} and {"RGB", "L", "RGBA", "P"} <= modes
    assert any(image.width >= 5 * image.height for image in data.images), "a wide odd-sized image"
    assert data.preprocess == manifest.preprocess and data.reference == "torch fp32"
    assert data.model_tolerance == manifest.validation.tolerance
    assert data.logits.shape == (len(data.images), 4) and data.embedding.shape == (len(data.images), 64)
    assert data.made_with["at_conversion"]["model"]["status"] == PASSED


def test_the_references_are_the_torch_models_outputs_for_the_runtimes_tensors(tiny_folder, tiny_artifact):
    torch = pytest.importorskip("torch")
    from vitedge.converters.loading import load_source

    data = read_selfcheck(tiny_artifact, read_manifest(tiny_artifact))
    source = load_source(str(tiny_folder))
    wrapper = source.two_outputs()
    for position, image in enumerate(data.images):
        tensor = preprocess(load_rgb(data.image_bytes(image)), source.preprocess)
        with torch.inference_mode():
            logits, embedding = wrapper(torch.from_numpy(tensor[None]))
        np.testing.assert_allclose(data.logits[position], logits[0].numpy(), rtol=0, atol=1e-5)
        np.testing.assert_allclose(data.embedding[position], embedding[0].numpy(), rtol=0, atol=1e-5)


def test_the_selfcheck_stays_a_few_hundred_kb_for_a_384_model_with_1000_classes(tmp_path):
    """The budget: ViT-L/16-384 (1024-d embedding, 1000 ImageNet classes) is the largest preset."""
    spec = PreprocessSpec(size=(384, 384))
    images = selfcheck_images()
    tensors = [preprocess(load_rgb(image.data), spec) for image in images]
    rng = np.random.default_rng(0)
    files = write_selfcheck(tmp_path, images=images, spec=spec, tensors=tensors,
                            logits=rng.standard_normal((len(images), 1000)).astype(np.float32),
                            embedding=rng.standard_normal((len(images), 1024)).astype(np.float32),
                            reference="torch fp32", model_tolerance={}, made_with={})
    total = sum(entry.bytes for entry in files.files)
    assert total < 300_000, f"the self-check of a 384x384, 1000-class model is {total} bytes"


# -- verify: both verdicts, without torch ----------------------------------------------------------------


def test_verify_runs_the_selfcheck_with_torch_blocked(tiny_artifact):
    """On a Raspberry Pi with only vitedge[onnx]: both verdicts, exit code 0, --json."""
    script = BLOCKER + f"from vitedge.cli import main; raise SystemExit(main(['verify', {str(tiny_artifact)!r}, '--json']))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] and report["checksums"]["selfcheck_files"] == len(read_manifest(tiny_artifact).selfcheck.files)
    assert report["selfcheck"]["preprocessing"]["status"] == PASSED
    assert report["selfcheck"]["preprocessing"]["bit_identical"] == report["selfcheck"]["preprocessing"]["images"] == 7
    assert report["selfcheck"]["model"]["status"] == PASSED and report["selfcheck"]["model"]["min_logits_cosine"] > 0.9999
    assert report["parity"]["status"] == "not checked" and "vitedge[convert]" in report["parity"]["reason"]


def test_verify_prints_both_verdicts(tiny_artifact, capsys):
    assert main(["verify", str(tiny_artifact), "--samples", "4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "preprocessing parity: OK: 7 images, tensors bit-identical to the conversion's"
    assert lines[2].startswith("model parity: OK: 7 image(s) vs torch fp32: top-1 agreement 100%")


# -- integrity and old artifacts ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["index.json", "samples.f32", "logits.f32", "2_triangle_rgb.jpg"])
def test_a_tampered_selfcheck_file_is_refused_like_a_tampered_model(tiny_artifact, tmp_path, capsys, name):
    copy = _copy(tiny_artifact, tmp_path)
    path = copy / SELFCHECK_DIR / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=f"{name}: sha256 checksum mismatch"):
        Classifier.open(copy)
    assert main(["verify", str(copy)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and f"{name}: sha256 checksum mismatch" in err


def test_a_missing_selfcheck_file_is_named(tiny_artifact, tmp_path):
    copy = _copy(tiny_artifact, tmp_path)
    (copy / SELFCHECK_DIR / "logits.f32").unlink()
    with pytest.raises(ArtifactError, match="logits.f32: self-check file missing"):
        Classifier.open(copy)


def test_an_artifact_made_before_selfchecks_loads_and_verify_says_how_to_add_one(tiny_artifact, tmp_path, capsys):
    copy = _copy(tiny_artifact, tmp_path, "old")
    shutil.rmtree(copy / SELFCHECK_DIR)
    _edit_manifest(copy, lambda data: data.pop("selfcheck"))
    assert Classifier.open(copy).predict(np.zeros((8, 8, 3), np.uint8)).ok
    code, report = _verify_json(capsys, copy)
    assert code == 0 and report["ok"] and report["selfcheck"]["present"] is False
    hint = report["selfcheck"]["hint"]
    assert "before vitedge wrote self-checks" in hint and "vitedge convert" in hint and "--to onnx --precision fp32" in hint
    assert main(["verify", str(copy)]) == 0
    assert "self-check: not possible: it was made before" in capsys.readouterr().out


def test_an_index_naming_an_unlisted_file_is_refused(tiny_artifact, tmp_path):
    copy = _copy(tiny_artifact, tmp_path)
    index_path = copy / SELFCHECK_DIR / "index.json"
    index = json.loads(index_path.read_text("utf-8"))
    index["logits"]["file"] = "../model.onnx"
    index_path.write_text(json.dumps(index), encoding="utf-8")
    _edit_manifest(copy, lambda data: [entry.update(sha256=sha256_file(index_path), bytes=index_path.stat().st_size)
                                       for entry in data["selfcheck"]["files"] if entry["path"].endswith("index.json")])
    with pytest.raises(ArtifactError, match="is not one of the self-check files the manifest lists"):
        run_selfcheck(copy)


# -- planted faults: the preprocessing, not the model --------------------------------------------------------


def test_a_planted_mean_std_fault_fails_preprocessing_and_clears_the_model(tiny_artifact, tmp_path, capsys):
    copy = _copy(tiny_artifact, tmp_path)

    def imagenet_statistics(data):
        data["preprocess"]["mean"] = [0.485, 0.456, 0.406]
        data["preprocess"]["std"] = [0.229, 0.224, 0.225]

    _edit_manifest(copy, imagenet_statistics)
    code, report = _verify_json(capsys, copy)
    assert code == 1 and not report["ok"]
    preprocessing, model = report["selfcheck"]["preprocessing"], report["selfcheck"]["model"]
    assert preprocessing["status"] == FAILED and preprocessing["max_abs_diff"] > 0.1
    assert "preprocessing differs from the conversion's on 7 of 7 images (worst: " in preprocessing["summary"]
    assert "mean [0.485, 0.456, 0.406] (made with [0.5, 0.5, 0.5])" in preprocessing["summary"]
    assert model["status"] == PASSED and "the preprocessing above is what differs" in model["summary"]


def test_a_planted_bicubic_resize_fails_preprocessing_and_says_check_the_resize(tiny_artifact, monkeypatch):
    """A runtime whose 'bilinear' resize is bicubic (a port's bug), the manifest untouched."""
    monkeypatch.setitem(preprocess_module._PIL_FILTERS, "bilinear", Image.Resampling.BICUBIC)
    report = run_selfcheck(tiny_artifact)
    assert not report.ok and report.preprocessing.status == FAILED
    assert "preprocessing differs" in report.preprocessing.summary
    assert "check the resize (size, resample filter such as bilinear vs bicubic)" in report.preprocessing.summary
    assert report.model.status == NOT_CHECKED and "fix the preprocessing first" in report.model.summary


def test_scaled_values_point_at_mean_std_and_swapped_channels_at_channel_order(tiny_artifact, monkeypatch):
    real = selfcheck_module.preprocess
    monkeypatch.setattr(selfcheck_module, "preprocess", lambda image, spec: real(image, spec) * 1.1 + 0.05)
    assert "check mean, std and rescale_factor" in run_selfcheck(tiny_artifact).preprocessing.summary
    monkeypatch.setattr(selfcheck_module, "preprocess", lambda image, spec: np.ascontiguousarray(real(image, spec)[::-1]))
    assert "check channel_order" in run_selfcheck(tiny_artifact).preprocessing.summary


def test_a_different_jpeg_decoder_is_named(tiny_artifact, monkeypatch):
    real = selfcheck_module.load_rgb

    def off_by_one_jpeg(data, **kwargs):
        image = real(data, **kwargs)
        if bytes(data[:2]) != b"\xff\xd8":
            return image
        pixels = np.asarray(image).astype(np.int16)
        return Image.fromarray(np.clip(pixels + 1, 0, 255).astype(np.uint8))

    monkeypatch.setattr(selfcheck_module, "load_rgb", off_by_one_jpeg)
    report = run_selfcheck(tiny_artifact)
    assert report.preprocessing.status == FAILED and "on 1 of 7 images" in report.preprocessing.summary
    assert "only JPEG images differ: this platform's JPEG decoder differs from Pillow's" in report.preprocessing.summary


def test_a_model_fault_fails_model_parity_not_preprocessing(tiny_artifact):
    classifier = Classifier.open(tiny_artifact)

    def noisy(batch):
        outputs = classifier.run(batch)
        return {**outputs, "logits": outputs["logits"] + np.float32(0.3) * np.arange(outputs["logits"].shape[1])}

    report = run_selfcheck(tiny_artifact, runner=noisy)
    assert report.preprocessing.status == PASSED and report.model.status == FAILED
    assert "min logits cosine" in report.model.summary and "the model's outputs differ on this machine" in report.model.summary


# -- reduced precisions: their own tolerance ------------------------------------------------------------


@pytest.mark.slow
def test_a_reduced_precision_is_judged_by_the_tolerance_it_passed_not_fp32s(artifact_of):
    artifact = artifact_of("onnx", "int8-dynamic")
    manifest = read_manifest(artifact)
    data = read_selfcheck(artifact, manifest)
    assert data.model_tolerance["min_logits_cosine"] == manifest.validation.tolerance["min_logits_cosine"] < 0.9999
    report = run_selfcheck(artifact)
    assert report.ok and report.model.status == PASSED
    fp32 = {key: getattr(FP32_TOLERANCE, key) for key in FP32_TOLERANCE.__dataclass_fields__}
    assert judge(report.model.details, fp32), "int8 would miss fp32's tolerance: the stored one must be what judges it"


def test_the_preprocessing_tolerance_is_tight(tiny_artifact):
    assert read_selfcheck(tiny_artifact, read_manifest(tiny_artifact)).tensor_tolerance == TENSOR_TOLERANCE == 1e-5


# -- vitedge bench: the same check per device ------------------------------------------------------------


def test_bench_runs_the_selfcheck_once_per_target_and_a_merged_report_shows_which_device_drifts(tiny_artifact, tmp_path):
    import dataclasses

    from vitedge.benchmarks.bench import BenchTarget, run_bench
    from vitedge.benchmarks.report_md import markdown_report
    from vitedge.benchmarks.results import BenchSettings, load_runs, save_runs

    settings = BenchSettings(threads=1, batch_sizes=(1,), warmup=0, runs=2, rounds=2, timeout_s=120)
    run = run_bench([BenchTarget(str(tiny_artifact))], settings=settings, data=None, device="laptop", title="tiny")
    row = run.results[0]
    assert row.ok and row.selfcheck["ok"] and row.selfcheck["preprocessing"]["bit_identical"] == 7
    assert row.selfcheck["model"]["status"] == PASSED and "per_image" not in row.selfcheck["model"]
    saved = save_runs([run], tmp_path / "laptop.json")
    assert load_runs(saved)[0].results[0].selfcheck == row.selfcheck, "the results file keeps it"
    # A second device whose preprocessing drifts (as its own self-check reports it)
    drifting = dict(row.selfcheck, ok=False, preprocessing={**row.selfcheck["preprocessing"], "status": FAILED,
                                                            "summary": "differs on 7 of 7 images"})
    pi = dataclasses.replace(run, device="raspberry-pi", results=(dataclasses.replace(row, selfcheck=drifting),))
    report = markdown_report([run, pi])
    assert "| artifact | laptop self-check | raspberry-pi self-check |" in report
    assert f"| {row.name} | ok | preprocessing differs |" in report
    assert "self-check preprocessing parity failed: differs on 7 of 7 images" in report


def test_a_resize_miss_names_the_pillow_versions_when_they_differ(tiny_artifact, tmp_path, monkeypatch):
    """Pillow 13 runs some resizes vertical pass first: an artifact made with another Pillow says so."""
    copy = _copy(tiny_artifact, tmp_path)
    index_path = copy / SELFCHECK_DIR / "index.json"
    index = json.loads(index_path.read_text("utf-8"))
    index["made_with"]["pillow"] = "12.2.0"
    index_path.write_text(json.dumps(index), encoding="utf-8")
    monkeypatch.setitem(preprocess_module._PIL_FILTERS, "bilinear", Image.Resampling.BICUBIC)
    summary = run_selfcheck(copy).preprocessing.summary
    assert "check the resize" in summary and "the self-check was made with Pillow 12.2.0, this machine has Pillow" in summary


def test_verify_json_reports_a_tampered_artifact_as_json(tiny_artifact, tmp_path, capsys):
    copy = _copy(tiny_artifact, tmp_path)
    path = copy / SELFCHECK_DIR / "logits.f32"
    path.write_bytes(path.read_bytes()[:-4] + b"\0\0\0\0")
    code, report = _verify_json(capsys, copy)
    assert code == 1 and report["ok"] is False and "logits.f32: sha256 checksum mismatch" in report["error"]
