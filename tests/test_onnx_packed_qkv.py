"""The exporter-choice study's packed-q/k/v variant: one int8 GEMM per attention, the same numbers as three."""

from __future__ import annotations

import collections

import numpy as np


def _op_counts(path) -> collections.Counter:
    import onnx

    return collections.Counter(node.op_type for node in onnx.load(str(path)).graph.node)


def test_packing_q_k_v_keeps_the_int8_graphs_outputs_and_drops_two_gemms_per_layer(artifact_of, tmp_path):
    import onnxruntime as ort

    from vitedge.benchmarks.studies.onnx_packed_qkv import pack_qkv

    source = artifact_of("onnx", "int8-dynamic") / "model.onnx"
    packed = tmp_path / "packed.onnx"
    layers = _op_counts(source)["MultiHeadAttention"]
    assert layers > 0 and pack_qkv(source, packed) == layers
    before, after = _op_counts(source), _op_counts(packed)
    assert after["MatMulInteger"] == before["MatMulInteger"] - 2 * layers and after["Split"] == before["Split"] + layers
    sessions = [ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]) for path in (source, packed)]
    (model_input,) = sessions[0].get_inputs()
    shape = [2 if not isinstance(d, int) else d for d in model_input.shape]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    reference, candidate = (s.run(None, {model_input.name: x})[0] for s in sessions)
    np.testing.assert_allclose(candidate, reference, rtol=0, atol=1e-5)  # same integer GEMMs, same scales


def test_a_graph_without_int8_attention_projections_is_left_alone(tiny_artifact, tmp_path):
    from vitedge.benchmarks.studies.onnx_packed_qkv import pack_qkv

    source = tiny_artifact / "model.onnx"  # fp32: a fused Attention op, no MatMulInteger to pack
    assert pack_qkv(source, tmp_path / "same.onnx") == 0
    assert _op_counts(tmp_path / "same.onnx") == _op_counts(source)
