"""The runtime never imports torch, transformers or jax; a plain wheel runs `vitedge predict`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import DATA
from vitedge.formats import FORMATS

ROOT = Path(__file__).resolve().parents[1]
BLOCKER = textwrap.dedent(
    """
    import sys
    BLOCKED = ("torch", "transformers", "jax", "tensorflow", "safetensors")
    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"the runtime must not import {name}")
            return None
    sys.meta_path.insert(0, Blocker())
    """
)


def test_runtime_and_predict_cli_run_with_torch_blocked(tiny_artifact, tmp_path):
    script = BLOCKER + textwrap.dedent(
        f"""
        import json, sys
        from vitedge.runtime import Classifier
        clf = Classifier.open({str(tiny_artifact)!r})
        print(json.dumps(clf.predict({str(DATA / "astronaut.jpg")!r}).to_dict()))
        assert clf.embed({str(DATA / "coffee.png")!r}).shape == (64,)
        from vitedge.cli import main
        for argv in (["predict", {str(tiny_artifact)!r}, {str(DATA)!r}, "--json"], ["inspect", {str(tiny_artifact)!r}], ["formats"]):
            code = main(argv)
            assert code == 0, (argv, code)
        assert not any(m.split(".")[0] in ("torch", "transformers", "jax") for m in sys.modules), "heavy module imported"
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[0])["predictions"]


def test_verify_without_torch_checks_checksums_and_says_what_is_missing(tiny_artifact):
    script = BLOCKER + f"from vitedge.cli import main; raise SystemExit(main(['verify', {str(tiny_artifact)!r}]))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "checksums: OK" in done.stdout and "vitedge[convert]" in done.stdout


WHEELHOUSE = Path(os.environ.get("VITEDGE_WHEELHOUSE", ROOT / ".wheelhouse"))


def source_packages() -> list[str]:
    """Every package the source tree holds, by the name it imports as (what setup.py must discover)."""
    names = []
    for top in ("vitedge", "converters", "runtime", "benchmarks"):
        for init in sorted((ROOT / top).rglob("__init__.py")):
            parts = init.parent.relative_to(ROOT).parts
            names.append(".".join(parts if top == "vitedge" else ("vitedge", *parts)))
    return names


@pytest.mark.slow
def test_wheel_with_no_extras_plus_onnxruntime_runs_predict(tiny_artifact, tmp_path):
    """Build the wheel, install it in a clean venv with onnxruntime only (from the local wheelhouse), run the CLI."""
    if not any(WHEELHOUSE.glob("onnxruntime-*.whl")):
        pytest.fail(f"no onnxruntime wheel in {WHEELHOUSE}: run `make setup` (it downloads the wheelhouse)")
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )
    wheel = next(wheels.glob("vitedge-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-index", "--find-links", str(WHEELHOUSE),
                    str(wheel), "onnxruntime"], check=True, timeout=600)
    freeze = subprocess.run([str(python), "-m", "pip", "freeze"], capture_output=True, text=True, check=True).stdout
    assert "torch" not in freeze and "transformers" not in freeze
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [str(venv / "bin" / "vitedge"), "predict", str(tiny_artifact), str(DATA / "astronaut.jpg"), "--json"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["predictions"][0]["label"]
    packages = source_packages()
    assert {"vitedge.converters.onnx", "vitedge.converters.training", "vitedge.benchmarks.studies", "vitedge.data",
            "vitedge.runtime.backends"} <= set(packages)
    script = "import importlib, sys\nfor name in sys.argv[1:]: importlib.import_module(name)\nprint('ok')"
    check = subprocess.run([str(python), "-c", script, *packages], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert check.stdout.strip() == "ok", check.stderr


def test_every_backend_module_imports_with_torch_blocked():
    """ExecuTorch's backend needs torch to run, not to import: without it, opening says what to install."""
    modules = sorted({fmt.backend.partition(":")[0] for fmt in FORMATS.values()})
    script = BLOCKER + "import importlib\nfor name in " + repr(modules) + ": importlib.import_module(name)\nprint('ok')"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "ok", done.stderr
