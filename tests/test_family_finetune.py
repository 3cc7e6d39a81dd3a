"""Fine-tuning a family preset uses the family's preprocessing: in training, in the folder it writes, in the
artifact converted from that folder (MobileViT: BGR, no normalization, shortest edge + crop; DINOv2: bicubic
shortest edge + crop, ImageNet statistics; BEiT: mean = std = 0.5; …)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.training_helpers import CLASS_NAMES, fast_options, write_data
from vitedge.converters.family_preprocess import FAMILY_PROCESSORS, family_spec, processor_config
from vitedge.converters.hf_preprocess import load_spec
from vitedge.converters.presets import PRESETS
from vitedge.formats import FAMILIES, FORMATS
from vitedge.runtime.images import load_rgb
from vitedge.runtime.preprocess import preprocess
from vitedge.runtime.preprocess_spec import PreprocessSpec

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_data(tmp_path_factory.mktemp("family-finetune-data"))


def test_every_family_has_a_processor_and_a_tiny_preset():
    assert set(FAMILY_PROCESSORS) == set(FAMILIES)
    assert {PRESETS[f"{family}-tiny-test"].model_type for family in FAMILIES} == set(FAMILIES)
    assert {PRESETS[f"{family}-mini"].model_type for family in FAMILIES} == set(FAMILIES)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_preset_start_takes_its_familys_preprocessing(family, tmp_path):
    from vitedge.converters.training.models import build_starting_model

    preset = PRESETS[f"{family}-tiny-test"]
    start = build_starting_model(f"preset:{preset.name}", CLASS_NAMES)
    assert start.preprocess == preset.preprocess()
    assert start.processor_config["image_processor_type"] == FAMILY_PROCESSORS[family].processor_type
    # resized: the family's processor at the new size (DINOv2's crop, MobileViT's edge, DeiT's 256/224)
    resized = build_starting_model(f"preset:{preset.name}", CLASS_NAMES, image_size=64)
    assert resized.preprocess == family_spec(family, 64) and resized.input_size == (64, 64)


def test_a_config_json_start_takes_its_familys_preprocessing(tmp_path):
    from vitedge.converters.training.models import build_starting_model

    path = tmp_path / "config.json"
    PRESETS["mobilevit-tiny-test"].build_config().to_json_file(path)
    start = build_starting_model(str(path), CLASS_NAMES)
    assert start.preprocess.channel_order == "BGR" and start.preprocess.mean is None
    assert start.preprocess == family_spec("mobilevit", 64)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_written_processor_config_reads_back_as_the_spec(family, tmp_path):
    spec = PRESETS[f"{family}-tiny-test"].preprocess()
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(processor_config(spec, family)))
    assert load_spec(tmp_path, image_size=999)[0] == spec


def _onnx_options(family: str) -> list[str]:
    """Export options under which ONNX converts ``family`` (the registry's ``unless``), as CLI flags."""
    for entry in FORMATS["onnx"].unsupported:
        if entry.applies(family, "fp32") and entry.unless:
            return [flag for key, value in entry.unless for flag in (f"--{key}", str(value))]
    return []


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_finetune_a_family_preset_then_convert(family, data, tmp_path, monkeypatch, capsys):
    import vitedge.converters.training.finetune as finetune_module
    from vitedge.cli import main

    preset = PRESETS[f"{family}-tiny-test"]
    expected = preset.preprocess()
    read_with = []
    original = finetune_module.load_training_data
    monkeypatch.setattr(finetune_module, "load_training_data",
                        lambda folder, spec, **kwargs: read_with.append(spec) or original(folder, spec, **kwargs))
    out = tmp_path / "model"
    run = finetune_module.finetune(f"preset:{preset.name}", data, out, fast_options(epochs=1))
    assert read_with == [expected], "training read its images with another preprocessing than the family's"
    assert len(run.loop.history) == 1 and run.model.config.model_type == family

    written = json.loads((out / "preprocessor_config.json").read_text())
    assert written["image_processor_type"] == FAMILY_PROCESSORS[family].processor_type
    assert load_spec(out, image_size=999)[0] == expected
    processor = transformers.AutoImageProcessor.from_pretrained(out, backend="pil")
    image = load_rgb(data / "circle" / "0000.png")
    np.testing.assert_array_equal(processor(image, return_tensors="np")["pixel_values"][0], preprocess(image, expected))

    artifact = tmp_path / "artifact"
    code = main(["convert", str(out), "--to", "onnx", "--out", str(artifact), "--validation-samples", "4",
                 *_onnx_options(family)])
    assert code == 0, capsys.readouterr().err
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert PreprocessSpec.from_dict(manifest["preprocess"]) == expected
    assert manifest["source"]["weights"] == "finetuned" and list(manifest["labels"].values()) == list(CLASS_NAMES)
