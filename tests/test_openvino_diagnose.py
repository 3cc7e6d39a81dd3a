"""OpenVINO in vitedge diagnose (extra IR outputs), --keep-float (NNCF's ignored scope), inspect --placement.

The planted fault differs from tests/test_diagnose.py's: NNCF's int8-static recipe smooths activation
outliers away (SmoothQuant), so OpenVINO's fault is in a block's weights, which int8-weight compresses
without data: a few dead MLP channels (GELU(-10) ~ 0) with 1000x larger fc2 weights. fp32 does not see
them; per-channel int8 weights of fc2 lose every other weight of the row.
"""

from __future__ import annotations

import json

import pytest

from tests.test_diagnose import FAULTY_BLOCK, write_four_block_vit
from vitedge.cli import main
from vitedge.converters import ExportOptions, convert
from vitedge.errors import UsageError

pytest.importorskip("openvino")
pytest.importorskip("nncf")

SAMPLES = 24


def _dead_channels(mlp, channels):
    mlp.fc1.weight[channels] = 0
    mlp.fc1.bias[channels] = -10  # GELU(-10) ~ 0: the channels are dead
    mlp.fc2.weight[:, channels] = 1000 * mlp.fc2.weight.abs().max()


def write_dead_channel_folder(folder):
    """A 4-block tiny ViT whose block 2 fc2 holds a few huge weights on channels that are always zero."""
    return write_four_block_vit(folder, _dead_channels)


def _tap(diagnosis, name):
    return next(entry for entry in diagnosis.stats if entry.tap == name)


def test_a_planted_weight_fault_is_found_and_keep_float_restores_agreement(tmp_path):
    from vitedge.converters.diagnose.engine import diagnose

    folder = str(write_dead_channel_folder(tmp_path / "vit-4"))
    faulty = convert(folder, to="openvino", precision="int8-weight", out=tmp_path / "int8", validation_samples=8,
                     accept_failed_validation=True)
    [found] = diagnose([faulty.path], folder, samples=SAMPLES)
    culprit_op = f"vit.layers.{FAULTY_BLOCK}.mlp.fc2"
    assert found.culprit == f"block {FAULTY_BLOCK}"
    assert found.culprit_ops[culprit_op].startswith("int8 weights") and found.suggested_float_ops == (culprit_op,)

    fixed = convert(folder, to="openvino", precision="int8-weight", out=tmp_path / "fixed", validation_samples=8,
                    options=ExportOptions(keep_float=found.suggested_float_ops), accept_failed_validation=True)
    assert fixed.manifest.conversion.recipe["float_layers"] == list(found.suggested_float_ops)
    [after] = diagnose([fixed.path], folder, samples=SAMPLES)
    assert after.culprit != found.culprit and culprit_op not in after.quantized_ops
    assert f"vit.layers.{FAULTY_BLOCK}.mlp.fc1" in after.quantized_ops, "only the named op left float"
    before_logits, after_logits = _tap(found, "logits"), _tap(after, "logits")
    assert before_logits.cosine < 0.9 and after_logits.cosine > 0.999
    assert after_logits.top1_agreement > before_logits.top1_agreement and after_logits.top1_agreement >= 0.95

    budgeted = convert(folder, to="openvino", precision="int8-weight", out=tmp_path / "budget", validation_samples=4,
                       options=ExportOptions(max_accuracy_drop=0.0), accept_failed_validation=True)
    budget = budgeted.manifest.conversion.recipe["accuracy_budget"]
    assert budget["drop_points_all_quantized"] > 0 and budget["float_layers"][0] == culprit_op, budget


def test_keep_float_takes_int8_static_names_and_refuses_float_precisions(tiny_folder, tmp_path):
    result = convert(str(tiny_folder), to="openvino", precision="int8-static", out=tmp_path / "static",
                     validation_samples=4, options=ExportOptions(keep_float=("vit.layers.1.mlp",)))
    assert result.manifest.conversion.recipe["float_layers"] == ["vit.layers.1.mlp.fc1", "vit.layers.1.mlp.fc2"]
    import openvino as ov

    from vitedge.converters.openvino.diagnose import quantized_ops
    from vitedge.converters.openvino.layers import ModuleNames

    names = ModuleNames(ov.Core().read_model(str(result.path / "model.xml")), ["vit.layers.0.mlp.fc1"])
    quantized = quantized_ops(names)
    assert "vit.layers.1.mlp.fc1" not in quantized and "vit.layers.1.mlp.fc2" not in quantized
    assert quantized["vit.layers.0.mlp.fc1"] == "int8 weights, calibrated int8 activations (FakeQuantize)"
    with pytest.raises(UsageError, match="keeps every op in float already"):
        convert(str(tiny_folder), to="openvino", precision="fp32", out=tmp_path / "fp32",
                options=ExportOptions(keep_float=("vit.layers.0",)))
    with pytest.raises(UsageError, match=r"names no quantized op.*did you mean 'vit\.layers\.1\.mlp\.fc1'"):
        convert(str(tiny_folder), to="openvino", precision="int4-weight", out=tmp_path / "int4",
                options=ExportOptions(keep_float=("vit.layers.1.mlp.fc11",)))


def test_placement_lists_the_runtime_precision_of_every_executed_op(artifact_of, capsys):
    artifact = str(artifact_of("openvino", "int8-static"))
    assert main(["inspect", artifact, "--placement", "--require-delegate"]) == 0
    assert "int8 for the calibrated layers" in capsys.readouterr().out
    assert main(["inspect", artifact, "--placement", "--json"]) == 0
    placement = json.loads(capsys.readouterr().out)
    assert placement["fallbacks"] == 0 and {op["device"] for op in placement["ops"]} == {"CPU"}
    assert any(op["op_type"] == "FullyConnected" and op["precision"] == "int8" for op in placement["ops"])
    assert any(op["op_type"] == "MVN" and op["precision"] == "fp32" for op in placement["ops"]), "LayerNorm stays float"
    assert main(["inspect", str(artifact_of("openvino", "fp32")), "--placement", "--json"]) == 0
    fp32 = json.loads(capsys.readouterr().out)
    assert all(op["precision"] in ("fp32", "") for op in fp32["ops"] if op["op_type"] == "FullyConnected")


def test_require_delegate_fails_when_a_calibrated_layer_ran_in_float(artifact_of, capsys, monkeypatch):
    from vitedge.runtime.placement import openvino as placement

    assert placement.precision_of("u8", "undef_f32") == "int8 weights, fp32"
    assert placement.precision_of("u8", "brgconv_avx512_I8") == "int8" and placement.precision_of("f32", "jit_f32") == "fp32"
    monkeypatch.setattr(placement, "precision_of", lambda stored, kernel: "fp32")  # a plugin without int8 kernels
    assert main(["inspect", str(artifact_of("openvino", "int8-static")), "--placement", "--require-delegate"]) == 3
    captured = capsys.readouterr()
    assert "(FakeQuantize) but the CPU plugin ran it in fp32" in captured.out and "--require-delegate" in captured.err


def test_budget_uses_the_shared_per_layer_measurement(tiny_folder, tmp_path):
    result = convert(str(tiny_folder), to="openvino", precision="int8-weight", out=tmp_path / "budget",
                     validation_samples=4, options=ExportOptions(max_accuracy_drop=0.0))
    budget = result.manifest.conversion.recipe["accuracy_budget"]
    assert budget["drop_points"] <= 0.0 and budget["images"] == 64 and budget["evaluations"] >= 1
    assert all(entry["layer"].startswith(("vit.", "classifier")) for entry in budget["most_sensitive"])
    with pytest.raises(UsageError, match="applies to int8 precisions"):
        convert(str(tiny_folder), to="openvino", precision="int4-weight", out=tmp_path / "int4",
                options=ExportOptions(max_accuracy_drop=1.0))
