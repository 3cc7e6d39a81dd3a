"""TFLite (LiteRT): conversion at every registered precision, the runtime backend, input options, old runtimes.

litert-torch converts even the tiny model in seconds, so artifacts are session-scoped and built once
(the NCHW float ones shared with tests/test_conformance.py, which checks what every format owes: the
manifest, validation, predict and embed against torch, tampering, verify); fp32, fp16, int8-dynamic and
int4 share one float conversion (the exporter keeps it).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
import types
from importlib.machinery import ModuleSpec
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import DATA
from tests.test_runtime_isolation import BLOCKER
from vitedge.converters.export_types import ExportOptions
from vitedge.converters.tflite.quantize import CHOSEN, RECIPES
from vitedge.errors import BackendUnavailableError, UsageError
from vitedge.formats import FORMATS
from vitedge.runtime import Classifier
from vitedge.runtime.backends import tflite as tflite_backend
from vitedge.runtime.images import load_rgb
from vitedge.runtime.manifest import read_manifest
from vitedge.runtime.preprocess import preprocess_batch

PRECISIONS = FORMATS["tflite"].precision_names
SLOW_PRECISIONS = {"int8-static"}  # PT2E: a torch export, calibration and a second litert-torch conversion
PHOTOS = [DATA / "astronaut.jpg", DATA / "chelsea.jpg", DATA / "coffee.png"]


@pytest.fixture(scope="session")
def tflite_artifact(tiny_folder, tmp_path_factory, artifact_of):
    """``tflite_artifact(precision, layout="NCHW", input_type="float")`` -> artifact folder, converted once."""
    from vitedge.converters import convert

    built: dict[tuple[str, str, str], Path] = {}
    root = tmp_path_factory.mktemp("tflite")

    def make(precision: str, layout: str = "NCHW", input_type: str = "float") -> Path:
        key = (precision, layout, input_type)
        if (layout, input_type) == ("NCHW", "float"):
            return artifact_of("tflite", precision)  # the conformance suite's conversion
        if key not in built:
            out = root / "-".join(key)
            options = ExportOptions(input_layout=layout, input_type=input_type, calibration_samples=8)
            convert(str(tiny_folder), to="tflite", precision=precision, out=out, options=options, validation_samples=16)
            built[key] = out
        return built[key]

    return make


def _inputs(images: list[Path], spec) -> np.ndarray:
    return preprocess_batch([load_rgb(path) for path in images], spec)


def test_registry_lists_tflite_with_a_recipe_for_every_precision():
    fmt = FORMATS["tflite"]
    assert fmt.model_file == "model.tflite" and fmt.install_extra == "tflite"
    assert set(PRECISIONS) == set(CHOSEN) == {"fp32", "fp16", "int8-dynamic", "int8-static", "int4-weight"}
    for precision, choice in CHOSEN.items():
        assert RECIPES[choice.recipe].precision == precision and choice.why
        tolerance = fmt.support(precision).tolerance
        assert precision == "fp32" or tolerance.min_top1_agreement is not None  # quantized: agreement is checked


@pytest.mark.parametrize(
    "precision", [pytest.param(p, marks=pytest.mark.slow) if p in SLOW_PRECISIONS else p for p in PRECISIONS]
)
def test_every_precision_records_its_recipe_and_a_batch_one_input(precision, tflite_artifact):
    manifest = read_manifest(tflite_artifact(precision))
    assert manifest.input.shape == (1, 3, 32, 32) and not manifest.input.dynamic_batch
    recipe = manifest.conversion.recipe
    assert recipe["name"] == CHOSEN[precision].recipe and recipe["why"] == CHOSEN[precision].why
    assert {"torch", "litert-torch", "ai-edge-litert"} <= set(manifest.conversion.tools)
    if precision == "int8-static":  # int8 in and out: the runtime quantizes and dequantizes
        assert manifest.input.dtype == "int8" and manifest.input.scale > 0
        assert set(manifest.outputs.quantization) == {"logits", "embedding"}
        assert manifest.conversion.calibration["samples"] == 8
    else:
        assert manifest.input.dtype == "float32" and manifest.outputs.quantization is None


def test_uint8_nhwc_input_normalizes_in_the_model_and_predicts_like_float_nchw(tflite_artifact):
    folder = tflite_artifact("fp32", "NHWC", "uint8")
    manifest = read_manifest(folder)
    assert (manifest.input.dtype, manifest.input.layout, manifest.input.shape) == ("uint8", "NHWC", (1, 32, 32, 3))
    assert manifest.input.scale is None  # raw pixels, not a quantized tensor
    assert manifest.preprocess.layout == "NHWC" and manifest.preprocess.normalization_in_model
    assert manifest.validation.passed
    raw, reference = Classifier.open(folder), Classifier.open(tflite_artifact("fp32"))
    assert _inputs(PHOTOS, manifest.preprocess).max() > 1  # the runtime feeds 0..255 pixels
    for ours, theirs in zip(raw.predict(PHOTOS, top_k=4), reference.predict(PHOTOS, top_k=4)):
        assert [p.label for p in ours.predictions] == [p.label for p in theirs.predictions]
        assert np.allclose([p.score for p in ours.predictions], [p.score for p in theirs.predictions], atol=1e-4)


@pytest.mark.slow
def test_cli_converts_an_nhwc_float_int8_dynamic_artifact(tiny_folder, tflite_artifact, tmp_path, capsys):
    from vitedge.cli import main

    out = tmp_path / "nhwc"
    code = main(["convert", str(tiny_folder), "--to", "tflite", "--precision", "int8-dynamic", "--input-layout", "NHWC",
                 "--out", str(out), "--validation-samples", "8", "--json"])
    assert code == 0
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["input"]["layout"] == "NHWC" and manifest["input"]["shape"] == [1, 32, 32, 3]
    assert not manifest["preprocess"]["normalization_in_model"] and manifest["validation"]["passed"]
    nhwc, nchw = Classifier.open(out), Classifier.open(tflite_artifact("int8-dynamic"))
    assert [r.top.label for r in nhwc.predict(PHOTOS)] == [r.top.label for r in nchw.predict(PHOTOS)]


def test_backend_honours_threads_and_runs_on_xnnpack(tflite_artifact):
    folder = tflite_artifact("int8-dynamic")
    backend = Classifier.open(folder, batch_size=8, num_threads=1).backend
    assert (backend.name, backend.num_threads, backend.xnnpack) == ("ai-edge-litert", 1, True)
    assert backend.max_batch_size == 1 and not backend.thread_safe  # batches run one image at a time
    assert Classifier.open(folder).backend.num_threads == tflite_backend.default_threads()


# -- older runtimes: tflite-runtime and tensorflow.lite --------------------------------------------


def _fake_runtime(monkeypatch, interpreter_class, package="tflite_runtime"):
    """Hide ai-edge-litert and install a stand-in ``tflite_runtime.interpreter`` module."""
    top = types.ModuleType(package)
    top.__spec__ = ModuleSpec(package, None)
    module = types.ModuleType(f"{package}.interpreter")
    module.__spec__ = ModuleSpec(f"{package}.interpreter", None)
    module.Interpreter = interpreter_class
    top.interpreter = module
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # import now raises ImportError
    monkeypatch.setitem(sys.modules, package, top)
    monkeypatch.setitem(sys.modules, f"{package}.interpreter", module)


def _litert_interpreter():
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter


@pytest.mark.parametrize("precision", ["int8-dynamic", "int4-weight"])
def test_old_tflite_runtime_refuses_precisions_it_gets_wrong(precision, tflite_artifact, monkeypatch):
    folder = tflite_artifact(precision)
    _fake_runtime(monkeypatch, _litert_interpreter())
    with pytest.raises(BackendUnavailableError, match=f"{precision}.*tflite-runtime.*pip install ai-edge-litert"):
        Classifier.open(folder)


def test_old_runtime_refuses_int16_activations(tflite_artifact):
    manifest = read_manifest(tflite_artifact("fp32"))
    int16 = dataclasses.replace(manifest, precision="int8-static", input=dataclasses.replace(manifest.input, dtype="int16"))
    runtime = tflite_backend.InterpreterRuntime(object, "tflite-runtime", "2.14.0")
    with pytest.raises(BackendUnavailableError, match="int16 activations"):
        tflite_backend.refuse_if_unsupported(runtime, int16, Path("model.tflite"))


def test_old_runtime_runs_fp32_and_refuses_all_zero_output(tflite_artifact, monkeypatch):
    folder = tflite_artifact("fp32")
    expected = Classifier.open(folder).predict(PHOTOS[0], top_k=4)
    litert_interpreter = _litert_interpreter()
    _fake_runtime(monkeypatch, litert_interpreter)
    old = Classifier.open(folder)
    assert old.backend.name == "tflite-runtime"
    assert [p.index for p in old.predict(PHOTOS[0], top_k=4).predictions] == [p.index for p in expected.predictions]

    class ZeroInterpreter(litert_interpreter):
        def get_tensor(self, index, subgraph_index=0):
            return np.zeros_like(super().get_tensor(index, subgraph_index))

    _fake_runtime(monkeypatch, ZeroInterpreter)
    with pytest.raises(BackendUnavailableError, match="all-zero logits.*pip install ai-edge-litert"):
        Classifier.open(folder)


def test_no_interpreter_at_all_says_what_to_install(monkeypatch):
    for name in ("ai_edge_litert.interpreter", "tflite_runtime.interpreter", "tensorflow"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(BackendUnavailableError, match="pip install ai-edge-litert"):
        tflite_backend.find_runtime()


# -- options and isolation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [(ExportOptions(input_type="image"), "does not take --input-type image"), (ExportOptions(opset=18), "opset")],
)
def test_options_tflite_cannot_take_are_refused(options, message, tiny_folder, tmp_path):
    from vitedge.converters import convert

    with pytest.raises(UsageError, match=message):
        convert(str(tiny_folder), to="tflite", out=tmp_path / "x", options=options)
    assert not (tmp_path / "x").exists()


def test_tflite_runtime_imports_no_torch_jax_or_tensorflow(tflite_artifact):
    folders = [str(tflite_artifact("fp32")), str(tflite_artifact("fp32", "NHWC", "uint8"))]
    script = BLOCKER + textwrap.dedent(
        f"""
        import json, sys
        from vitedge.runtime import Classifier
        for folder in {folders!r}:
            clf = Classifier.open(folder)
            print(json.dumps(clf.predict({str(PHOTOS[0])!r}).to_dict()))
        heavy = [m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "jax", "tensorflow")]
        assert not heavy, heavy
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert all(json.loads(line)["predictions"] for line in done.stdout.splitlines())
