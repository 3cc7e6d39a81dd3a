"""Fine-tuning: data checks before training, the loop's features, the HF folder it writes, convert on it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from tests.training_helpers import CLASS_NAMES, fast_options, write_data, write_tiny_config
from vitedge.cli import main
from vitedge.converters.training.finetune import finetune
from vitedge.converters.training.models import build_starting_model
from vitedge.converters.training.run import RunSetup
from vitedge.data.imagefolder import load_training_data, stratified_split
from vitedge.errors import UsageError
from vitedge.runtime.images import load_rgb
from vitedge.runtime.preprocess import preprocess_batch
from vitedge.runtime.preprocess_spec import PreprocessSpec

SPEC = PreprocessSpec(size=(32, 32))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_data(tmp_path_factory.mktemp("finetune-data"))


@pytest.fixture(scope="module")
def config_json(tmp_path_factory):
    return write_tiny_config(tmp_path_factory.mktemp("finetune-config") / "config.json")


def _copy(data, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    return copy


# -- data: bad input fails before training, naming the file -----------------------------------------


def test_inputs_equal_the_runtime_preprocessing(data):
    loaded = load_training_data(data, SPEC, val_fraction=0.25)
    paths = sorted(str(p) for p in data.rglob("*.png"))
    assert len(loaded.train) + len(loaded.val) == len(paths) == 24
    assert loaded.class_names == CLASS_NAMES
    expected = preprocess_batch([load_rgb(p) for p in paths], SPEC)
    got = np.concatenate([loaded.train.inputs(), loaded.val.inputs()])
    # every training input is bit-identical to one the runtime makes (the split reorders them)
    expected_rows = {row.tobytes() for row in expected}
    assert all(row.tobytes() in expected_rows for row in got)


def test_split_is_stratified_and_seeded():
    labels = np.repeat(np.arange(3), [10, 4, 2])
    train, val = stratified_split(labels, 0.25, seed=1)
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(16))
    assert np.bincount(labels[val]).tolist() == [2, 1, 1]  # every class in val, at least one left in train
    again = stratified_split(labels, 0.25, seed=1)
    assert np.array_equal(again[1], val)
    assert not np.array_equal(stratified_split(labels, 0.25, seed=2)[1], val)


def test_empty_class_folder_is_refused(data, tmp_path):
    copy = _copy(data, tmp_path)
    (copy / "hexagon").mkdir()
    with pytest.raises(UsageError, match="hexagon: class folder has no images"):
        load_training_data(copy, SPEC)


def test_single_class_is_refused(data, tmp_path):
    copy = tmp_path / "one"
    shutil.copytree(data / "circle", copy / "circle")
    with pytest.raises(UsageError, match="only one class folder.*at least two"):
        finetune("preset:vit-tiny-patch16-224", copy, tmp_path / "out")


def test_unreadable_images_are_named_or_skipped(data, tmp_path):
    copy = _copy(data, tmp_path)
    (copy / "square" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(UsageError, match=r"1 image\(s\) cannot be read: .*broken.png.*--skip-unreadable"):
        load_training_data(copy, SPEC)
    loaded = load_training_data(copy, SPEC, skip_unreadable=True)
    assert len(loaded.skipped) == 1 and "broken.png" in loaded.skipped[0]
    assert len(loaded.train) + len(loaded.val) == 24


def test_validation_folder_must_have_the_same_classes(data, tmp_path):
    other = tmp_path / "val"
    shutil.copytree(data / "circle", other / "circle")
    shutil.copytree(data / "square", other / "star")
    with pytest.raises(UsageError, match="differ"):
        load_training_data(data, SPEC, val_dir=other)


def test_bad_options_fail_before_training(data, config_json, tmp_path):
    with pytest.raises(UsageError, match="cannot freeze 5 layers: the model has 2"):
        finetune(str(config_json), data, tmp_path / "a", fast_options(freeze_layers=5))
    with pytest.raises(UsageError, match="head_only and freeze_layers"):
        fast_options(freeze_layers=1, head_only=True)
    with pytest.raises(UsageError, match="needs a GPU"):
        finetune(str(config_json), data, tmp_path / "b", fast_options(amp="fp16"))
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("keep")
    with pytest.raises(UsageError, match="not a vitedge training output"):
        finetune(str(config_json), data, tmp_path / "taken", fast_options(), RunSetup(overwrite=True))
    assert not (tmp_path / "b").exists() and not (tmp_path / "b.checkpoint").exists()


# -- the loop -----------------------------------------------------------------------------------


def test_head_only_and_frozen_layers_stay_put(data, config_json, tmp_path):
    head = finetune(str(config_json), data, tmp_path / "head", fast_options(epochs=1, head_only=True))
    frozen = finetune(str(config_json), data, tmp_path / "one", fast_options(epochs=1, freeze_layers=1))
    initial = build_starting_model(str(config_json), CLASS_NAMES, seed=0).model.state_dict()
    after_head, after_freeze = head.model.state_dict(), frozen.model.state_dict()
    for name, tensor in initial.items():
        same_head = torch.equal(tensor, after_head[name])
        assert same_head != name.startswith("classifier."), name
        same_frozen = torch.equal(tensor, after_freeze[name])
        assert same_frozen == name.startswith(("vit.embeddings", "vit.layers.0.")), name
    assert head.record["trainable_parameters"] == 32 * 3 + 3
    assert frozen.record["frozen_parameters"] > 0


def test_accumulation_and_checkpointing_keep_the_result(data, config_json, tmp_path):
    plain = finetune(str(config_json), data, tmp_path / "plain", fast_options(epochs=1))
    accumulated = finetune(str(config_json), data, tmp_path / "acc", fast_options(epochs=1, accumulation_steps=2))
    recomputed = finetune(str(config_json), data, tmp_path / "ckpt", fast_options(epochs=1, gradient_checkpointing=True))
    for other in (accumulated, recomputed):
        for name, tensor in plain.model.state_dict().items():
            assert torch.allclose(tensor, other.model.state_dict()[name], atol=1e-4), name  # steps are ~2e-3
    assert not torch.equal(plain.model.classifier.weight, finetune(
        str(config_json), data, tmp_path / "lr", fast_options(epochs=1, learning_rate=1e-2)).model.classifier.weight)


def test_bf16_autocast_on_cpu(data, config_json, tmp_path):
    run = finetune(str(config_json), data, tmp_path / "bf16", fast_options(epochs=1, amp="bf16"))
    assert np.isfinite(run.loop.history[0].train_loss)
    assert run.record["recipe"]["loop"]["amp"] == "bf16"


def test_early_stopping_keeps_the_best_epoch(data, config_json, tmp_path):
    run = finetune(str(config_json), data, tmp_path / "es", fast_options(epochs=6, learning_rate=1e-9, patience=2))
    assert run.loop.stopped == "early-stopping"
    assert len(run.loop.history) == 3 and run.loop.best_epoch == 1


def test_resume_continues_where_it_stopped(data, config_json, tmp_path):
    straight = finetune(str(config_json), data, tmp_path / "straight", fast_options(epochs=3))

    def interrupt(record):
        if record.epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        finetune(str(config_json), data, tmp_path / "resumed", fast_options(epochs=3), RunSetup(on_epoch=interrupt))
    assert not (tmp_path / "resumed").exists()  # nothing half-written
    resumed = finetune(str(config_json), data, tmp_path / "resumed", fast_options(epochs=3), RunSetup(resume=True))
    assert resumed.loop.resumed_from_epoch == 1 and len(resumed.loop.history) == 3
    for name, tensor in straight.model.state_dict().items():
        assert torch.equal(tensor, resumed.model.state_dict()[name]), name
    log = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in log] == [1, 2, 3]


# -- the output: a Hugging Face folder that vitedge convert takes ---------------------------------


@pytest.mark.slow
def test_cli_finetune_then_convert(data, config_json, tmp_path, capsys):
    out = tmp_path / "model"
    code = main(["finetune", str(config_json), "--data", str(data), "--out", str(out), "--epochs", "3",
                 "--batch-size", "8", "--lr", "2e-3", "--threads", "1", "--val-fraction", "0.25", "--quiet"])
    assert code == 0
    assert f"wrote {out} (finetuned" in capsys.readouterr().out
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "vitedge_training.json",
            "metrics.jsonl"} <= {p.name for p in out.iterdir()}
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {str(i): name for i, name in enumerate(CLASS_NAMES)}
    record = json.loads((out / "vitedge_training.json").read_text())
    assert record["weights"] == "finetuned" and record["data"]["classes"] == list(CLASS_NAMES)
    losses = [json.loads(line)["train_loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert losses[-1] < losses[0]

    artifact = tmp_path / "artifact"
    assert main(["convert", str(out), "--to", "onnx", "--out", str(artifact), "--validation-samples", "8"]) == 0
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert manifest["source"]["weights"] == "finetuned"
    assert list(manifest["labels"].values()) == list(CLASS_NAMES)
    assert main(["finetune", str(config_json), "--data", str(data / "circle"), "--out", str(tmp_path / "x")]) == 2
    assert "no class folders" in capsys.readouterr().err


def test_a_pretrained_folder_gets_a_new_head_for_new_classes(data, tmp_path):
    from tests.conftest import write_tiny_folder
    from vitedge.converters.loading import load_source

    folder = write_tiny_folder(tmp_path / "pretrained")  # labels apple, banana, cherry, date
    with pytest.raises(UsageError, match="--patch-size applies to presets"):
        finetune(str(folder), data, tmp_path / "x", fast_options(), RunSetup(patch_size=4))
    run = finetune(str(folder), data, tmp_path / "tuned", fast_options(epochs=1, head_only=True))
    assert run.record["start"]["head"] == "new" and run.record["start"]["weights"] == "pretrained"
    assert run.model.config.id2label == dict(enumerate(CLASS_NAMES)) and run.model.classifier.out_features == 3
    pretrained = load_source(str(folder)).model.state_dict()
    for name, tensor in run.model.state_dict().items():
        if not name.startswith("classifier."):
            assert torch.equal(tensor, pretrained[name]), name  # the body is the pretrained one, frozen
    again = finetune(str(tmp_path / "tuned"), data, tmp_path / "again", fast_options(epochs=1))
    assert again.record["start"]["head"] == "kept" and again.record["start"]["weights"] == "finetuned"


# -- a pretrained ViT/DeiT at another input size: position embeddings resampled --------------------------


def test_resampled_positions_keep_special_rows_and_a_smooth_table():
    from vitedge.converters.training.resize import resample_positions

    grid = torch.stack(torch.meshgrid(torch.arange(4.0), torch.arange(4.0), indexing="ij"), -1)  # a linear ramp
    table = torch.cat([torch.full((1, 2, 2), 7.0), grid.reshape(1, 16, 2)], dim=1)
    same = resample_positions(table, 2, 4)
    assert torch.equal(same, table)
    bigger = resample_positions(table, 2, 8)
    assert bigger.shape == (1, 2 + 64, 2) and torch.equal(bigger[:, :2], table[:, :2])
    rows = bigger[0, 2:].reshape(8, 8, 2)
    assert torch.all(rows[1:, :, 0] >= rows[:-1, :, 0] - 1e-5)  # still increasing down the rows
    assert rows[..., 0].min() >= -0.5 and rows[..., 0].max() <= 3.5  # the same range, no ringing blow-up


@pytest.mark.parametrize("kind", ["vit", "deit"])
def test_a_pretrained_vit_fine_tunes_at_a_larger_input(kind, data, tmp_path):
    from tests.conftest import write_tiny_folder
    from vitedge.converters.loading import load_source

    folder = write_tiny_folder(tmp_path / "pretrained", model_type=kind)
    before = load_source(str(folder))
    start = build_starting_model(str(folder), CLASS_NAMES, image_size=before.image_size * 2)
    assert start.input_size == (before.image_size * 2,) * 2 and start.origin["image_size"]["to"] == before.image_size * 2
    with torch.no_grad():
        logits = start.model(pixel_values=torch.zeros(1, 3, *start.input_size)).logits
    assert logits.shape == (1, len(CLASS_NAMES))
    run = finetune(str(folder), data, tmp_path / "tuned", fast_options(epochs=1), RunSetup(image_size=before.image_size * 2))
    tuned = load_source(str(tmp_path / "tuned"))
    assert tuned.image_size == before.image_size * 2 and tuned.preprocess.output_size == start.input_size
    assert run.record["start"]["image_size"]["from"] == before.image_size
    artifact = tmp_path / "artifact"
    assert main(["convert", str(tmp_path / "tuned"), "--to", "onnx", "--out", str(artifact), "--validation-samples", "4"]) == 0
    assert json.loads((artifact / "manifest.json").read_text())["preprocess"]["size"] == list(start.input_size)


def test_resizing_refuses_what_it_cannot_do(data, tmp_path, capsys):
    from tests.conftest import write_tiny_folder

    folder = write_tiny_folder(tmp_path / "pretrained")
    with pytest.raises(UsageError, match="not a multiple of the model's patch size"):
        build_starting_model(str(folder), CLASS_NAMES, image_size=37)
    swin = tmp_path / "swin"
    assert main(["finetune", "preset:swin-tiny-test", "--data", str(data), "--out", str(swin), "--epochs", "1"]) == 0
    capsys.readouterr()
    assert main(["finetune", str(swin), "--data", str(data), "--out", str(tmp_path / "x"), "--image-size", "64"]) == 2
    err = capsys.readouterr().err
    assert "pretrained swin model is not supported" in err and "Traceback" not in err


def test_the_same_classes_in_another_order_keep_the_trained_head(tmp_path):
    from transformers import AutoModelForImageClassification

    from tests.conftest import write_tiny_folder
    from vitedge.converters.loading import load_source

    folder = write_tiny_folder(tmp_path / "pretrained")
    model = AutoModelForImageClassification.from_pretrained(folder)
    shuffled = ("triangle", "circle", "square")  # the model's order; the folder sorts them
    model.classifier = torch.nn.Linear(model.classifier.in_features, 3)
    model.config.id2label, model.config.label2id = dict(enumerate(shuffled)), {n: i for i, n in enumerate(shuffled)}
    model.config.num_labels = 3
    model.save_pretrained(folder)
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        before = load_source(str(folder)).model(pixel_values=pixels).logits
        start = build_starting_model(str(folder), CLASS_NAMES)
        after = start.model(pixel_values=pixels).logits
    assert start.origin["head"] == "reordered" and start.model.config.id2label == dict(enumerate(CLASS_NAMES))
    for column, name in enumerate(CLASS_NAMES):
        assert torch.allclose(after[:, column], before[:, shuffled.index(name)])
