"""The published throughput table: runs per thread count pivoted into images/s per (threads, batch) and scaling."""

from __future__ import annotations

from pathlib import Path

from vitedge.benchmarks.latency import LatencyStats
from vitedge.benchmarks.results import BatchLatency, BenchResult, BenchRun, BenchSettings
from vitedge.benchmarks.studies.throughput import BATCH_SIZES, run_title, throughput_rows, throughput_section


def _latency(batch: int, p50_ms: float) -> BatchLatency:
    return BatchLatency(batch, LatencyStats(3, p50_ms, p50_ms, p50_ms, p50_ms, p50_ms))


def _run(threads: int, p50_by_batch: dict[int, float], *, failed: bool = False) -> BenchRun:
    ok = BenchResult(name="onnx-int8-dynamic", target="-", status="ok",
                     latency=tuple(_latency(b, ms) for b, ms in p50_by_batch.items()))
    broken = BenchResult(name="tflite-fp32", target="-", status="failed", error="x")
    settings = BenchSettings(threads=threads, batch_sizes=tuple(p50_by_batch), runs=3, rounds=1)
    return BenchRun("dev", "2026-01-01", "0", {"cpu": "Test CPU"}, settings, None, None,
                    (ok, broken) if failed else (ok,), command="python -m x", title=run_title("ViT-B", threads))


def test_rows_give_images_per_second_per_thread_count_and_the_scaling():
    one = _run(1, {1: 100.0, 8: 400.0, 32: 1600.0})
    two = _run(2, {1: 50.0, 8: 250.0, 32: 800.0}, failed=True)
    rows, header = throughput_rows({1: one, 2: two})
    assert header[1:4] == ["1 thr, b1 img/s", "1 thr, b8 img/s", "1 thr, b32 img/s"]
    assert rows == [["onnx-int8-dynamic", "10.0", "20.0", "20.0", "20.0", "32.0", "40.0", "2.00x", "1.60x", "2.00x"]]


def test_the_section_covers_only_throughput_runs():
    plain = _run(2, {1: 50.0})
    plain = BenchRun(**{**plain.__dict__, "title": "ViT-B"})
    assert throughput_section([plain]) == ""
    section = throughput_section([plain, _run(1, {1: 100.0}), _run(2, {1: 50.0})])
    assert section.startswith("## Throughput and thread scaling: ViT-B") and "b1 2 vs 1 thr" in section


def test_publish_plans_a_throughput_run_per_thread_count_unless_told_not_to(tmp_path):
    from vitedge.benchmarks.studies import publish

    args = publish.build_parser().parse_args(["--no-small", "--threads", "2", "--work", str(tmp_path)])
    titles = {plan.title: plan.settings for plan in publish.plans(args, Path(tmp_path))}
    for threads in (1, 2):
        settings = titles[run_title(publish.TITLES[publish.BASE], threads)]
        assert settings.threads == threads and settings.batch_sizes == BATCH_SIZES
    args = publish.build_parser().parse_args(["--no-small", "--no-throughput", "--work", str(tmp_path)])
    assert [plan.title for plan in publish.plans(args, Path(tmp_path))] == [publish.TITLES[publish.BASE]]


def test_throughput_times_fp32_bf16_and_the_fastest_int8_kind_of_each_format():
    from vitedge.benchmarks.studies.throughput import throughput_artifacts
    from vitedge.formats import FORMATS

    chosen = throughput_artifacts(FORMATS.values())
    assert {f"{name}-fp32" for name in FORMATS} <= chosen
    assert {"onnx-int8-dynamic", "tflite-int8-dynamic", "openvino-int8-static", "openvino-bf16"} <= chosen
    assert not {"onnx-int8-static", "tflite-fp16", "onnx-int4-weight"} & chosen


def test_only_throughput_plans_the_two_thread_counts_on_that_subset_and_nothing_else(tmp_path):
    from vitedge.benchmarks.studies.publish import build_parser, plans

    chosen = plans(build_parser().parse_args(["--only-throughput", "--threads", "2"]), tmp_path)
    assert [plan.title for plan in chosen] == [run_title("ViT-B/16-224 (random weights)", n) for n in (1, 2)]
    assert all(plan.only and plan.settings.batch_sizes == BATCH_SIZES for plan in chosen)
    assert not list(tmp_path.iterdir())  # planning converts nothing
