"""The GEMM ceiling study's arithmetic (MACs, the model-level ceiling, each artifact's share) and its onnxruntime kernels.

Nothing here times anything: the GMAC/s below are made-up inputs to the arithmetic.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from vitedge.benchmarks.latency import LatencyStats
from vitedge.benchmarks.macs import vit_gemms, vit_macs, weight_gemm_shapes
from vitedge.benchmarks.results import BatchLatency, BenchResult, BenchRun, BenchSettings
from vitedge.benchmarks.studies.ceiling import (
    SCHEMA,
    Ceiling,
    compute_precision,
    efficiency_rows,
    efficiency_section,
)
from vitedge.errors import UsageError

VIT_B = {"model_type": "vit", "hidden_size": 768, "num_hidden_layers": 12, "intermediate_size": 3072,
         "image_size": 224, "patch_size": 16, "num_labels": 1000}


def test_vit_b_is_17_56_gmac_and_its_gemm_shapes_are_the_encoders():
    assert vit_macs(VIT_B) == pytest.approx(17.56e9, rel=1e-3)
    assert weight_gemm_shapes(VIT_B) == [(197, 768, 768), (197, 768, 3072), (197, 3072, 768)]
    large = {**VIT_B, "hidden_size": 1024, "num_hidden_layers": 24, "intermediate_size": 4096, "image_size": 384}
    assert weight_gemm_shapes(large) == [(577, 1024, 1024), (577, 1024, 4096), (577, 4096, 1024)]


def test_deit_counts_its_distillation_token_and_other_families_are_not_counted():
    assert vit_gemms({**VIT_B, "model_type": "deit"})[1].m == 198
    assert vit_macs({"model_type": "swin", "embed_dim": 96}) is None
    assert vit_macs({"model_type": "vit"}) is None  # sizes missing


def _ceiling_file(tmp_path, rates: dict[tuple[int, int, int], float], *, cpu="Test CPU", load=0.5):
    kernels = [{"backend": "b", "precision": "int8 (dynamic)", "op": "X", "m": m, "k": k, "n": n, "copies": 1,
                "ms_per_gemm": m * k * n / rate / 1e6, "gmacs": rate} for (m, k, n), rate in rates.items()]
    kernels.append({**kernels[0], "precision": "fp32", "gmacs": 1.0})
    path = tmp_path / "gemm_ceiling.json"
    path.write_text(json.dumps({"schema": SCHEMA, "created": "2026-01-01T00:00:00+00:00", "threads": 2,
                                "load_average": load, "machine": {"cpu": cpu, "logical_cpus": 2}, "kernels": kernels}))
    return path


def test_the_model_ceiling_mixes_the_best_rates_as_the_models_gemms_are_weighted(tmp_path):
    rates = {(197, 768, 768): 100.0, (197, 768, 3072): 200.0, (197, 3072, 768): 200.0}
    ceiling = Ceiling.load(_ceiling_file(tmp_path, rates))
    gemms = vit_gemms(VIT_B)
    measured = [g for g in gemms if g.role.startswith(("attention projections", "MLP"))]
    seconds = sum(g.macs / rates[(g.m, g.k, g.n)] for g in measured)
    mix = sum(g.macs for g in measured) / seconds
    expected = vit_macs(VIT_B) / (seconds + sum(g.macs for g in gemms if g not in measured) / mix)
    assert ceiling.model_rate(VIT_B, "int8") == pytest.approx(expected)
    assert 100 < expected < 200
    assert ceiling.model_rate(VIT_B, "bf16") is None  # nothing measured at bf16
    assert ceiling.model_rate({**VIT_B, "image_size": 32, "patch_size": 4}, "int8") is None  # other shapes


def _run(cpu: str, p50_ms: float, threads: int = 2) -> BenchRun:
    latency = BatchLatency(1, LatencyStats(5, p50_ms, p50_ms, p50_ms, p50_ms, p50_ms))
    result = BenchResult(name="onnx-int8-dynamic", target="-", status="ok", model="preset:vit-base-patch16-224",
                         format="onnx", precision="int8-dynamic", latency=(latency,))
    return BenchRun("dev", "2026-01-01", "0", {"cpu": cpu}, BenchSettings(threads=threads), None, None, (result,),
                    title="ViT-B" if threads == 2 else f"ViT-B at {threads} thread")


def test_each_artifact_gets_its_effective_rate_and_share_only_on_the_ceilings_cpu(tmp_path):
    rates = {(197, 768, 768): 500.0, (197, 768, 3072): 500.0, (197, 3072, 768): 500.0}
    ceiling = Ceiling.load(_ceiling_file(tmp_path, rates))
    [row] = efficiency_rows(_run("Test CPU", p50_ms=70.255), ceiling)
    effective = vit_macs(VIT_B) / 0.070255 / 1e9
    assert row[3] == f"{effective:.1f}" and row[4] == "int8" and row[5] == "500"
    assert row[6] == f"{100 * effective / 500:.0f}%"
    [other] = efficiency_rows(_run("Another CPU", p50_ms=70.0), ceiling)
    assert other[6] == "other CPU"


def test_the_section_compares_runs_at_the_ceilings_thread_count_only(tmp_path):
    path = _ceiling_file(tmp_path, {(197, 768, 768): 500.0, (197, 768, 3072): 500.0, (197, 3072, 768): 500.0})
    section = efficiency_section([_run("Test CPU", 70.0), _run("Test CPU", 120.0, threads=1)], path)
    assert "### ViT-B" in section and "at 1 thread" not in section


def test_the_section_warns_about_a_busy_ceiling_and_is_empty_without_a_file(tmp_path):
    busy = _ceiling_file(tmp_path, {(197, 768, 768): 5.0}, load=9.0)
    assert "busy machine" in efficiency_section([_run("Test CPU", 60.0)], busy)
    assert efficiency_section([_run("Test CPU", 60.0)], tmp_path / "missing.json") == ""
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(UsageError, match="not a GEMM ceiling"):
        Ceiling.load(tmp_path / "bad.json")


def test_compute_precision_of_artifacts_and_kernel_labels():
    assert [compute_precision(p) for p in ("int8-dynamic", "int8-static", "bf16", "fp16", "int4-weight", "fp32")] == [
        "int8", "int8", "bf16", "fp32", "fp32", "fp32"]
    assert compute_precision("int8 (GEMM only, u8 activations given)") == "int8"
    # TFLite's int4 weights run in XNNPACK's dynamic-range int8 kernel, OpenVINO's compressed weights in its CPU
    # plugin's dynamic quantization; ONNX's MatMulNBits in fp32
    assert [compute_precision(p, fmt) for fmt, p in (("tflite", "int4-weight"), ("openvino", "int8-weight"),
                                                     ("openvino", "int4-weight"), ("onnx", "int4-weight"))] == [
        "int8", "int8", "int8", "fp32"]


def test_onnx_kernels_run_vitedges_int8_recipe_as_onnxruntimes_fused_ops(tmp_path):
    from vitedge.benchmarks.studies.gemm_kernels import onnx_kernels

    kernels = onnx_kernels(8, 32, 16, 1, tmp_path)
    assert [k.precision.split(" ")[0] for k in kernels] == ["fp32", "int8", "int8"]
    assert "DynamicQuantizeMatMul" in kernels[1].op and kernels[2].op == "MatMulInteger"
    outputs = kernels[1].run()
    assert len(outputs) == kernels[1].copies and all(np.isfinite(o).all() for o in outputs)


def test_the_published_readme_carries_the_ceiling_section_once_it_is_measured(tmp_path, monkeypatch):
    from vitedge.benchmarks.studies import publish

    monkeypatch.setattr(publish, "RESULTS", tmp_path)
    assert "## How close to the GEMM ceiling" not in publish.readme([_run("Test CPU", 60.0)])
    _ceiling_file(tmp_path, {(197, 768, 768): 500.0})
    assert "## How close to the GEMM ceiling" in publish.readme([_run("Test CPU", 60.0)])
