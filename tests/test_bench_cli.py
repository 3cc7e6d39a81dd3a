"""`vitedge bench` as a user runs it: table, JSON, report, exit codes; no torch in the parent process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.test_runtime_isolation import BLOCKER
from vitedge.cli import main


def test_bench_writes_table_json_and_report(tiny_artifact, tmp_path, capsys):
    out, report = tmp_path / "results.json", tmp_path / "report.md"
    code = main(["bench", str(tiny_artifact), "--reference", str(tiny_artifact), "--runs", "3", "--warmup", "1",
                 "--batch-sizes", "1,2", "--samples", "10", "--threads", "1", "--json", str(out), "--report", str(report),
                 "--device", "ci-box", "--quiet"])
    printed, errors = capsys.readouterr()
    assert code == 0, errors
    assert "== ci-box ==" in printed and "tiny-onnx" in printed and f"wrote {out}" in printed and errors == ""
    run = json.loads(out.read_text())["runs"][0]
    row = run["results"][0]
    assert row["status"] == "ok" and [entry["batch_size"] for entry in row["latency"]] == [1, 2]
    assert row["accuracy"]["top1_agreement"] == 1.0, "the reference's own row serves as the reference"
    assert run["data"]["samples"] == 10 and run["settings"]["threads"] == 1
    assert "## ci-box" in report.read_text()


def test_bench_exit_code_and_usage_errors(tmp_path, capsys):
    assert main(["bench", str(tmp_path / "missing"), "--data", "none", "--runs", "1", "--quiet"]) == 1
    assert "FAILED" in capsys.readouterr().out
    assert main(["bench", "x", "--batch-sizes", "1,a"]) == 2
    assert main(["bench", "x", "--report", str(tmp_path / "r.pdf")]) == 2
    assert "unknown report kind" in capsys.readouterr().err


def test_bench_report_and_the_worker_never_import_torch(tiny_artifact, tmp_path):
    script = BLOCKER + textwrap.dedent(
        f"""
        import json, sys
        from vitedge.benchmarks import worker
        assert worker.main([{str(tiny_artifact)!r}, "--result", {str(tmp_path / "w.json")!r}, "--runs", "2"]) == 0
        assert json.load(open({str(tmp_path / "w.json")!r}))["latency_s"]["1"]
        from vitedge.cli import main
        code = main(["bench", {str(tiny_artifact)!r}, "--runs", "1", "--warmup", "0", "--batch-sizes", "1",
                     "--samples", "4", "--json", {str(tmp_path / "r.json")!r}, "--quiet"])
        assert code == 0, code
        assert main(["report", {str(tmp_path / "r.json")!r}, "-o", {str(tmp_path / "r.html")!r}]) == 0
        assert not any(m.split(".")[0] in ("torch", "transformers") for m in sys.modules), "torch imported"
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr + done.stdout
    assert (tmp_path / "r.html").is_file()
