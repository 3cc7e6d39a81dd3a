"""ONNX precisions: fused graphs, quantization recipes, the CPU-aware int8 scheme, the accuracy budget.

What every format owes at each precision (manifest, validation within tolerance, predict and embed,
tampering, verify) is checked by tests/test_conformance.py, on the same session-wide conversions.
"""

from __future__ import annotations

import collections

import numpy as np
import onnx
import pytest

from tests.conftest import DATA
from vitedge.converters import ExportOptions, convert
from vitedge.converters.onnx.budget import fit_budget
from vitedge.converters.onnx.quantize import Int8Scheme
from vitedge.errors import UsageError
from vitedge.formats import FORMATS
from vitedge.runtime import Classifier
from vitedge.runtime.cpu_features import CpuFeatures

ONNX_PRECISIONS = FORMATS["onnx"].precision_names
EXPECTED_OPS = {
    "fp32": {"Attention"},
    "fp16": {"Attention"},
    "int8-dynamic": {"MatMulInteger", "DynamicQuantizeLinear", "MultiHeadAttention"},
    "int8-static": {"QuantizeLinear", "DequantizeLinear", "MatMul"},
    "int4-weight": {"MatMulNBits"},
}


@pytest.fixture(scope="module")
def onnx_artifacts(artifact_of):
    return {p: artifact_of("onnx", p) for p in ONNX_PRECISIONS}


def _ops(folder) -> collections.Counter:
    return collections.Counter(node.op_type for node in onnx.load(str(folder / "model.onnx")).graph.node)


@pytest.mark.parametrize("precision", ONNX_PRECISIONS)
def test_each_precision_has_its_ops_and_predicts_like_fp32(onnx_artifacts, precision):
    clf = Classifier.open(onnx_artifacts[precision])
    manifest = clf.manifest
    assert EXPECTED_OPS[precision] <= set(_ops(onnx_artifacts[precision]))
    if precision != "fp32":
        assert "quantization" in manifest.conversion.recipe
        assert not (onnx_artifacts[precision] / "fp32.onnx").exists(), "the intermediate fp32 graph is removed"
    reference = Classifier.open(onnx_artifacts["fp32"]).predict(DATA / "chelsea.jpg", top_k=4)
    result = clf.predict(DATA / "chelsea.jpg", top_k=4)
    top = 2 if precision == "int4-weight" else 1  # 4-bit weights may swap close classes
    assert reference.top.index in [p.index for p in result.predictions[:top]]


def test_quantized_artifacts_are_smaller(onnx_artifacts):
    size = {p: sum(e.bytes for e in Classifier.open(path).manifest.files) for p, path in onnx_artifacts.items()}
    assert size["fp16"] < 0.6 * size["fp32"]
    # a tiny model's embeddings weigh more than a ViT-B's; the size targets are in benchmarks/
    assert size["int8-dynamic"] < 0.55 * size["fp32"] and size["int8-static"] < 0.6 * size["fp32"]
    assert size["int4-weight"] < size["int8-dynamic"]


def test_static_int8_keeps_layernorm_softmax_gelu_in_float_and_records_calibration(onnx_artifacts):
    manifest = Classifier.open(onnx_artifacts["int8-static"]).manifest
    assert manifest.conversion.calibration["method"] == "percentile"
    assert "calibration split" in manifest.conversion.calibration["source"]
    graph = onnx.load(str(onnx_artifacts["int8-static"] / "model.onnx")).graph
    dequantized = {node.output[0] for node in graph.node if node.op_type == "DequantizeLinear"}
    consumers = {node.op_type for node in graph.node if dequantized & set(node.input)}
    assert consumers - {"Shape"} == {"MatMul"}, "only MatMuls read int8 values; everything else stays float"


def test_plain_graph_uses_standard_onnx_ops_only(tiny_folder, tmp_path):
    result = convert(str(tiny_folder), to="onnx", out=tmp_path / "plain", options=ExportOptions(graph="plain"),
                     validation_samples=8)
    model = onnx.load(str(result.path / "model.onnx"))
    assert all(node.domain in ("", "ai.onnx") for node in model.graph.node)
    assert result.manifest.conversion.recipe["graph"] == "plain"


def test_int8_dynamic_fuses_attention_after_int8_projections_named_after_their_modules(onnx_artifacts):
    """q/k/v stay separate int8 MatMuls (keep-float and diagnose address them); softmax(QK^T)V is one float op."""
    graph = onnx.load(str(onnx_artifacts["int8-dynamic"] / "model.onnx")).graph
    recipe = Classifier.open(onnx_artifacts["int8-dynamic"]).manifest.conversion.recipe
    attention = [node for node in graph.node if node.op_type == "MultiHeadAttention"]
    assert len(attention) == recipe["fused_attention_layers"] > 0
    assert recipe["fused_attention_op"] == "com.microsoft.MultiHeadAttention"
    producers = {output: node for node in graph.node for output in node.output}
    for node in attention:
        sources = [producers[name] for name in node.input[:3]]
        scope = node.name.rsplit("/", 1)[0]
        assert [source.name.split("/")[-2] for source in sources] == ["q_proj", "k_proj", "v_proj"]
        assert all(source.name.startswith(scope) for source in sources)
    assert not any(node.op_type in ("Softmax", "Transpose") for node in graph.node if "/attention/" in node.name)


def test_int8_dynamic_keep_float_still_addresses_one_projection(tiny_folder, tmp_path):
    result = convert(str(tiny_folder), to="onnx", precision="int8-dynamic", out=tmp_path / "kf", validation_samples=4,
                     options=ExportOptions(keep_float=("vit.layers.0.attention.k_proj",)))
    nodes = {node.name: node.op_type for node in onnx.load(str(result.path / "model.onnx")).graph.node}
    assert nodes["/vit/layers.0/attention/k_proj/MatMul"] == "MatMul"
    assert "/vit/layers.0/attention/q_proj/MatMul_quant" in nodes
    assert "MultiHeadAttention" in nodes.values()


def test_int8_scheme_follows_the_cpu():
    vnni = Int8Scheme.for_cpu(CpuFeatures("x86_64", frozenset({"avx2", "avx512_vnni"})))
    avx2 = Int8Scheme.for_cpu(CpuFeatures("x86_64", frozenset({"avx2"})))
    arm = Int8Scheme.for_cpu(CpuFeatures("aarch64", frozenset({"asimd", "asimddp"})))
    # x86's int8 instructions multiply uint8 by int8: U8S8 (measured 2x faster than S8S8 with VNNI)
    assert not vnni.signed_activations and not vnni.reduce_range and vnni.fast
    assert arm.signed_activations and arm.fast
    assert not avx2.signed_activations and avx2.reduce_range and not avx2.fast and "may not run faster" in avx2.note


def test_budget_search_keeps_the_fewest_sensitive_nodes_in_float(monkeypatch):
    """A fake model whose drop is 4 points per quantized sensitive node (n1..n3) and 0 for the rest."""
    import vitedge.converters.onnx.budget as budget

    ranked = [("n1", 0.9), ("n2", 0.8), ("n3", 0.7), ("n4", 0.1), ("n5", 0.05)]
    state = {}

    def quantize_with(float_nodes):
        state["float"] = float_nodes
        return "model"

    def fake_logits(path, inputs):
        sensitive_quantized = 3 - sum(1 for n in state["float"] if n in ("n1", "n2", "n3"))
        logits = np.eye(100, 5)[:, [0, 1, 2, 3, 4]].copy()
        logits[: 4 * sensitive_quantized] = logits[: 4 * sensitive_quantized, ::-1]
        return logits

    monkeypatch.setattr(budget, "run_logits", fake_logits)
    reference = np.eye(100, 5)
    result = fit_budget(quantize_with, reference, np.zeros((100, 1)), ranked, max_drop_points=4.0)
    assert result.float_nodes == ("n1", "n2") and result.drop_points <= 4.0
    assert result.drop_all_quantized > 4.0 and state["float"] == ("n1", "n2")
    none_needed = fit_budget(quantize_with, reference, np.zeros((100, 1)), ranked, max_drop_points=20.0)
    assert none_needed.float_nodes == () and none_needed.evaluations == 1


def test_budget_runs_end_to_end_and_is_recorded(tiny_folder, tmp_path):
    options = ExportOptions(max_accuracy_drop=0.5)
    result = convert(str(tiny_folder), to="onnx", precision="int8-dynamic", out=tmp_path / "b", options=options,
                     validation_samples=8)
    budget = result.manifest.conversion.recipe["accuracy_budget"]
    assert budget["max_drop_points"] == 0.5 and budget["drop_points"] <= 0.5 and budget["images"] == 64
    assert budget["most_sensitive"] and "float_nodes" in result.manifest.conversion.recipe


def test_budget_needs_int8_and_a_trained_model(tiny_folder, tmp_path):
    with pytest.raises(UsageError, match="applies to int8"):
        convert(str(tiny_folder), to="onnx", precision="fp16", out=tmp_path / "a",
                options=ExportOptions(max_accuracy_drop=1.0))
    with pytest.raises(UsageError, match="needs a trained model"):
        convert("preset:vit-tiny-patch16-224", to="onnx", precision="int8-dynamic", out=tmp_path / "b",
                options=ExportOptions(max_accuracy_drop=1.0))


def test_calibration_reader_serves_chunks_so_memory_stays_bounded():
    """quantize_static collects activations chunk by chunk (CalibStridedMinMax) through set_range."""
    from vitedge.converters.calibration import CalibrationSet
    from vitedge.converters.onnx.quantize import CALIBRATION_CHUNK, _Reader

    inputs = np.arange(6 * 3, dtype=np.float32).reshape(6, 3)
    reader = _Reader(CalibrationSet(inputs, "test", "0"), "pixel_values")
    assert len(reader) == 6 and reader.chunk <= CALIBRATION_CHUNK and 6 % reader.chunk == 0
    seen = []
    for start in range(0, len(reader), reader.chunk):
        reader.set_range(start_index=start, end_index=start + reader.chunk)
        while (item := reader.get_next()) is not None:
            seen.append(item["pixel_values"])
    np.testing.assert_array_equal(np.concatenate(seen), inputs)
    assert _Reader(CalibrationSet(inputs[:5], "test", "0"), "x").chunk in (1, 5)


def test_a_histogram_calibration_that_cannot_bin_an_activation_falls_back_to_minmax(monkeypatch):
    from vitedge.converters.onnx import quantize

    calls = []

    def int8_static(model, fp32_path, out_path, calibration, method, float_nodes, scheme):
        calls.append(method)
        if method != "minmax":  # what numpy raises on a (near) zero-range activation, e.g. in a MobileViT
            raise ValueError("Too many bins for data range. Cannot create 2048 finite-sized bins.")
        return {"calibration_method": method}

    monkeypatch.setattr(quantize, "_int8_static", int8_static)
    recipe = quantize._int8_static_or_minmax(None, None, None, None, "percentile", (), None)
    assert calls == ["percentile", "minmax"] and recipe["calibration_method"] == "minmax"
    assert "fell back to minmax" in recipe["calibration_note"]
    monkeypatch.setattr(quantize, "_int8_static", lambda *args: (_ for _ in ()).throw(ValueError("other")))
    with pytest.raises(ValueError, match="other"):
        quantize._int8_static_or_minmax(None, None, None, None, "percentile", (), None)


@pytest.mark.parametrize("precision", ["int8-dynamic", "int8-static", "int4-weight"])
def test_a_graph_without_weighted_matmuls_is_not_labelled_int8(precision, tmp_path):
    """A MobileViT V2-like graph (1x1 convolutions only) would come out float under an int8 label: refused."""
    from onnx import TensorProto, helper, numpy_helper

    from vitedge.converters.onnx.quantize import quantize
    from vitedge.errors import ConversionError

    weight = numpy_helper.from_array(np.ones((4, 3, 1, 1), np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"])], "convs",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], [weight])
    fp32 = tmp_path / "fp32.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), fp32)
    with pytest.raises(ConversionError, match="no MatMul with weights left to quantize"):
        quantize(fp32, tmp_path / "q.onnx", precision)
