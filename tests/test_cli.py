"""The CLI as a user runs it: output shapes, exit codes, one-line errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tests.conftest import DATA, TINY_LABELS
from vitedge.cli import main
from vitedge.formats import FORMATS


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_predict_prints_labels_and_scores(capsys, tiny_artifact):
    code, out, err = run(capsys, "predict", str(tiny_artifact), str(DATA / "astronaut.jpg"), "--top-k", "2")
    assert code == 0 and err == ""
    lines = out.strip().splitlines()
    assert lines[0].endswith("astronaut.jpg") and len(lines) == 3
    assert any(label in lines[1] for label in TINY_LABELS) and "%" in lines[1]


def test_predict_json_shape_and_partial_failure(capsys, tiny_artifact, image_dir):
    code, out, err = run(capsys, "predict", str(tiny_artifact), str(image_dir), str(DATA / "coffee.png"), "--json", "--top-k", "3")
    assert code == 1, "an unreadable image makes the exit code non-zero"
    results = json.loads(out)
    assert [r["image"] for r in results] == sorted(str(p) for p in image_dir.iterdir()) + [str(DATA / "coffee.png")]
    for result in results:
        if "corrupt" in result["image"]:
            assert set(result) == {"image", "error"} and "e_corrupt.jpg" in result["error"]
        else:
            assert set(result) == {"image", "predictions"} and len(result["predictions"]) == 3
            assert set(result["predictions"][0]) == {"label", "index", "score"}


def test_random_init_is_flagged_in_text_and_json(capsys, preset_artifact):
    code, out, err = run(capsys, "predict", str(preset_artifact), str(DATA / "chelsea.jpg"))
    assert code == 0 and "random-init" in err and "random-init" in out
    code, out, _ = run(capsys, "predict", str(preset_artifact), str(DATA / "chelsea.jpg"), "--json")
    assert "random-init" in json.loads(out)[0]["warning"]


def test_embed_writes_npy_and_the_row_order(capsys, tiny_artifact, image_dir, tmp_path):
    out_file = tmp_path / "emb" / "embeddings.npy"
    code, out, err = run(capsys, "embed", str(tiny_artifact), str(image_dir), "--out", str(out_file))
    assert code == 1 and "e_corrupt.jpg" in err
    vectors = np.load(out_file)
    index = json.loads(out_file.with_suffix(".json").read_text())
    assert vectors.shape == (4, 64) and index["shape"] == [4, 64] and len(index["images"]) == 4
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert index["errors"][0]["image"].endswith("e_corrupt.jpg")


def test_inspect_and_verify(capsys, tiny_artifact, tmp_path):
    code, out, _ = run(capsys, "inspect", str(tiny_artifact))
    assert code == 0 and "onnx" in out and "PASSED" in out and "apple" in out
    code, out, _ = run(capsys, "inspect", str(tiny_artifact), "--json")
    assert json.loads(out)["schema"] == "vitedge.artifact/1"
    code, out, _ = run(capsys, "verify", str(tiny_artifact))
    assert code == 0 and "checksums: OK" in out and "parity against" in out and "PASSED" in out
    copy = shutil.copytree(tiny_artifact, tmp_path / "copy")
    data = bytearray((copy / "model.onnx").read_bytes())
    data[-100] ^= 1
    (copy / "model.onnx").write_bytes(bytes(data))
    code, out, err = run(capsys, "verify", str(copy))
    assert code == 1 and "checksum mismatch" in err and "Traceback" not in err
    code, out, err = run(capsys, "predict", str(copy), str(DATA / "coffee.png"))
    assert code == 1 and "checksum mismatch" in err


def test_verify_without_a_reachable_source_still_checks_checksums(capsys, tiny_artifact, tmp_path):
    copy = shutil.copytree(tiny_artifact, tmp_path / "copy")
    data = json.loads((copy / "manifest.json").read_text())
    data["source"]["model"] = str(tmp_path / "gone")
    (copy / "manifest.json").write_text(json.dumps(data))
    code, out, _ = run(capsys, "verify", str(copy))
    assert code == 0 and "checksums: OK" in out and "parity: not checked" in out


def test_formats_lists_the_registry(capsys):
    code, out, _ = run(capsys, "formats")
    for fmt in FORMATS.values():
        for precision in fmt.precision_names:
            assert any(line.startswith(fmt.name) and precision in line for line in out.splitlines())
    code, out, _ = run(capsys, "formats", "--json")
    assert [f["format"] for f in json.loads(out)] == list(FORMATS)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["predict", "no/such/artifact", "x.jpg"], "no such artifact folder"),
        (["convert", "preset:vit-tiny-patch16-224", "--to", "onxx", "--out", "x"], "did you mean 'onnx'"),
        (["convert", "preset:vit-tiny-patch16-224", "--to", "onnx", "--precision", "int3", "--out", "x"], "unknown precision"),
        (["predict"], "the following arguments are required: artifact;"),  # images may give way to --watch
        (["embed"], "the following arguments are required: artifact, images, --out;"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_errors_are_one_line_without_traceback(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code != 0 and message in err
    assert err.startswith("vitedge: error:") and err.count("\n") == 1 and "Traceback" not in err


def test_existing_output_needs_overwrite(capsys, tiny_artifact, tiny_folder):
    code, _, err = run(capsys, "convert", str(tiny_folder), "--to", "onnx", "--out", str(tiny_artifact))
    assert code == 2 and "already exists" in err and "--overwrite" in err


def test_debug_shows_the_traceback(capsys):
    code, _, err = run(capsys, "predict", "no/such/artifact", "x.jpg", "--debug")
    assert code == 1 and "Traceback" in err


def test_convert_prints_where_and_how_well(capsys, tiny_folder, tmp_path):
    code, out, _ = run(capsys, "convert", str(tiny_folder), "--to", "onnx", "--out", str(tmp_path / "a"),
                       "--validation-samples", "4")
    assert code == 0 and f"wrote {tmp_path / 'a'}" in out and "PASSED" in out


def test_debug_shows_the_cause_of_a_corrupt_model(capsys, tiny_artifact, tmp_path):
    copy = shutil.copytree(tiny_artifact, tmp_path / "copy")
    model = copy / "model.onnx"
    model.write_bytes(b"\xff" * model.stat().st_size)  # same size: only the (skipped) sha256 would notice
    argv = ["predict", str(copy), str(DATA / "coffee.png"), "--no-verify"]
    code, _, err = run(capsys, *argv)
    assert code == 1 and err.startswith("vitedge: error:") and "onnxruntime cannot load it" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    code, _, err = run(capsys, *argv, "--debug")
    assert code == 1 and "Traceback" in err and "onnxruntime cannot load it" in err
    assert "The above exception was the direct cause" in err and "InvalidProtobuf" in err  # onnxruntime's own error


def test_the_cli_reads_its_defaults_from_the_options_and_settings(capsys, monkeypatch):
    from dataclasses import dataclass

    import vitedge.cli as cli
    from vitedge.benchmarks.results import BenchSettings
    from vitedge.converters.export_types import DEFAULT_VALIDATION_SAMPLES, ExportOptions
    from vitedge.runtime.classifier import DEFAULT_BATCH_SIZE

    defaults = ExportOptions()
    args = cli.build_parser().parse_args(["convert", "m", "--to", "onnx", "--out", "o"])
    assert (args.opset, args.exporter, args.graph, args.input_type, args.precision) == (
        defaults.opset, defaults.exporter, defaults.graph, defaults.input_type, defaults.precision)
    assert args.validation_samples == DEFAULT_VALIDATION_SAMPLES
    assert cli.build_parser().parse_args(["verify", "a"]).samples == DEFAULT_VALIDATION_SAMPLES
    assert cli.build_parser().parse_args(["predict", "a", "x.jpg"]).batch_size == DEFAULT_BATCH_SIZE
    bench = cli.build_parser().parse_args(["bench", "a"])
    settings = BenchSettings()
    assert (bench.warmup, bench.runs, bench.rounds, bench.timeout) == (
        settings.warmup, settings.runs, settings.rounds, settings.timeout_s)
    assert cli._batch_sizes(bench.batch_sizes) == settings.batch_sizes

    @dataclass(frozen=True)
    class Changed(ExportOptions):
        opset: int = 99
        calibration_samples: int = 77

    monkeypatch.setattr(cli, "ExportOptions", Changed)
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["convert", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "ONNX opset (default 99)" in help_text and "how many calibration images (default 77)" in help_text
    assert f"held-out inputs to validate on (default {DEFAULT_VALIDATION_SAMPLES})" in help_text


def _impossible_tolerance(monkeypatch, precision):
    """Make ONNX ``precision`` miss its tolerance whatever the model (as a 4-bit model can, for real)."""
    from dataclasses import replace

    import vitedge.converters.pipeline as pipeline
    from vitedge.formats import PrecisionSupport, Tolerance

    onnx = FORMATS["onnx"]
    impossible = PrecisionSupport(precision, Tolerance(max_abs_diff=0.0, min_logits_cosine=1.0000001))
    strict = replace(onnx, precisions=tuple(impossible if p.precision == precision else p for p in onnx.precisions))
    monkeypatch.setattr(pipeline, "get_format", lambda name: strict)


def test_a_refused_reduced_precision_says_what_to_try(capsys, tiny_folder, tmp_path, monkeypatch):
    _impossible_tolerance(monkeypatch, "int4-weight")
    code, out, err = run(capsys, "convert", str(tiny_folder), "--to", "onnx", "--precision", "int4-weight",
                         "--out", str(tmp_path / "a"), "--validation-samples", "4")
    error = err.strip().splitlines()[-1]
    assert code == 1 and error.startswith("vitedge: error:") and "does not match the torch fp32 model" in error
    assert "nothing was written" in error and "--precision int8-dynamic or fp16" in error
    assert "--max-accuracy-drop" in error and "--accept-failed-validation" in error
    assert not (tmp_path / "a").exists()


def test_accept_failed_validation_writes_the_artifact_and_records_the_failure(capsys, tiny_folder, tmp_path, monkeypatch):
    from vitedge.runtime import Classifier
    from vitedge.runtime.manifest import read_manifest

    _impossible_tolerance(monkeypatch, "int4-weight")
    out_dir = tmp_path / "a"
    with pytest.warns(UserWarning, match=f"^{out_dir}: written although it does not match .*its manifest records"):
        code, out, err = run(capsys, "convert", str(tiny_folder), "--to", "onnx", "--precision", "int4-weight",
                             "--out", str(out_dir), "--validation-samples", "4", "--accept-failed-validation")
    assert code == 0 and f"wrote {out_dir}" in out and "validation: FAILED: " in out
    validation = json.loads((out_dir / "manifest.json").read_text())["validation"]
    assert validation["passed"] is False and validation["failures"]
    assert read_manifest(out_dir).validation.failures == tuple(validation["failures"])
    code, out, _ = run(capsys, "inspect", str(out_dir))
    assert code == 0 and "validation    FAILED: " in out
    result = Classifier.open(out_dir).predict(str(DATA / "coffee.png"), top_k=1)
    assert result.ok and result.top.label in TINY_LABELS
