"""QAT: fake quantization as onnxruntime quantizes, and an ONNX int8 export that reproduces it."""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest
import torch
from onnxruntime.quantization.quant_utils import compute_scale_zp
from transformers import ViTConfig, ViTForImageClassification

from tests.training_helpers import CLASS_NAMES
from vitedge.converters.calibration import load_calibration
from vitedge.converters.hf_preprocess import default_spec
from vitedge.converters.training.output import save_training_output
from vitedge.converters.training.qat import (
    QAT_RECORD,
    FakeQuantLinear,
    QatConfig,
    activation_qparams,
    prepare_qat,
    qat_record,
    strip_qat,
)
from vitedge.converters.training.qat_export import export_int8_matmuls
from vitedge.errors import UsageError

S8S8 = QatConfig(signed_activations=True, reduce_range=False)


def tiny_model() -> ViTForImageClassification:
    config = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                       image_size=32, patch_size=8, num_labels=3, id2label=dict(enumerate(CLASS_NAMES)),
                       label2id={name: i for i, name in enumerate(CLASS_NAMES)})
    torch.manual_seed(0)
    model = ViTForImageClassification(config).eval()
    with torch.no_grad():
        model.classifier.weight.normal_(0, 0.5)  # logits large enough for cosines to mean something
    return model


@pytest.mark.parametrize(("low", "high", "signed"), [(-2.5, 3.1, True), (0.2, 5.0, True), (-1.0, 0.5, False)])
def test_activation_qparams_match_onnxruntime(low, high, signed):
    qmin, qmax = (-128, 127) if signed else (0, 255)
    scale, zero_point = activation_qparams(torch.tensor(low), torch.tensor(high), qmin, qmax)
    ort_zero, ort_scale = compute_scale_zp(np.float32(low), np.float32(high), np.int32(qmin), np.int32(qmax))
    assert scale.item() == pytest.approx(float(ort_scale), rel=1e-6)
    assert zero_point.item() == int(ort_zero)


def test_fake_quant_rounds_and_passes_gradients_straight_through():
    torch.manual_seed(0)
    linear = torch.nn.Linear(16, 8)
    layer = FakeQuantLinear(linear, S8S8).train()
    inputs = torch.randn(4, 16, requires_grad=True)
    out = layer(inputs)
    out.sum().backward()
    assert linear.weight.grad is not None and linear.weight.grad.abs().sum() > 0
    assert inputs.grad is not None and inputs.grad.abs().sum() > 0
    float_out = linear(inputs)
    assert not torch.equal(out, float_out)  # it does quantize
    assert torch.allclose(out, float_out, atol=0.1)  # but only by int8 rounding
    low, high = layer.input_range()
    assert low == pytest.approx(inputs.min().item()) and high == pytest.approx(inputs.max().item())


def test_prepare_wraps_the_encoder_linears_and_strip_restores_them():
    model = tiny_model()
    keys = set(model.state_dict())
    prepare_qat(model, S8S8)
    wrapped = [name for name, module in model.named_modules() if isinstance(module, FakeQuantLinear)]
    assert len(wrapped) == 2 * 6  # q, k, v, o, fc1, fc2 per layer; the head stays float
    assert not isinstance(model.classifier, FakeQuantLinear)
    model.train()
    model(pixel_values=torch.randn(2, 3, 32, 32))
    ranges = strip_qat(model)
    assert set(ranges) == set(wrapped) and set(model.state_dict()) == keys


def test_config_checks():
    with pytest.raises(UsageError, match="observer_momentum"):
        QatConfig(observer_momentum=0.0)


@pytest.mark.slow
def test_int8_export_reproduces_the_fake_quantized_model(tmp_path):
    spec = default_spec(32)
    inputs = load_calibration(spec, "builtin", 24).inputs
    model = tiny_model()
    config = prepare_qat(model, S8S8)
    model.train()
    with torch.no_grad():
        for start in range(0, 24, 8):  # the observers learn the ranges
            model(pixel_values=torch.from_numpy(inputs[start : start + 8]))
    model.eval()
    held_out = load_calibration(spec, "builtin", 16, split="test").inputs
    with torch.no_grad():
        fake_quant = model(pixel_values=torch.from_numpy(held_out)).logits.numpy()
    ranges = strip_qat(model)
    with torch.no_grad():
        fp32 = model(pixel_values=torch.from_numpy(held_out)).logits.numpy()
    folder = save_training_output(model, tmp_path / "qat-model", spec=spec, processor_config={},
                                  record={"weights": "finetuned", "qat": True})
    (folder / QAT_RECORD).write_text(json.dumps(qat_record(config, ranges)))

    result = export_int8_matmuls(folder, tmp_path / "artifact", qat=True, strict=False, validation_samples=8)
    recipe = result.manifest.conversion.recipe
    assert recipe["qat"]["layers"] == 12 and recipe["qat"]["quantized_inputs"] == 8  # q, k, v share one input
    assert result.manifest.conversion.calibration["method"] == "qat"
    assert result.manifest.source.weights == "finetuned"
    import onnxruntime

    session = onnxruntime.InferenceSession(str(tmp_path / "artifact" / "model.onnx"), providers=["CPUExecutionProvider"])
    int8 = session.run(["logits"], {"pixel_values": held_out})[0]
    # the artifact computes what QAT trained, far closer to it than to the float model
    assert np.abs(int8 - fake_quant).max() < 1e-3
    assert np.abs(int8 - fp32).max() > 10 * np.abs(int8 - fake_quant).max()

    (folder / QAT_RECORD).unlink()
    with pytest.raises(UsageError, match="not trained with --qat"):
        export_int8_matmuls(folder, tmp_path / "no-ranges", qat=True)


def test_convert_int8_static_uses_the_learned_ranges_of_a_qat_folder(tmp_path, monkeypatch):
    """`vitedge convert QAT_FOLDER --to onnx --precision int8-static` goes through the QAT export."""
    import vitedge.converters.training.qat_export as qat_export
    from vitedge.converters import ExportOptions, convert

    model = tiny_model()
    config = prepare_qat(model, S8S8)
    ranges = strip_qat(model)
    folder = save_training_output(model, tmp_path / "qat-model", spec=default_spec(32), processor_config={},
                                  record={"weights": "finetuned", "qat": True})
    (folder / QAT_RECORD).write_text(json.dumps(qat_record(config, ranges)))
    calls = []
    monkeypatch.setattr(qat_export, "export_int8_matmuls", lambda source, out, **kw: calls.append(kw) or "qat")
    assert convert(str(folder), to="onnx", precision="int8-static", out=tmp_path / "a") == "qat"
    assert calls[0]["qat"] is True
    # a calibration set asked for means post-training quantization, whatever its validation says
    from vitedge.errors import ValidationFailedError

    with contextlib.suppress(ValidationFailedError):
        convert(str(folder), to="onnx", precision="int8-static", out=tmp_path / "b", validation_samples=4,
                options=ExportOptions(calibration_samples=8))
    assert len(calls) == 1
