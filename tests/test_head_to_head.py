"""The published int8 head-to-head: vitedge's fastest int8 against the fastest int8 peer, overall and per format."""

from __future__ import annotations

from pathlib import Path

from vitedge.benchmarks.latency import LatencyStats
from vitedge.benchmarks.results import BatchLatency, BenchResult, BenchRun, BenchSettings
from vitedge.benchmarks.studies.head_to_head import head_to_head_rows, head_to_head_section


def _result(name: str, kind: str, fmt: str, precision: str, p50_ms: float | None) -> BenchResult:
    if p50_ms is None:
        return BenchResult(name=name, target="-", status="failed", error="x", kind=kind, format=fmt, precision=precision)
    latency = (BatchLatency(1, LatencyStats(3, p50_ms, p50_ms, p50_ms, p50_ms, p50_ms)),)
    return BenchResult(name=name, target="-", status="ok", kind=kind, format=fmt, precision=precision, latency=latency)


def _run(*results: BenchResult) -> BenchRun:
    settings = BenchSettings(threads=2, batch_sizes=(1,), runs=3, rounds=1)
    return BenchRun("dev", "2026-01-01", "0", {"cpu": "Test CPU"}, settings, None, None, results,
                    command="python -m x", title="ViT-L")


RUN = _run(
    _result("tflite-int8-dynamic", "artifact", "tflite", "int8-dynamic", 80.0),
    _result("onnx-int8-dynamic", "artifact", "onnx", "int8-dynamic", 90.0),
    _result("onnx-fp32", "artifact", "onnx", "fp32", 10.0),  # fast, but not int8: not in the head-to-head
    _result("openvino-int8-static", "artifact", "openvino", "int8-static", None),  # failed: no row of its own
    _result("PyTorch eager fp32", "peer", "pytorch", "fp32", 300.0),
    _result("ORT quantize_dynamic (defaults)", "peer", "onnx", "int8-dynamic", 100.0),
    _result("OpenVINO + NNCF defaults", "peer", "openvino", "int8-static", 85.0),
)


def test_rows_pair_the_fastest_int8_of_each_side_overall_and_per_format():
    rows = head_to_head_rows(RUN)
    assert rows[0] == ["ViT-L on dev", "Test CPU", "all", "tflite-int8-dynamic", "80.0", "OpenVINO + NNCF defaults", "85.0", "0.94x"]
    assert rows[1] == ["ViT-L on dev", "Test CPU", "onnx", "onnx-int8-dynamic", "90.0", "ORT quantize_dynamic (defaults)", "100.0",
                       "0.90x"]
    assert len(rows) == 2  # openvino: vitedge's artifact failed, so no per-format row


def test_a_run_without_int8_peers_has_no_section():
    plain = _run(_result("onnx-int8-dynamic", "artifact", "onnx", "int8-dynamic", 90.0),
                 _result("PyTorch eager fp32", "peer", "pytorch", "fp32", 300.0))
    assert head_to_head_rows(plain) == [] and head_to_head_section([plain]) == ""
    assert head_to_head_section([plain, RUN]).startswith("## int8 head-to-head")


def test_publish_large_int8_plans_each_formats_int8_and_only_the_int8_peers(tmp_path):
    from vitedge.benchmarks.studies import publish

    args = publish.build_parser().parse_args(["--large-int8", "--work", str(tmp_path)])
    (plan,) = publish.plans(args, Path(tmp_path))
    assert plan.title == publish.LARGE_INT8_TITLE and plan.model == f"preset:{publish.LARGE}"
    assert {"onnx-int8-dynamic", "tflite-int8-dynamic", "openvino-int8-static"} <= plan.only
    assert not {"onnx-fp32", "onnx-int8-static", "coreml-int8-weight"} & plan.only
    assert plan.peers == publish.INT8_PEERS and plan.settings.rounds > 3


def test_peer_slots_build_only_the_peers_a_plan_names(tmp_path, monkeypatch):
    from vitedge.benchmarks.studies import peers, publish

    made = []

    def fake_ort(plain, out):
        made.append(Path(out).name)
        raise RuntimeError("not built in this test")

    monkeypatch.setattr(peers, "ort_quantize_dynamic_peer", fake_ort)
    monkeypatch.setattr(publish, "_build", lambda folder, fresh, make: make())
    monkeypatch.setattr(peers, "plain_onnx_export", lambda source, out: Path(out))
    plan = publish.Plan("t", "preset:x", BenchSettings(threads=1, batch_sizes=(1,), runs=1, rounds=1), 1,
                        peers=frozenset({"ORT quantize_dynamic (defaults)"}))
    (slot,) = publish.peer_slots(plan, None, tmp_path, fresh=False)
    assert made == ["ort"] and slot.status == "failed" and slot.kind == "peer" and "not built" in slot.error
    assert publish.peer_slots(publish.dataclasses.replace(plan, peers=frozenset()), None, tmp_path, fresh=False) == []


def test_a_peer_copies_the_manifest_of_any_artifact_of_its_format(tmp_path, monkeypatch):
    from vitedge.benchmarks.studies import publish

    for name in ("openvino-int8-static", "openvino-int8-weight", "onnx-fp32"):
        (tmp_path / name).mkdir()
    monkeypatch.setattr(publish, "_reusable", lambda folder: folder.name != "openvino-int8-weight")
    assert publish._template(tmp_path, "openvino") == tmp_path / "openvino-int8-static"
    assert publish._template(tmp_path, "onnx") == tmp_path / "onnx-fp32"
    assert publish._template(tmp_path, "tflite") == tmp_path / "tflite-fp32"  # none yet: the usual fp32 folder
