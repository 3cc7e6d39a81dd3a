"""scripts/pi_check.sh (`make pi-check`): its options and plan, and the verdicts it draws from the guest's
`vitedge verify --json` (scripts/pi_check_verdicts.py), on reports made here with torch blocked as in the guest.
The real run (debootstrap + qemu, minutes, root) is `make pi-check`, not part of the test suite."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "pi_check.sh"


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60, env=env)


def test_help_lists_the_options():
    done = run("--help")
    assert done.returncode == 0
    for option in ("--cache", "--mirror", "--fresh", "--keep", "--dry-run"):
        assert option in done.stdout
    assert "vitedge verify" in done.stdout and "--tolerance" not in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus"], "unknown option '--bogus'"),
        (["--tolerance", "1e-4"], "unknown option '--tolerance'"),
        (["--mirror", "deb.debian.org"], "--mirror must be an http(s):// or file:// URL"),
        (["--cache"], "--cache needs a folder"),
    ],
)
def test_bad_options_are_one_line_errors(args, message):
    done = run(*args)
    assert done.returncode == 2
    assert done.stderr.startswith(f"pi-check: error: {message}")
    assert done.stderr.count("\n") == 1


def test_dry_run_prints_the_plan_and_changes_nothing(tmp_path):
    cache = tmp_path / "cache"
    done = run("--dry-run", "--cache", str(cache), "--mirror=http://mirror.example/debian")
    assert done.returncode == 0, done.stderr
    assert f"cache:      {cache}" in done.stdout and "to build" in done.stdout
    assert "http://mirror.example/debian (bookworm, arm64)" in done.stdout
    assert "vitedge verify --json (ONNX)" in done.stdout and "vitedge verify --json (TFLite)" in done.stdout
    assert not cache.exists()


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_script_passes_shellcheck():
    done = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout


def test_a_relative_python_is_made_absolute(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "PYTHON": ".venv/bin/python"}
    done = subprocess.run(["bash", str(SCRIPT), "--dry-run", "--cache", str(tmp_path)], capture_output=True,
                          text=True, timeout=60, env=env, cwd=SCRIPT.parents[1])
    assert done.returncode == 0, done.stderr
    assert f"python:     {SCRIPT.parents[1]}/.venv/bin/python" in done.stdout


VERDICTS = SCRIPT.parent / "pi_check_verdicts.py"


def _guest_report(artifact, out):
    """What the guest runs (`vitedge verify ARTIFACT --json`), here with torch and transformers blocked as there."""
    import sys

    from tests.test_runtime_isolation import BLOCKER

    script = BLOCKER + f"from vitedge.cli import main; raise SystemExit(main(['verify', {str(artifact)!r}, '--json']))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode in (0, 1), done.stderr
    out.write_text(done.stdout)
    return out


def test_the_verdicts_pass_on_artifacts_that_check_themselves_without_torch(tiny_artifact, artifact_of, tmp_path):
    import sys

    reports = [_guest_report(tiny_artifact, tmp_path / "guest-verify-onnx.json"),
               _guest_report(artifact_of("tflite", "fp32"), tmp_path / "guest-verify-tflite.json")]
    done = subprocess.run([sys.executable, str(VERDICTS), *map(str, reports), "--seconds", "7"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("onnx", "tflite"):
        for what in ("checksums", "preprocessing parity", "model parity", "torch-free"):
            assert any(line.startswith(f"PASS  {name}") and what in line for line in done.stdout.splitlines()), (name, what)
    assert "pi-check PASS: vitedge verify on Debian bookworm arm64 under qemu, no torch installed: all 2 artifacts" in done.stdout


def test_the_verdicts_fail_on_a_planted_preprocessing_fault(tiny_artifact, tmp_path):
    import json
    import sys

    copy = Path(shutil.copytree(tiny_artifact, tmp_path / "faulty"))
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["preprocess"]["resample"] = "bicubic"  # the model expects bilinear
    (copy / "manifest.json").write_text(json.dumps(manifest))
    report = _guest_report(copy, tmp_path / "guest-verify-onnx.json")
    done = subprocess.run([sys.executable, str(VERDICTS), str(report)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    line = next(line for line in done.stdout.splitlines() if "preprocessing parity" in line)
    assert line.startswith("FAIL  onnx") and "resample bicubic (made with bilinear)" in line
    assert any(line.startswith("PASS  onnx") and "model parity" in line for line in done.stdout.splitlines())
    assert "pi-check FAIL" in done.stdout
