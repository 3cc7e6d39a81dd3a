"""The conversion pipeline: loading sources, ONNX export, validation, atomic artifacts."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import onnx
import pytest

from tests.conftest import write_tiny_folder
from vitedge.converters import convert, load_source
from vitedge.converters.presets import PRESETS
from vitedge.errors import ModelLoadError, UsageError, ValidationFailedError
from vitedge.formats import FORMATS, Tolerance
from vitedge.runtime.manifest import read_manifest, sha256_file


def test_onnx_fp32_manifest_has_a_dynamic_batch_input_and_exact_validation(tiny_artifact):
    """What every artifact's manifest holds is checked for every format in test_conformance.py."""
    manifest = read_manifest(tiny_artifact)
    assert [entry.path for entry in manifest.files] == ["model.onnx"]
    assert manifest.input.name == "pixel_values" and manifest.input.shape == (None, 3, 32, 32)
    assert manifest.input.dynamic_batch
    assert {"torch", "onnx"} <= set(manifest.conversion.tools)
    report = manifest.validation
    assert report.min_logits_cosine > 0.9999 and report.min_embedding_cosine > 0.9999
    assert report.max_abs_diff_logits < 1e-3 and report.top1_agreement == 1.0


def test_onnx_graph_has_two_outputs_dynamic_batch_and_layernorm(tiny_artifact):
    model = onnx.load(str(tiny_artifact / "model.onnx"))
    assert model.opset_import[0].version >= 17
    assert [o.name for o in model.graph.output] == ["logits", "embedding"]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    ops = {node.op_type for node in model.graph.node}
    assert "LayerNormalization" in ops


def test_onnx_matches_torch_on_odd_batch_sizes(tiny_artifact, tiny_folder):
    import onnxruntime as ort
    import torch

    source = load_source(str(tiny_folder))
    session = ort.InferenceSession(str(tiny_artifact / "model.onnx"))
    for batch in (1, 3, 9):
        x = np.random.default_rng(batch).standard_normal((batch, 3, 32, 32)).astype(np.float32)
        logits, embedding = session.run(None, {"pixel_values": x})
        with torch.no_grad():
            ref_logits, ref_embedding = source.two_outputs()(torch.from_numpy(x))
        np.testing.assert_allclose(logits, ref_logits.numpy(), atol=1e-4)
        np.testing.assert_allclose(embedding, ref_embedding.numpy(), atol=1e-4)


def test_embedding_is_the_final_layernorm_cls_state(tiny_folder):
    import torch

    source = load_source(str(tiny_folder))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        logits, embedding = source.two_outputs()(x)
        hidden = source.model(pixel_values=x, output_hidden_states=True)
        expected = source.model.vit.layernorm(hidden.hidden_states[-1])[:, 0]
        torch.testing.assert_close(embedding, expected)
        torch.testing.assert_close(logits, hidden.logits)


def test_deit_converts_and_validates(tmp_path):
    folder = write_tiny_folder(tmp_path / "deit", model_type="deit")
    result = convert(str(folder), to="onnx", out=tmp_path / "art", validation_samples=8)
    assert result.validation.passed and result.manifest.source.architecture["model_type"] == "deit"


def test_preset_artifact_is_random_init_with_the_preset_architecture(preset_artifact):
    manifest = read_manifest(preset_artifact)
    assert manifest.source.weights == "random-init" and manifest.is_random_init
    assert manifest.source.model == "preset:vit-tiny-patch16-224" and manifest.source.seed == 0
    arch = manifest.source.architecture
    assert (arch["hidden_size"], arch["num_hidden_layers"], arch["num_attention_heads"]) == (192, 12, 3)
    assert manifest.outputs.num_classes == 1000 and len(manifest.labels) == 1000
    assert manifest.input.shape == (None, 3, 224, 224) and manifest.validation.passed


GOOGLE_CONFIGS = {  # from the hub config.json files of the google checkpoints
    "vit-base-patch16-224": (768, 12, 12, 3072, 224, 16),
    "vit-large-patch16-384": (1024, 24, 16, 4096, 384, 16),
    "vit-tiny-patch16-224": (192, 12, 3, 768, 224, 16),
    "vit-small-patch16-224": (384, 12, 6, 1536, 224, 16),
}


@pytest.mark.parametrize("name", sorted(GOOGLE_CONFIGS))
def test_presets_match_reference_configs(name):
    preset = PRESETS[name]
    got = (preset.hidden_size, preset.num_hidden_layers, preset.num_attention_heads,
           preset.intermediate_size, preset.image_size, preset.patch_size)
    assert got == GOOGLE_CONFIGS[name] and preset.num_labels == 1000


def test_presets_are_reproducible_from_their_seed():
    a = load_source("preset:vit-tiny-patch16-224", seed=3)
    b = load_source("preset:vit-tiny-patch16-224", seed=3)
    c = load_source("preset:vit-tiny-patch16-224", seed=4)
    assert a.info.weights_sha256 == b.info.weights_sha256 != c.info.weights_sha256


def test_unknown_preset_suggests_the_closest():
    with pytest.raises(UsageError, match="did you mean 'vit-base-patch16-224'"):
        load_source("preset:vit-base-patch16-244")


def test_existing_output_needs_overwrite(tiny_folder, tiny_artifact, tmp_path):
    with pytest.raises(UsageError, match="already exists.*--overwrite"):
        convert(str(tiny_folder), to="onnx", out=tiny_artifact)
    out = tmp_path / "again"
    convert(str(tiny_folder), to="onnx", out=out, validation_samples=4)
    first = read_manifest(out).conversion.created
    convert(str(tiny_folder), to="onnx", out=out, overwrite=True, validation_samples=4)
    assert read_manifest(out).validation.passed and read_manifest(out).conversion.created >= first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again"]


def test_overwrite_never_deletes_a_folder_that_is_not_an_artifact(tiny_folder, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(UsageError, match="not a vitedge artifact"):
        convert(str(tiny_folder), to="onnx", out=tmp_path / "mine", overwrite=True)
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


@pytest.mark.parametrize("failure", [RuntimeError("exporter exploded"), KeyboardInterrupt()])
def test_a_failed_or_interrupted_conversion_leaves_nothing(tiny_folder, tmp_path, monkeypatch, failure):
    import vitedge.converters.stages as stages

    def broken(*args, **kwargs):
        raise failure

    monkeypatch.setattr(stages, "validator_for", lambda fmt: broken)
    with pytest.raises(type(failure)):
        convert(str(tiny_folder), to="onnx", out=tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_work_folders_of_killed_conversions_are_removed_by_the_next_one(tmp_path):
    """A SIGKILLed conversion (OOM) cannot clean up; the next one to the same place does, sparing live ones."""
    from vitedge.converters.atomic import _prefix, atomic_folder

    out = tmp_path / "vit-int8"
    dead = _finished_pid()
    stale = [tmp_path / f"{_prefix(out, kind, dead)}abcd" for kind in ("partial", "old")]
    live = tmp_path / f"{_prefix(out, 'partial', os.getppid())}efgh"  # our parent runs
    elsewhere = tmp_path / f".{out.name}.partial-otherhost-{dead}-ijkl"  # maybe a live job on a shared disk
    other = tmp_path / f".{out.name}2.partial-{dead}"  # another artifact's folder
    for folder in (*stale, live, elsewhere, other):
        folder.mkdir()
    with atomic_folder(out, overwrite=False) as work:
        (work / "manifest.json").write_text("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, live.name, elsewhere.name, other.name])


def _finished_pid() -> int:
    import subprocess

    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_a_conversion_that_misses_tolerance_fails_clearly_and_writes_nothing(tiny_folder, tmp_path, monkeypatch):
    from dataclasses import replace

    import vitedge.converters.pipeline as pipeline
    from vitedge.formats import PrecisionSupport

    impossible = PrecisionSupport("fp32", Tolerance(max_abs_diff=0.0, min_logits_cosine=1.0000001))
    strict = replace(FORMATS["onnx"], precisions=(impossible,))
    monkeypatch.setattr(pipeline, "get_format", lambda name: strict)
    with pytest.raises(ValidationFailedError, match="does not match the torch fp32 model: .*needs"):
        convert(str(tiny_folder), to="onnx", out=tmp_path / "out", validation_samples=4)
    assert list(tmp_path.iterdir()) == []


def test_pickle_checkpoints_are_refused_unless_allowed(tmp_path):
    folder = write_tiny_folder(tmp_path / "pickled", pickle=True)
    with pytest.raises(ModelLoadError, match="pickle.*--allow-pickle"):
        load_source(str(folder))
    source = load_source(str(folder), allow_pickle=True)
    assert source.info.weights_sha256 == sha256_file(folder / "pytorch_model.bin")


def test_unknown_format_and_precision_are_rejected_with_suggestions(tiny_folder, tmp_path):
    with pytest.raises(UsageError, match="unknown format 'onxx' \\(did you mean 'onnx'\\?\\)"):
        convert(str(tiny_folder), to="onxx", out=tmp_path / "x")
    with pytest.raises(UsageError, match="unknown precision 'fp33'"):
        convert(str(tiny_folder), to="onnx", precision="fp33", out=tmp_path / "x")


def test_missing_folder_and_unsupported_architecture(tmp_path):
    with pytest.raises(ModelLoadError, match="no such folder"):
        load_source("./does/not/exist")
    folder = tmp_path / "bert"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ModelLoadError, match="model type 'bert' is not supported.*vit"):
        load_source(str(folder))
    empty = tmp_path / "no-weights"
    write_tiny_folder(empty)
    (empty / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="no model weights"):
        load_source(str(empty))


def test_hub_ids_download_through_huggingface_hub(tiny_folder, tmp_path, monkeypatch):
    """The hub path is the real one up to the download, which a local snapshot stands in for."""
    import shutil

    import huggingface_hub

    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = tmp_path / "hub" / "snapshots" / commit
    shutil.copytree(tiny_folder, snapshot)
    calls = []

    def fake_snapshot_download(repo_id, **kwargs):
        calls.append((repo_id, kwargs))
        return str(snapshot)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    source = load_source("someone/tiny-vit", revision="main")
    assert source.info.model == "someone/tiny-vit" and source.info.revision == commit
    repo_id, kwargs = calls[0]
    assert repo_id == "someone/tiny-vit" and kwargs["revision"] == "main"
    assert "*.safetensors" in kwargs["allow_patterns"] and "pytorch_model.bin" not in kwargs["allow_patterns"]


def test_hub_download_failure_is_one_clear_error(monkeypatch):
    import huggingface_hub

    def offline(repo_id, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co'\nlong details")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(ModelLoadError) as caught:
        load_source("google/vit-base-patch16-224")
    message = str(caught.value)
    assert "google/vit-base-patch16-224: could not download" in message and "\n" not in message
    assert re.search(r"local folder", message)


def test_options_a_format_does_not_take_are_rejected_in_one_place(tiny_folder, tmp_path):
    from vitedge.converters import ExportOptions

    with pytest.raises(UsageError, match="does not take the option\\(s\\) input_layout.*its options: opset"):
        convert(str(tiny_folder), to="onnx", out=tmp_path / "x", options=ExportOptions(input_layout="NHWC"))
    with pytest.raises(UsageError, match="unknown calibration method 'median'"):
        ExportOptions(calibration_method="median")
    assert not (tmp_path / "x").exists()


def test_calibration_sets_are_preprocessed_and_disjoint_from_validation(tiny_folder, image_dir):
    from vitedge.converters.calibration import load_calibration
    from vitedge.converters.validate import validation_inputs

    source = load_source(str(tiny_folder))
    builtin = load_calibration(source.preprocess, samples=12)
    assert builtin.inputs.shape == (12, 3, 32, 32) and "calibration split" in builtin.source
    held_out, _ = validation_inputs(source.preprocess, 12)
    assert not any(np.array_equal(a, b) for a in builtin.inputs for b in held_out)
    assert [len(b) for b in builtin.batches(5)] == [5, 5, 2]
    assert load_calibration(source.preprocess, samples=12).sha256 == builtin.sha256
    mine = load_calibration(source.preprocess, str(image_dir), samples=10)
    assert len(mine.inputs) == 4 and str(image_dir) in mine.source and "1 unreadable skipped" in mine.source
    with pytest.raises(UsageError, match="no such folder"):
        load_calibration(source.preprocess, str(image_dir / "nope"))


def test_random_init_tolerance_skips_top1_and_doubles_the_cosine_error():
    from types import SimpleNamespace

    from vitedge.converters.stages import tolerance_for
    from vitedge.formats import FORMATS

    support = FORMATS["tflite"].support("int4-weight")
    trained = tolerance_for(support, SimpleNamespace(info=SimpleNamespace(weights="finetuned")))
    random = tolerance_for(support, SimpleNamespace(info=SimpleNamespace(weights="random-init")))
    assert trained == support.tolerance
    assert random.min_top1_agreement is None
    assert random.min_logits_cosine == pytest.approx(1 - 2 * (1 - support.tolerance.min_logits_cosine))
    assert random.min_logits_cosine < trained.min_logits_cosine


@pytest.mark.slow
def test_verify_judges_parity_by_the_tolerance_convert_applied(tmp_path, monkeypatch, capsys):
    """Convert does not gate a random-init artifact's top-1 (near-tied logits flip): neither may verify."""
    import vitedge.converters.validate as validate
    from vitedge.cli import main
    from vitedge.verify import verify_artifact

    monkeypatch.setattr(validate, "top1_agreement", lambda reference, candidate: 0.5)  # a coin toss
    out, preset = tmp_path / "random-int8", "preset:vit-tiny-patch16-224"
    convert(preset, to="onnx", precision="int8-dynamic", out=out, validation_samples=4)
    recorded = read_manifest(out).validation
    assert recorded.passed and recorded.top1_agreement == 0.5 and recorded.tolerance["min_top1_agreement"] is None
    outcome = verify_artifact(out, against=preset, samples=4)
    assert outcome.ok and outcome.report.tolerance == recorded.tolerance
    assert main(["verify", str(out), "--against", preset, "--samples", "4"]) == 0
    assert f"parity against {preset}: PASSED" in capsys.readouterr().out


def test_an_empty_validation_images_folder_is_one_clear_usage_error(tiny_folder, tmp_path, capsys):
    from vitedge.cli import main

    empty = tmp_path / "my-images"
    (empty / "subfolder").mkdir(parents=True)
    (empty / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    code = main(["convert", str(tiny_folder), "--to", "onnx", "--out", str(out), "--validation-images", str(empty)])
    errors = capsys.readouterr().err
    assert code == 2 and "Traceback" not in errors and not out.exists()
    assert [line for line in errors.splitlines() if "error" in line] == [
        f"vitedge: error: --validation-images {empty}: no images in this folder; put JPEG/PNG images in it "
        "(subfolders count), or leave the option out to validate on built-in images"
    ]
    with pytest.raises(UsageError, match="--validation-images .*nope: no such folder"):
        convert(str(tiny_folder), to="onnx", out=out, validation_images=tmp_path / "nope")


def test_torchao_import_noise_is_dropped_and_other_warnings_still_show():
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("torchao") is None:
        pytest.skip("torchao is not installed: it has no noise to drop")
    probe = ("import logging, sys\n"
             "{setup}\n"
             "import torchao\n"
             "logging.getLogger('torchao').warning('Failed to load x.so (from the probe)')\n"
             "logging.getLogger('torchao').warning('a real torchao warning')\n")
    plain, quiet = (subprocess.run([sys.executable, "-c", probe.format(setup=setup)], capture_output=True, text=True,
                                   check=True).stderr
                    for setup in ("", "import vitedge.converters"))
    assert "Failed to load" in plain and "a real torchao warning" in plain  # the probe does print the noise
    assert "Failed to load" not in quiet and "a real torchao warning" in quiet


def test_the_backbone_loss_warning_of_core_ml_tracing_is_dropped_and_others_are_not():
    import logging

    import vitedge.converters  # noqa: F401 - installs the filters

    logger = logging.getLogger("transformers.modeling_utils")

    def shown(message: str) -> bool:
        return bool(logger.filter(logger.makeRecord(logger.name, logging.WARNING, __file__, 0, message, (), None)))

    assert not shown("`loss_type=None` was set in the config but it is unrecognized. Using the default loss: `ForCausalLMLoss`.")
    assert shown("`loss_type=ForMadeUpTask` was set in the config but it is unrecognized.")  # a user's real mistake
