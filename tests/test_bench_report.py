"""Benchmark reports: Markdown, terminal, and the HTML page rendered in a real headless browser."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from vitedge.benchmarks.latency import LatencyStats
from vitedge.benchmarks.report import write_report
from vitedge.benchmarks.report_html import html_report
from vitedge.benchmarks.report_md import markdown_report, text_report
from vitedge.benchmarks.results import (
    AccuracyStats,
    BatchLatency,
    BenchResult,
    BenchRun,
    BenchSettings,
    DataInfo,
    MemoryStats,
    save_runs,
)
from vitedge.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _row(name: str, precision: str, p50: float, top1: float, size_mb: float) -> BenchResult:
    samples = list(np.random.default_rng(int(p50)).gamma(20, p50 / 20, size=30))
    return BenchResult(
        name=name, target=f"artifacts/{name}", status="ok", model="preset:vit-base-patch16-224", weights="trained",
        format=name.split("-")[0], precision=precision, backend="onnxruntime", backend_version="1.31.1",
        size_bytes=int(size_mb * 1e6), cold_load_ms=300.0, load_parts_ms={"import": 100.0, "checksum": 50.0, "load": 150.0},
        first_inference_ms=2 * p50, memory=MemoryStats(60_000_000, 60_000_000 + int(2.2 * size_mb * 1e6)),
        latency=(BatchLatency.of(1, [s / 1000 for s in samples]), BatchLatency(8, LatencyStats(30, 6 * p50, 7 * p50, 8 * p50, 6 * p50, 5 * p50))),
        accuracy=AccuracyStats(samples=50, top1=top1, top5=min(1.0, top1 + 0.1), reference="onnx-fp32",
                               top1_agreement=top1 + 0.05, mean_logits_cosine=0.999, min_logits_cosine=0.99),
    )


def make_run(device: str, speed: float = 1.0) -> BenchRun:
    rows = (
        _row("onnx-fp32", "fp32", 40 * speed, 0.90, 346),
        _row("onnx-int8-dynamic", "int8-dynamic", 22 * speed, 0.88, 88),
        _row("tflite-fp16", "fp16", 35 * speed, 0.895, 173),
        BenchResult(name="coreml-fp16", target="artifacts/coreml-fp16", status="skipped", format="coreml",
                    model="preset:vit-base-patch16-224", size_bytes=173_000_000, error="Core ML runs only on Darwin, not Linux"),
        BenchResult(name="broken | pipe", target="artifacts/broken", status="failed",
                    error="artifacts/broken/model.onnx: sha256 checksum mismatch with the manifest"),
    )
    return BenchRun(
        device=device, created="2026-01-01T00:00:00+00:00", vitedge_version="0.1.0",
        machine={"cpu": "Test CPU", "logical_cpus": 4, "usable_cpus": 4, "instruction_sets": ["avx2"], "os": "Linux 6",
                 "machine": "x86_64", "python": "3.11", "packages": {"onnxruntime": "1.31.1"}},
        settings=BenchSettings(threads=4), data=DataInfo("50 built-in shapes test images", 50, True, ("circle",)),
        reference="onnx-fp32", results=rows, command="vitedge bench …",
    )


def test_markdown_and_terminal_reports_show_every_row_and_device():
    runs = [make_run("laptop"), make_run("raspberry-pi", speed=6)]
    markdown = markdown_report(runs)
    for text in ("## laptop", "## raspberry-pi", "## Across devices", "| onnx-int8-dynamic |", "speed-up vs onnx-fp32",
                 "skipped: Core ML runs only on Darwin", "FAILED: artifacts/broken", "broken \\| pipe", "88.0%"):
        assert text in markdown, text
    assert "1.82x" in markdown, "int8 vs fp32 speed-up at batch 1 (40 ms / 22 ms)"
    terminal = text_report(runs[:1])
    assert "== laptop ==" in terminal and "onnx-fp32" in terminal and "|" not in terminal.split("== laptop ==")[1].splitlines()[3]


def test_report_command_merges_results_files(tmp_path, capsys):
    laptop, pi = save_runs([make_run("laptop")], tmp_path / "laptop.json"), save_runs([make_run("pi", 6)], tmp_path / "pi.json")
    for out in ("merged.md", "merged.html", "merged.json"):
        assert main(["report", str(laptop), str(pi), "-o", str(tmp_path / out)]) == 0
        assert "2 run(s): laptop, pi" in capsys.readouterr().out
    assert "## pi" in (tmp_path / "merged.md").read_text()
    assert main(["report", str(laptop), "-o", str(tmp_path / "merged.txt")]) == 2
    assert main(["report", str(tmp_path / "nope.json"), "-o", str(tmp_path / "r.md")]) == 2
    assert "no such results file" in capsys.readouterr().err


def without_namespace_names(page: str) -> str:
    """The page minus the SVG namespace URIs (names, never fetched)."""
    return re.sub(r'xmlns(:xlink)?="http://www\.w3\.org/[^"]*"', "", page)


def test_html_is_self_contained_with_the_plots():
    page = html_report([make_run("laptop"), make_run("pi", 6)])
    assert page.count('class="plot plot-pareto"') == 1 and page.count('class="plot plot-size"') == 1
    assert page.count('class="plot plot-latency"') == 2, "one latency chart per batch size"
    assert "<script" not in page and "src=" not in page and "<link" not in page and "@import" not in page
    assert without_namespace_names(page).count("http") == 0, "nothing fetched from anywhere"
    assert 'class="skipped"' in page and 'class="failed"' in page
    ids = re.findall(r' id="([^"]+)"', page)
    assert len(ids) == len(set(ids)), "charts on one page share no element ids"
    assert "<title>onnx-int8-dynamic @ pi: " in page, "hovering a point shows its numbers"


def test_pareto_points_are_told_apart_by_a_legend_not_by_labels_beside_them():
    """Rows with the same accuracy used to get overlapping text labels; now each artifact is one legend entry."""
    import dataclasses

    from vitedge.benchmarks.plots import by_model, pareto_chart

    run = make_run("laptop")
    same = tuple(dataclasses.replace(row, accuracy=dataclasses.replace(row.accuracy, top1=0.9)) if row.accuracy else row
                 for row in run.results)
    model, entries = next(iter(by_model([dataclasses.replace(run, results=same)]).items()))
    chart = pareto_chart(model, entries)
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", chart)
    for name in ("onnx-fp32", "onnx-int8-dynamic", "tflite-fp16"):
        assert texts.count(name) == 1, (name, texts)
    assert re.search(r'<g id="[^"]*legend', chart)


def test_html_renders_in_a_headless_browser(tmp_path):
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI: .ci/run installs it (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium); CI runs this test")
    page = write_report([make_run("laptop"), make_run("pi", 6)], tmp_path / "report.html")
    screenshot = tmp_path / "report.png"
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={screenshot}", "--window-size=1280,2000",
               page.resolve().as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert screenshot.is_file(), f"no screenshot (exit {done.returncode}): {done.stderr[-2000:]}"
    image = Image.open(screenshot).convert("RGB")
    assert image.size == (1280, 2000)
    colors = image.getcolors(maxcolors=1 << 20)
    assert colors is not None and len(colors) > 50, "a blank or nearly blank page"
    pixels = np.asarray(image)
    blue = ((pixels[..., 2] > 150) & (pixels[..., 0] < 80)).sum()
    assert blue > 500, "the plots' coloured marks are on the page"


def test_a_model_given_by_path_is_headed_by_its_last_folders_and_long_titles_wrap():
    import dataclasses

    from vitedge.benchmarks.plots import short_model_name
    from vitedge.figures import TITLE_WIDTH

    assert short_model_name("/home/ana/experiments/2026/run-17/checkpoint") == "run-17/checkpoint"
    assert short_model_name("google/vit-base-patch16-224") == "google/vit-base-patch16-224"  # a hub id stays whole
    assert short_model_name("preset:vit-tiny-patch16-224") == "preset:vit-tiny-patch16-224"
    deep = "/home/ana/experiments/2026/a-rather-long-folder-name-for-a-fine-tuned-checkpoint/checkpoint-best"
    run = make_run("laptop")
    run = dataclasses.replace(run, results=tuple(dataclasses.replace(row, model=deep) for row in run.results))
    page = html_report([run])
    assert f"<h2>{short_model_name(deep)}</h2>" in page and "<h2>/home/ana" not in page
    title = f"{short_model_name(deep)}: latency distribution, batch 8"
    assert f'aria-label="{title}"' in page
    lines = [text for text in re.findall(r"<text[^>]*>([^<]*)</text>", page) if len(text) > 3 and text in title]
    assert len(lines) > 1 and all(len(line) <= TITLE_WIDTH for line in lines)
    assert "".join(lines[-2:]).replace(" ", "") == title.replace(" ", ""), "wrapped, nothing cut"
