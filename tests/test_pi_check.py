"""scripts/pi_check.sh (`make pi-check`): its options and plan. The real run (debootstrap + qemu, minutes,
root) is `make pi-check`, not part of the test suite."""

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
    for option in ("--cache", "--mirror", "--tolerance", "--fresh", "--keep", "--dry-run"):
        assert option in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus"], "unknown option '--bogus'"),
        (["--tolerance", "abc"], "--tolerance must be a number"),
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
    done = run("--dry-run", "--cache", str(cache), "--tolerance=1e-5", "--mirror=http://mirror.example/debian")
    assert done.returncode == 0, done.stderr
    assert f"cache:      {cache}" in done.stdout and "to build" in done.stdout
    assert "1e-5" in done.stdout and "http://mirror.example/debian (bookworm, arm64)" in done.stdout
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
