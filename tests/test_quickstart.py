"""`vitedge quickstart`, the README's main job, end to end (a small run)."""

from __future__ import annotations

import platform

import pytest

from vitedge.cli import main
from vitedge.runtime import Classifier
from vitedge.runtime.manifest import read_manifest


@pytest.mark.slow
def test_quickstart_small_run_leaves_a_working_artifact(tmp_path, capsys):
    out = tmp_path / "qs"
    assert main(["quickstart", "--small", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for step in ("1/4", "2/4", "3/4", "4/4", "done in"):
        assert step in printed
    artifact = out / "artifacts" / "onnx-fp32"
    manifest = read_manifest(artifact)
    assert manifest.source.weights == "trained" and manifest.validation.passed
    assert "images from" in manifest.validation.inputs, "validated on the held-out test images"
    assert (out / "model" / "model.safetensors").is_file() and (out / "model" / "preprocessor_config.json").is_file()
    results = Classifier.open(artifact).predict(sorted((out / "data" / "test").rglob("*.png")))
    assert results and all(r.ok for r in results)
    assert f"vitedge predict {artifact}" in printed
    coreml = read_manifest(out / "artifacts" / "coreml-fp16")  # Core ML too: simulated off macOS, run on it
    assert coreml.format == "coreml" and coreml.validation.passed
    assert coreml.validation.simulated == (platform.system() != "Darwin")
    if coreml.validation.simulated:
        assert "coreml-fp16: not run here: Core ML runs only on Darwin" in printed
    assert f"report: {out / 'report.html'}" in printed and "p50 ms (batch 1)" in printed
    report = (out / "report.md").read_text()
    assert "| onnx-fp32 |" in report and "PyTorch eager fp32 (the trained model)" in report
    assert 'class="plot plot-pareto"' in (out / "report.html").read_text()
    # a second run refreshes the folder instead of failing on it
    assert main(["quickstart", "--small", "--out", str(out)]) == 0
