"""The Android demo's pure-Kotlin core (android_demo/core) passes its JUnit tests on the JVM here.

Those tests read demo_golden/: the same decoded pixels must give the same resized pixels (bit for
bit) and the same tensor (within 1e-5) as the Python runtime, and the same logits the same top-5;
and they run the artifact self-check (SelfCheck.kt: JDK ImageIO decodes the images) on the golden
self-check cases, with planted faults, and on artifacts the Python tests convert.
Needs kotlinc, a JUnit 4 jar and hamcrest (CI: apt-get install kotlin junit4 libhamcrest-java).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "android_demo" / "core" / "run_jvm_tests.sh"
MISSING_TOOLS = 3  # the script's exit code when kotlinc or the JUnit jars are not installed


@pytest.mark.slow
def test_kotlin_core_matches_the_golden_vectors_on_the_jvm(tiny_artifact, artifact_of):
    """Golden vectors, the golden self-checks (planted faults included) and the self-checks of real conversions."""
    converted = [tiny_artifact, artifact_of("tflite", "fp32")]
    env = {**os.environ, "VITEDGE_SELFCHECK_ARTIFACTS": os.pathsep.join(str(folder) for folder in converted)}
    done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=600, env=env)
    output = done.stdout + done.stderr
    if done.returncode == MISSING_TOOLS:
        assert not os.environ.get("CI"), f"CI must install the Kotlin tools (.ci/run): {done.stderr.strip()}"
        pytest.skip(f"Kotlin JVM tests not run: {done.stderr.strip()}")
    assert done.returncode == 0, output[-6000:]
    assert re.search(r"^OK \(\d+ tests\)", output, re.MULTILINE), output[-6000:]
    worst = re.search(r"golden images: (\d+) cases, worst max \|diff\| (\S+)", output)
    assert worst and int(worst.group(1)) >= 6 and float(worst.group(2)) <= 1e-5, output[-6000:]
    assert "golden top-k:" in output
    assert re.search(r"^golden self-checks: \d+ cases passed$", output, re.MULTILINE), output[-6000:]
    assert f"converted artifacts self-checked on the JVM: {len(converted)}" in output, output[-6000:]
    for folder in converted:
        assert f"artifact self-check {folder.name} " in output and "preprocessing parity: OK: 7 images, tensors bit-identical" in output
    assert "planted mean/std fault: [preprocessing parity: FAILED: this app's preprocessing differs" in output


ANDROID = SCRIPT.parents[1]


def _syntax_errors(parser, path: Path) -> list[str]:
    found, stack = [], [parser.parse(path.read_bytes()).root_node]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            found.append(f"{path.relative_to(ANDROID)}:{node.start_point[0] + 1}: {'missing ' + node.type if node.is_missing else 'syntax error'}")
        stack.extend(node.children)
    return found


def test_every_kotlin_file_parses():
    """The app cannot be built here (no Android SDK); its Kotlin is at least syntactically valid."""
    tree_sitter = pytest.importorskip("tree_sitter")
    kotlin = pytest.importorskip("tree_sitter_kotlin")
    parser = tree_sitter.Parser(tree_sitter.Language(kotlin.language()))
    files = sorted(ANDROID.rglob("*.kt")) + sorted(ANDROID.rglob("*.kts"))
    assert len(files) >= 15
    errors = [error for path in files for error in _syntax_errors(parser, path)]
    assert not errors, "\n".join(errors)


def test_app_uses_only_what_the_core_declares():
    core = "\n".join(p.read_text("utf-8") for p in (ANDROID / "core" / "src" / "main").rglob("*.kt"))
    declared = set(re.findall(r"^(?:data |enum )?(?:class|object) (\w+)", core, re.MULTILINE))
    for path in (ANDROID / "app").rglob("*.kt"):
        text = path.read_text("utf-8")
        assert "import android" not in core, "the core must stay free of Android imports"
        for name in re.findall(r"^import dev\.vitedge\.core\.(\w+)$", text, re.MULTILINE):
            assert name in declared, f"{path.name} imports dev.vitedge.core.{name}, which the core does not declare"
    settings = (ANDROID / "settings.gradle.kts").read_text("utf-8")
    assert 'include(":core", ":app")' in settings
    assert 'implementation(project(":core"))' in (ANDROID / "app" / "build.gradle.kts").read_text("utf-8")
    assert "android" not in (ANDROID / "core" / "build.gradle.kts").read_text("utf-8").replace("Android", "")
