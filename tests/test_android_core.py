"""The Android demo's pure-Kotlin core (android_demo/core) passes its JUnit tests on the JVM here.

Those tests read demo_golden/: the same decoded pixels must give the same resized pixels (bit for
bit) and the same tensor (within 1e-5) as the Python runtime, and the same logits the same top-5.
Needs kotlinc, a JUnit 4 jar and hamcrest (CI: apt-get install kotlin junit4 libhamcrest-java).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "android_demo" / "core" / "run_jvm_tests.sh"
MISSING_TOOLS = 3  # the script's exit code when kotlinc or the JUnit jars are not installed


@pytest.mark.slow
def test_kotlin_core_matches_the_golden_vectors_on_the_jvm():
    done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    if done.returncode == MISSING_TOOLS:
        pytest.skip(f"Kotlin JVM tests not run: {done.stderr.strip()}")
    assert done.returncode == 0, output[-6000:]
    assert re.search(r"^OK \(\d+ tests\)", output, re.MULTILINE), output[-6000:]
    worst = re.search(r"golden images: (\d+) cases, worst max \|diff\| (\S+)", output)
    assert worst and int(worst.group(1)) >= 6 and float(worst.group(2)) <= 1e-5, output[-6000:]
    assert "golden top-k:" in output
