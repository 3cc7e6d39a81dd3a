"""vitedge diagnose (per-layer comparison with torch), --keep-float, and inspect --placement.

The planted fault: one block's MLP is rescaled so that a few of its hidden channels are 100x larger
(the next layer's weights shrink to match, so fp32 barely changes): int8 with activation ranges per
tensor or per row then loses the other channels. diagnose must point at that block and name the op;
keeping that op in float must bring the agreement back.
"""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from tests.conftest import TINY_LABELS, write_tiny_folder
from vitedge.cli import main
from vitedge.converters import ExportOptions, convert
from vitedge.errors import UsageError
from vitedge.formats import FORMATS

FAULTY_BLOCK = 2
SAMPLES = 24


def write_four_block_vit(folder, plant):
    """A 4-block tiny ViT with clear winners; ``plant(mlp, channels)`` puts a fault into block 2's MLP."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(hidden_size=64, num_hidden_layers=4, num_attention_heads=2, intermediate_size=128,
                       image_size=32, patch_size=8, num_labels=len(TINY_LABELS),
                       id2label=dict(enumerate(TINY_LABELS)), label2id={label: i for i, label in enumerate(TINY_LABELS)})
    torch.manual_seed(0)
    model = ViTForImageClassification(config).eval()
    with torch.no_grad():
        model.classifier.weight.normal_(0, 2.0)  # clear winners: int8 noise alone does not flip them
        plant(model.vit.layers[FAULTY_BLOCK].mlp, torch.arange(0, 128, 32))
    write_tiny_folder(folder)  # the preprocessor config
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def _outlier_channels(mlp, channels):
    mlp.fc1.weight[channels] *= 100
    mlp.fc1.bias[channels] = mlp.fc1.bias[channels].abs() * 100 + 100  # large and positive: GELU passes them
    mlp.fc2.weight[:, channels] /= 100


def write_faulty_folder(folder):
    """A 4-block tiny ViT whose block 2 MLP has outlier channels."""
    return write_four_block_vit(folder, _outlier_channels)


@pytest.fixture(scope="module")
def faulty_folder(tmp_path_factory):
    return write_faulty_folder(tmp_path_factory.mktemp("faulty") / "vit-4")


def _tap(diagnosis, name):
    return next(entry for entry in diagnosis.stats if entry.tap == name)


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_a_planted_fault_is_found_and_keep_float_on_the_named_op_restores_agreement(fmt, faulty_folder, tmp_path):
    from vitedge.converters.diagnose.engine import diagnose

    faulty = convert(str(faulty_folder), to=fmt, precision="int8-dynamic", out=tmp_path / "int8",
                     validation_samples=8, accept_failed_validation=True)
    assert not faulty.validation.passed, "the planted fault breaks plain int8"
    [found] = diagnose([faulty.path], str(faulty_folder), samples=SAMPLES)
    assert found.culprit == f"block {FAULTY_BLOCK}"
    assert set(found.culprit_ops) >= {f"vit.layers.{FAULTY_BLOCK}.mlp.fc1", f"vit.layers.{FAULTY_BLOCK}.mlp.fc2"}
    assert found.suggested_float_ops == (f"vit.layers.{FAULTY_BLOCK}.mlp.fc2",), "the op fed the outliers"

    fixed = convert(str(faulty_folder), to=fmt, precision="int8-dynamic", out=tmp_path / "fixed", validation_samples=8,
                    options=ExportOptions(keep_float=found.suggested_float_ops), accept_failed_validation=True)
    assert fixed.manifest.conversion.recipe["float_layers"] == list(found.suggested_float_ops)
    [after] = diagnose([fixed.path], str(faulty_folder), samples=SAMPLES)
    assert after.culprit != found.culprit and f"vit.layers.{FAULTY_BLOCK}.mlp.fc2" not in after.quantized_ops
    before_logits, after_logits = _tap(found, "logits"), _tap(after, "logits")
    assert before_logits.cosine < 0.9 and after_logits.cosine > 0.999
    assert after_logits.top1_agreement >= 0.8 and before_logits.top1_agreement <= 0.5  # random weights: near ties


#: What the diagnosis must say about how each format exposes its block outputs.
HOW_TAPS_ARE_READ = {"onnx": (), "tflite": (), "openvino": ("Model.add_outputs",),
                     "executorch": ("re-lowered", "min cosine 1.0000")}


@pytest.mark.parametrize("fmt", sorted(HOW_TAPS_ARE_READ))
def test_an_fp32_artifact_matches_torch_at_every_tap(fmt, artifact_of, tiny_folder):
    from vitedge.converters.diagnose.engine import diagnose

    [diagnosis] = diagnose([artifact_of(fmt, "fp32")], str(tiny_folder), samples=8)
    assert [entry.tap for entry in diagnosis.stats] == ["embeddings", "block 0", "block 1", "final norm", "logits"]
    for entry in diagnosis.stats:
        assert entry.min_cosine > 0.99999 and entry.relative_error < 1e-4, entry
        assert entry.top1_agreement in (None, 1.0)
    assert diagnosis.culprit is None and not diagnosis.quantized_ops and not diagnosis.missing
    assert all(fragment in diagnosis.how for fragment in HOW_TAPS_ARE_READ[fmt]), diagnosis.how


def test_the_cli_prints_the_table_the_culprit_and_what_to_do_and_writes_the_report(artifact_of, tiny_folder, tmp_path,
                                                                                     capsys):
    report = tmp_path / "diag.html"
    artifacts = [str(artifact_of("onnx", "int4-weight")), str(artifact_of("onnx", "fp32"))]
    assert main(["diagnose", *artifacts, "--against", str(tiny_folder), "--samples", "8", "--report", str(report)]) == 0
    out = capsys.readouterr().out
    assert "<- error jumps here" in out and "quantized ops in block" in out and "int4 weights (MatMulNBits)" in out
    assert re.search(r"try: vitedge convert MODEL --to onnx --precision int4-weight --keep-float vit\.layers\.\d", out)
    assert "no block stands out" in out, "the fp32 artifact"
    page = report.read_text()
    assert page.count('class="plot plot-diagnose"') == 1 and page.count('class="taps"') == 2
    assert "<script" not in page and "src=" not in page
    assert re.sub(r'xmlns(:xlink)?="http://www\.w3\.org/[^"]*"', "", page).count("http") == 0
    assert main(["diagnose", artifacts[1], "--against", str(tiny_folder), "--samples", "4", "--json"]) == 0
    [record] = json.loads(capsys.readouterr().out)
    assert record["culprit"] is None and len(record["taps"]) == 5


def test_an_artifact_and_a_model_that_do_not_belong_together_are_one_line(tiny_artifact, tmp_path, capsys):
    bigger = write_tiny_folder(tmp_path / "other-size", image_size=64)
    capsys.readouterr()  # save_pretrained's progress bar
    assert main(["diagnose", str(tiny_artifact), "--against", str(bigger)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "another architecture" in err and "image_size 32 vs 64" in err
    relabelled = write_tiny_folder(tmp_path / "other-labels")
    config = json.loads((relabelled / "config.json").read_text())
    config["id2label"] = {str(i): f"thing-{i}" for i in range(len(TINY_LABELS))}
    config["label2id"] = {f"thing-{i}": i for i in range(len(TINY_LABELS))}
    (relabelled / "config.json").write_text(json.dumps(config))
    capsys.readouterr()
    assert main(["diagnose", str(tiny_artifact), "--against", str(relabelled)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "other labels" in err and "--against" in err


def test_a_format_that_cannot_expose_its_tensors_says_so(tiny_artifact, tiny_folder, monkeypatch):
    import vitedge.converters.diagnose.engine as engine

    blind = dataclasses.replace(FORMATS["onnx"], intermediates=None)
    monkeypatch.setattr(engine, "get_format", lambda name: blind)
    with pytest.raises(UsageError, match="cannot expose their intermediate tensors"):
        engine.diagnose([tiny_artifact], str(tiny_folder))


def test_keep_float_is_checked_in_one_place_with_a_suggestion(tiny_folder, tmp_path):
    with pytest.raises(UsageError, match=r"names no quantized op.*did you mean 'vit\.layers\.1\.mlp\.fc1'"):
        convert(str(tiny_folder), to="onnx", precision="int8-dynamic", out=tmp_path / "a",
                options=ExportOptions(keep_float=("vit.layers.1.mlp.fc11",)))
    with pytest.raises(UsageError, match="keeps every op in float already"):
        convert(str(tiny_folder), to="onnx", precision="fp32", out=tmp_path / "b",
                options=ExportOptions(keep_float=("vit.layers.0",)))
    without = [fmt for fmt in FORMATS.values() if "keep_float" not in fmt.options]
    for fmt in without:  # formats that cannot leave layers in float yet refuse the option up front
        with pytest.raises(UsageError, match="does not take the option"):
            convert(str(tiny_folder), to=fmt.name, precision=fmt.precision_names[-1], out=tmp_path / fmt.name,
                    options=ExportOptions(keep_float=("vit.layers.0",)))


def test_onnx_keep_float_leaves_the_named_matmuls_in_float(tiny_folder, tmp_path):
    import onnx

    result = convert(str(tiny_folder), to="onnx", precision="int4-weight", out=tmp_path / "int4", validation_samples=4,
                     options=ExportOptions(keep_float=("vit.layers.1.mlp.*",)))
    nodes = {node.name: node.op_type for node in onnx.load(str(result.path / "model.onnx")).graph.node}
    assert nodes["/vit/layers.1/mlp/fc1/MatMul"] == "MatMul" and nodes["/vit/layers.1/mlp/fc2/MatMul"] == "MatMul"
    assert sum(op == "MatMulNBits" for op in nodes.values()) == 10
    assert result.manifest.conversion.recipe["float_layers"] == ["vit.layers.1.mlp.fc1", "vit.layers.1.mlp.fc2"]


def test_coreml_keep_float_leaves_the_layer_uncompressed_and_diagnose_simulates_it(tiny_folder, tmp_path):
    from vitedge.converters.coreml.mlpackage import decompressed_weights
    from vitedge.converters.diagnose.engine import diagnose

    result = convert(str(tiny_folder), to="coreml", precision="int8-weight", out=tmp_path / "cml", validation_samples=4,
                     options=ExportOptions(keep_float=("vit.layers.0.mlp.fc1",)))
    compressed = decompressed_weights(result.path / "model.mlpackage")
    assert not any("layers_0_mlp_fc1" in name for name in compressed) and any("layers_0_mlp_fc2" in n for n in compressed)
    [diagnosis] = diagnose([result.path], str(tiny_folder), samples=4)
    assert "simulated" in diagnosis.how and "vit.layers.0.mlp.fc1" not in diagnosis.quantized_ops
    assert "vit.layers.0.mlp.fc2" in diagnosis.quantized_ops and min(e.cosine for e in diagnosis.stats) > 0.99


def test_tflite_budget_uses_the_shared_per_layer_measurement(tiny_folder, tmp_path):
    result = convert(str(tiny_folder), to="tflite", precision="int8-dynamic", out=tmp_path / "budget",
                     validation_samples=4, options=ExportOptions(max_accuracy_drop=0.0))
    budget = result.manifest.conversion.recipe["accuracy_budget"]
    assert budget["drop_points"] <= 0.0 and budget["images"] == 64 and budget["evaluations"] >= 1
    assert all(entry["layer"].startswith(("vit.", "classifier")) for entry in budget["most_sensitive"])


@pytest.mark.parametrize("precision", ["fp32", "int8-dynamic"])
def test_tflite_ops_are_named_after_the_layer_whose_weights_they_hold(precision, artifact_of, tiny_folder):
    """converters/tflite/op_names.py: every weight op maps to its own layer, read from the (dequantized) weights."""
    from ai_edge_litert.interpreter import Interpreter

    from vitedge.converters.diagnose.reference import model_layout
    from vitedge.converters.loading import load_source
    from vitedge.converters.tflite.op_names import FlatbufferOps, layer_weights, weight_op_modules

    source = load_source(str(tiny_folder))
    layout = model_layout(source.model)
    interpreter = Interpreter(model_path=str(artifact_of("tflite", precision) / "model.tflite"))
    interpreter.allocate_tensors()
    named = weight_op_modules(FlatbufferOps.of(interpreter), layout, None, interpreter=interpreter,
                              weights=layer_weights(source.model, layout))
    assert sorted(named.values()) == sorted(set(layout.layers.values())), "each of the 14 weight layers exactly once"
    by_block = [block for _, block in sorted((index, name.split(".")[2]) for index, name in named.items()
                                             if name.startswith("vit.layers."))]
    assert by_block == sorted(by_block), "in execution order, block 0's ops come before block 1's"


def test_onnx_placement_lists_every_node_with_its_provider_and_precision(artifact_of, capsys):
    artifact = str(artifact_of("onnx", "int8-dynamic"))
    assert main(["inspect", artifact, "--placement", "--require-delegate"]) == 0
    out = capsys.readouterr().out
    assert "every op runs on CPUExecutionProvider" in out and "int8" in out
    assert main(["inspect", artifact, "--placement", "--json"]) == 0
    placement = json.loads(capsys.readouterr().out)
    assert placement["fallbacks"] == 0 and placement["ops"]
    assert {op["device"] for op in placement["ops"]} == {"CPUExecutionProvider"}
    assert any(op["precision"] == "int8" and op["op_type"].startswith(("DynamicQuantizeMatMul", "MatMulInteger"))
               for op in placement["ops"])
    assert main(["inspect", artifact, "--placement", "--provider", "NoSuchExecutionProvider"]) == 1
    assert "has no NoSuchExecutionProvider" in capsys.readouterr().err


def test_tflite_placement_lists_what_xnnpack_declined_and_require_delegate_fails(artifact_of, capsys):
    artifact = str(artifact_of("tflite", "fp32"))
    assert main(["inspect", artifact, "--placement", "--json"]) == 0
    placement = json.loads(capsys.readouterr().out)
    fallbacks = [op for op in placement["ops"] if op["fallback"]]
    assert placement["preferred"] == "XNNPACK delegate" and fallbacks
    assert len(fallbacks) < len(placement["ops"]) / 4, "XNNPACK takes most of the graph"
    assert all(op["reason"] and op["device"] == "CPU (LiteRT builtin kernel)" for op in fallbacks)
    assert any(op["op_type"] == "FULLY_CONNECTED" and op["device"] == "XNNPACK delegate" for op in placement["ops"])
    assert main(["inspect", artifact, "--placement", "--require-delegate"]) == 3
    captured = capsys.readouterr()
    assert "fell back from XNNPACK delegate" in captured.out and "--require-delegate" in captured.err


def test_placement_options_need_placement_and_core_ml_says_where_it_can(tiny_artifact, capsys, monkeypatch):
    assert main(["inspect", str(tiny_artifact), "--require-delegate"]) == 2
    assert "goes with --placement" in capsys.readouterr().err
    import platform

    from vitedge.runtime.placement.coreml import coreml_placement

    if platform.system() != "Darwin":
        from vitedge.errors import BackendUnavailableError

        with pytest.raises(BackendUnavailableError, match="only on macOS"):
            coreml_placement(tiny_artifact, None)


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_the_registry_names_real_diagnose_and_placement_hooks(name):
    from vitedge.formats import load_entry_point

    fmt = FORMATS[name]
    if fmt.intermediates:
        assert callable(load_entry_point(fmt.intermediates))
    if fmt.placement and fmt.backend_installed():
        assert callable(load_entry_point(fmt.placement))
        assert fmt.placement.startswith("vitedge.runtime."), "placement is torch free: it lives in the runtime"
    if "keep_float" in fmt.options:
        assert fmt.intermediates, "a format that takes --keep-float shows the names diagnose prints"


def test_layer_names():
    from vitedge.converters.layer_names import block_index, onnx_module_path, parse_patterns, select
    from vitedge.converters.tflite.op_names import location_chains

    assert onnx_module_path("/vit/layers.10/mlp/fc2/MatMul_quant") == "vit.layers.10.mlp.fc2"
    assert onnx_module_path("/classifier/Gemm") == "classifier" and onnx_module_path("Identity_3") is None
    assert block_index("vit.layers.10.mlp.fc2") == 10 and block_index("vit.encoder.layer.3.output") == 3
    assert block_index("vit.embeddings.patch_embeddings.projection") is None
    names = ["vit.layers.1.mlp.fc1", "vit.layers.1.mlp.fc2", "vit.layers.10.mlp.fc1"]
    assert select(["vit.layers.1"], names, where="x") == ("vit.layers.1.mlp.fc1", "vit.layers.1.mlp.fc2")
    assert select(["*.fc1"], names, where="x") == ("vit.layers.1.mlp.fc1", "vit.layers.10.mlp.fc1")
    assert parse_patterns(["a, b", "c"]) == ("a", "b", "c")
    name = ("vitedge.converters.tflite.export.EdgeClassifier/vitedge.converters.adapters.TwoOutputClassifier_classifier/"
            "transformers.models.vit.modeling_vit.ViTModel_vit/transformers.models.vit.modeling_vit.ViTLayer_0/"
            "torch.nn.modules.linear.Linear_q_proj;1")
    assert location_chains(name) == [("vit", "0", "q_proj")]
