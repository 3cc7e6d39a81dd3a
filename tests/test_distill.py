"""Distillation: the losses, label checks before training, cached teacher logits, the folder it writes."""

from __future__ import annotations

import json

import pytest
import torch
from torch.nn import functional

from tests.conftest import write_tiny_folder
from tests.training_helpers import CLASS_NAMES, fast_options, write_data, write_tiny_config
from vitedge.cli import main
from vitedge.converters.training.distill import (
    DistillConfig,
    distill,
    hard_distillation_loss,
    label_permutation,
    soft_distillation_loss,
    teacher_logits,
)
from vitedge.converters.training.finetune import finetune
from vitedge.data.imagefolder import load_training_data
from vitedge.errors import UsageError
from vitedge.runtime.preprocess_spec import PreprocessSpec


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_data(tmp_path_factory.mktemp("distill-data"))


@pytest.fixture(scope="module")
def student_config(tmp_path_factory):
    return write_tiny_config(tmp_path_factory.mktemp("student") / "config.json", hidden=32)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, data):
    root = tmp_path_factory.mktemp("teacher")
    config = write_tiny_config(root / "config.json", hidden=64)
    return finetune(str(config), data, root / "teacher", fast_options(epochs=3)).out


def test_soft_loss_mixes_kl_and_labels():
    torch.manual_seed(0)
    student, teacher, labels = torch.randn(6, 4), torch.randn(6, 4), torch.randint(0, 4, (6,))
    hard_only = soft_distillation_loss(student, teacher, labels, temperature=3.0, alpha=0.0)
    assert torch.allclose(hard_only, functional.cross_entropy(student, labels))
    assert soft_distillation_loss(teacher, teacher, labels, temperature=3.0, alpha=1.0).abs() < 1e-6
    kl = functional.kl_div(functional.log_softmax(student / 3, -1), functional.softmax(teacher / 3, -1),
                           reduction="batchmean") * 9
    mixed = soft_distillation_loss(student, teacher, labels, temperature=3.0, alpha=0.25)
    assert torch.allclose(mixed, 0.25 * kl + 0.75 * hard_only)


def test_hard_loss_follows_the_teachers_top1():
    student, labels = torch.tensor([[2.0, 0.0, 0.0]]), torch.tensor([0])
    agrees = hard_distillation_loss(student, torch.tensor([[5.0, 0.0, 0.0]]), labels)
    disagrees = hard_distillation_loss(student, torch.tensor([[0.0, 5.0, 0.0]]), labels)
    assert disagrees > agrees
    assert torch.allclose(agrees, functional.cross_entropy(student, labels))


def test_config_validates():
    for bad in ({"mode": "medium"}, {"temperature": 0}, {"alpha": 1.5}):
        with pytest.raises(UsageError, match="invalid distillation config"):
            DistillConfig(**bad)


def test_label_mismatch_is_refused_before_training(tmp_path, data, student_config):
    other = write_tiny_folder(tmp_path / "fruit-teacher")  # labels apple, banana, cherry, date
    with pytest.raises(UsageError, match="disagree on the classes.*circle.*apple"):
        distill(str(other), str(student_config), data, tmp_path / "out", fast_options())
    assert label_permutation({0: "square", 1: "triangle", 2: "circle"}, CLASS_NAMES, "t") == [2, 0, 1]
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.checkpoint").exists()


def test_random_teacher_and_cache_with_augmentation_are_refused(tmp_path, data, teacher, student_config):
    with pytest.raises(UsageError, match="random-init"):
        distill("preset:vit-tiny-patch16-224", str(student_config), data, tmp_path / "a", fast_options())
    options = fast_options()
    options = type(options)(loop=type(options.loop)(train=type(options.loop.train)(max_shift=2), device="cpu"))
    with pytest.raises(UsageError, match="cached teacher logits need fixed inputs"):
        distill(str(teacher), str(student_config), data, tmp_path / "b", options)


def test_teacher_logits_are_cached_and_keyed(tmp_path, data, teacher):
    from vitedge.converters.loading import load_source

    source = load_source(str(teacher))
    images = load_training_data(data, PreprocessSpec(size=(32, 32))).train
    cache = tmp_path / "logits.safetensors"
    first = teacher_logits(source.model, images, [0, 1, 2], device=torch.device("cpu"), cache_file=cache,
                           teacher_sha256="abc")

    class Broken(torch.nn.Module):
        def forward(self, pixel_values):
            raise AssertionError("the teacher ran although its logits are cached")

    again = teacher_logits(Broken(), images, [0, 1, 2], device=torch.device("cpu"), cache_file=cache, teacher_sha256="abc")
    assert torch.equal(first, again)
    reordered = teacher_logits(source.model, images, [2, 0, 1], device=torch.device("cpu"), cache_file=cache,
                               teacher_sha256="abc")  # another key: recomputed
    assert torch.equal(reordered, first[:, [2, 0, 1]])


@pytest.mark.slow
def test_cli_distill_writes_a_distilled_folder(tmp_path, data, teacher, student_config, capsys):
    out = tmp_path / "student"
    code = main(["distill", "--teacher", str(teacher), "--student", str(student_config), "--data", str(data),
                 "--out", str(out), "--epochs", "2", "--batch-size", "8", "--lr", "2e-3", "--threads", "1",
                 "--mode", "hard", "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert f"wrote {out} (distilled" in capsys.readouterr().out
    record = json.loads((out / "vitedge_training.json").read_text())
    assert record["weights"] == "distilled" and record["distillation"]["mode"] == "hard"
    assert record["teacher"]["model"] == str(teacher)
    assert (tmp_path / "student.checkpoint" / "teacher_logits.safetensors").is_file()
    assert json.loads((out / "config.json").read_text())["hidden_size"] == 32
    from vitedge.converters.loading import load_source

    assert load_source(str(out)).info.weights == "distilled"
