"""Shared fixtures: tiny Hugging Face model folders made on the spot, and artifacts converted from them.

Nothing here touches the network: "hub" models are local folders the tests write.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TINY_LABELS = ("apple", "banana", "cherry", "date")
DATA = Path(__file__).parent / "data"
#: What every shared artifact is validated on, and the export options that differ per format from the
#: defaults (TFLite int8-static calibrates through PT2E in torch: 8 images, as its tests always used, keep it quick).
VALIDATION_SAMPLES = 16
SHARED_OPTIONS: dict[str, dict] = {"tflite": {"calibration_samples": 8}}


def write_tiny_folder(
    folder: Path,
    *,
    model_type: str = "vit",
    image_size: int = 32,
    seed: int = 0,
    processor: dict | None = None,
    pickle: bool = False,
) -> Path:
    """Save a tiny, seeded classifier as a Hugging Face folder (what save_pretrained writes)."""
    import torch
    from transformers import DeiTConfig, DeiTForImageClassification, ViTConfig, ViTForImageClassification

    config_class, model_class = {
        "vit": (ViTConfig, ViTForImageClassification),
        "deit": (DeiTConfig, DeiTForImageClassification),
    }[model_type]
    config = config_class(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
        image_size=image_size, patch_size=8, num_labels=len(TINY_LABELS),
        id2label=dict(enumerate(TINY_LABELS)), label2id={label: i for i, label in enumerate(TINY_LABELS)},
    )
    torch.manual_seed(seed)
    model = model_class(config).eval()
    with torch.no_grad():  # sharper logits than the 0.02-std init, so top-1 is not a coin toss
        model.classifier.weight.normal_(0, 0.5)
    folder.mkdir(parents=True, exist_ok=True)
    if pickle:
        config.save_pretrained(folder)
        torch.save(model.state_dict(), folder / "pytorch_model.bin")
    else:
        model.save_pretrained(folder, safe_serialization=True)
    processor = processor or {
        "image_processor_type": "ViTImageProcessor",
        "do_resize": True, "size": {"height": image_size, "width": image_size}, "resample": 2,
        "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(processor))
    return folder


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory) -> Path:
    return write_tiny_folder(tmp_path_factory.mktemp("models") / "tiny-vit")


@pytest.fixture(scope="session")
def tiny_artifact(tiny_folder, tmp_path_factory) -> Path:
    from vitedge.converters import convert

    out = tmp_path_factory.mktemp("artifacts") / "tiny-onnx"
    convert(str(tiny_folder), to="onnx", out=out, validation_samples=VALIDATION_SAMPLES)
    return out


@pytest.fixture(scope="session")
def artifact_of(request, tiny_folder, tmp_path_factory):
    """``artifact_of(format, precision)`` -> the tiny model's artifact, converted once per session.

    The conformance suite and the per-format tests share these conversions (TFLite and Core ML take
    seconds each). ONNX fp32 is :func:`tiny_artifact` (the same conversion). Don't modify
    an artifact in place: copy it first.
    """
    from vitedge.converters import ExportOptions, convert

    built: dict[tuple[str, str], Path] = {}

    def make(format_name: str, precision: str) -> Path:
        key = (format_name, precision)
        if key == ("onnx", "fp32"):
            return request.getfixturevalue("tiny_artifact")
        if key not in built:
            out = tmp_path_factory.mktemp("shared-artifacts") / f"{format_name}-{precision}"
            options = ExportOptions(**SHARED_OPTIONS.get(format_name, {}))
            convert(str(tiny_folder), to=format_name, precision=precision, out=out, options=options,
                    validation_samples=VALIDATION_SAMPLES)
            built[key] = out
        return built[key]

    return make


@pytest.fixture(scope="session")
def preset_artifact(tmp_path_factory) -> Path:
    from vitedge.converters import convert

    out = tmp_path_factory.mktemp("artifacts") / "preset-tiny"
    convert("preset:vit-tiny-patch16-224", to="onnx", out=out, validation_samples=4)
    return out


@pytest.fixture
def image_dir(tmp_path) -> Path:
    """A folder a user might point at: a photo, odd sizes and modes, and one corrupt file."""
    folder = tmp_path / "images"
    folder.mkdir()
    photo = Image.open(DATA / "astronaut.jpg").convert("RGB")
    photo.save(folder / "a_photo.jpg")
    photo.convert("L").resize((33, 71)).save(folder / "b_gray.png")
    rgba = photo.convert("RGBA").resize((300, 17))
    rgba.putalpha(128)
    rgba.save(folder / "c_alpha.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (5, 900, 3), dtype=np.uint8)).save(folder / "d_wide.bmp")
    (folder / "e_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    return folder
