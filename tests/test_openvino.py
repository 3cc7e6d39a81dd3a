"""OpenVINO specifics: the device option, the precision a device actually runs, and what a user hears when
something is missing. What every format owes (conversion, validation, predict, verify) is in test_conformance.
"""

from __future__ import annotations

import json
import shutil
import sys
import warnings

import pytest

from tests.conftest import DATA
from vitedge.cli import main
from vitedge.errors import BackendUnavailableError, ConversionError, UsageError
from vitedge.runtime import Classifier
from vitedge.runtime.manifest import read_manifest

ov = pytest.importorskip("openvino")
from vitedge.runtime.backends import openvino as backend  # noqa: E402  (needs openvino)

PHOTO = str(DATA / "astronaut.jpg")


class FakeCore:
    """What the backend asks ``openvino.Core`` about devices, as a machine with other hardware would answer."""

    def __init__(self, devices=("CPU",), capabilities=("FP32", "INT8")):
        self.available_devices = list(devices)
        self._capabilities = list(capabilities)

    def get_property(self, device, name):
        assert name == "OPTIMIZATION_CAPABILITIES"
        return self._capabilities


def _cpu_has_bf16() -> bool:
    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


# -- devices --------------------------------------------------------------------------------------


def test_the_cpu_is_the_default_device_and_can_be_named(artifact_of):
    folder = artifact_of("openvino", "fp32")
    default, named = Classifier.open(folder), Classifier.open(folder, device="cpu")
    assert default.backend.execution["device"] == named.backend.execution["device"] == "CPU"
    assert default.predict(PHOTO).top == named.predict(PHOTO).top


def test_auto_runs_on_the_best_device_present_and_says_when_that_is_the_cpu(artifact_of):
    core = ov.Core()
    if any(device.split(".")[0] in ("GPU", "NPU") for device in core.available_devices):
        assert backend.resolve_device(core, "AUTO") != "CPU"
        return
    with pytest.warns(UserWarning, match="--device AUTO: no GPU or NPU here, running on the CPU"):
        classifier = Classifier.open(artifact_of("openvino", "fp32"), device="AUTO")
    assert classifier.backend.execution["device"] == "CPU"


def test_auto_prefers_a_gpu_then_an_npu():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "running on the CPU" note
        assert backend.resolve_device(FakeCore(("CPU", "NPU", "GPU.0", "GPU.1")), "AUTO") == "GPU"
        assert backend.resolve_device(FakeCore(("CPU", "NPU")), "auto") == "NPU"
    assert backend.resolve_device(FakeCore(("CPU", "GPU.0", "GPU.1")), "GPU.1") == "GPU.1"


def test_a_device_that_is_not_present_is_one_line_listing_those_that_are(artifact_of, capsys):
    with pytest.raises(UsageError, match=r"OpenVINO device GPU is not present here \(present: CPU\).*--device CPU or AUTO"):
        backend.resolve_device(FakeCore(("CPU",)), "gpu")
    with pytest.raises(UsageError, match="did you mean 'NPU'"):
        backend.resolve_device(FakeCore(("CPU",)), "NPX")
    absent = next((d for d in ("NPU", "GPU") if d not in {p.split(".")[0] for p in ov.Core().available_devices}), None)
    if absent is None:
        pytest.skip("this machine has a GPU and an NPU")
    assert main(["predict", str(artifact_of("openvino", "fp32")), PHOTO, "--device", absent]) == 2
    printed, errors = capsys.readouterr()
    assert printed == "" and errors.count("\n") == 1 and "Traceback" not in errors
    assert f"OpenVINO device {absent} is not present here (present: " in errors


def test_verify_and_bench_run_on_the_device_asked_for(artifact_of, capsys, tmp_path):
    folder = str(artifact_of("openvino", "fp32"))
    assert main(["verify", folder, "--device", "CPU", "--json"]) == 0
    outcome = json.loads(capsys.readouterr().out)
    assert outcome["ok"] and outcome["parity"]["execution"]["device"] == "CPU"
    absent = next((d for d in ("NPU", "GPU") if d not in {p.split(".")[0] for p in ov.Core().available_devices}), None)
    if absent is not None:  # the self-check opens the backend there: one line, as predict
        assert main(["verify", folder, "--device", absent]) == 2
        errors = capsys.readouterr().err
        assert errors.count("\n") == 1 and f"OpenVINO device {absent} is not present here" in errors
    results = tmp_path / "bench.json"
    args = ["bench", folder, "--run-on", "CPU", "--data", "none", "--runs", "1", "--warmup", "0",
            "--batch-sizes", "1", "--json", str(results), "--quiet"]
    assert main(args) == 0
    run = json.loads(results.read_text())["runs"][0]
    assert run["settings"]["run_on"] == "CPU" and run["results"][0]["status"] == "ok"
    if absent is not None:  # the worker refuses the device: the row says why
        main([*args[:3], absent, *args[4:]])
        row = json.loads(results.read_text())["runs"][0]["results"][0]
        assert row["status"] != "ok" and f"OpenVINO device {absent} is not present here" in json.dumps(row)


def test_device_is_refused_for_formats_whose_runtime_picks_it(tiny_artifact, capsys):
    assert main(["predict", str(tiny_artifact), PHOTO, "--device", "GPU"]) == 2
    errors = capsys.readouterr().err
    assert errors.count("\n") == 1 and "ONNX artifacts take no device option" in errors
    assert "openvino (CPU, GPU, NPU, AUTO)" in errors


def test_npus_get_a_static_batch_of_one(artifact_of):
    folder = artifact_of("openvino", "fp32")
    model = ov.Core().read_model(str(folder / "model.xml"))
    assert backend._static_batch_if_needed(model, "CPU", "pixel_values") is None
    assert model.input("pixel_values").get_partial_shape().is_dynamic
    assert backend._static_batch_if_needed(model, "NPU", "pixel_values") == 1
    assert list(model.input("pixel_values").get_shape()) == [1, 3, 32, 32]


# -- the precision that actually runs -------------------------------------------------------------


def test_fp32_is_pinned_to_f32_whatever_the_cpu_would_choose(artifact_of):
    folder = artifact_of("openvino", "fp32")
    assert read_manifest(folder).conversion.recipe["inference_precision"] == "f32"
    assert Classifier.open(folder).backend.execution["precision"] == "f32"
    assert read_manifest(folder).validation.execution["precision"] == "f32"


def test_bf16_runs_in_bf16_where_the_cpu_has_it_and_the_manifest_says_what_ran(artifact_of, capsys):
    folder = artifact_of("openvino", "bf16")
    ran = "bf16" if _cpu_has_bf16() else "f32"
    assert Classifier.open(folder).backend.execution == {
        "runtime": f"openvino {ov.__version__.split('-')[0]}", "device": "CPU", "precision": ran}
    assert read_manifest(folder).validation.execution["precision"] == ran
    assert main(["inspect", str(folder)]) == 0
    assert f"; ran on CPU in {ran} (openvino " in capsys.readouterr().out


def test_bf16_on_a_cpu_without_bf16_runs_f32_says_so_and_verify_reports_it(artifact_of, monkeypatch, tmp_path, capsys):
    folder = shutil.copytree(artifact_of("openvino", "bf16"), tmp_path / "bf16")
    monkeypatch.setitem(backend.CAPABILITIES, "bf16", "NO-SUCH-CAPABILITY")  # this CPU now lacks bf16
    with pytest.warns(UserWarning, match="cannot compute in bf16 .*: the bf16 artifact runs in f32"):
        assert Classifier.open(folder).backend.execution["precision"] == "f32"
    with pytest.warns(UserWarning):
        assert main(["verify", str(folder), "--samples", "8"]) == 0
    lines = capsys.readouterr().out.splitlines()
    parity = next(line for line in lines if line.startswith("parity against"))
    assert "; ran on CPU in f32 (openvino " in parity
    validated = read_manifest(folder).validation.execution["precision"]
    note = "note: the conversion validated it on CPU in bf16; here it ran on CPU in f32"
    assert (note in lines) == (validated == "bf16")


def test_int8_static_runs_its_float_parts_in_bf16_where_the_cpu_has_it_and_quietly_in_f32_elsewhere(
        artifact_of, monkeypatch, tmp_path):
    folder = shutil.copytree(artifact_of("openvino", "int8-static"), tmp_path / "int8")
    assert read_manifest(folder).conversion.recipe["inference_precision"] == "bf16"
    ran = "bf16" if _cpu_has_bf16() else "f32"
    assert Classifier.open(folder).backend.execution["precision"] == ran
    assert read_manifest(folder).validation.execution["precision"] == ran  # validated as it runs here
    monkeypatch.setitem(backend.CAPABILITIES, "bf16", "NO-SUCH-CAPABILITY")  # this CPU now lacks bf16
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # f32 float parts are the int8 artifact at its most exact: no warning
        assert Classifier.open(folder).backend.execution["precision"] == "f32"


def test_fp16_runs_in_f16_only_where_the_device_computes_in_it():
    assert backend.supported_precision(FakeCore(capabilities=("FP32", "FP16")), "GPU", "f16") == "f16"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # f32 is what fp16 means on such a CPU: no warning
        assert backend.supported_precision(FakeCore(capabilities=("FP32", "BF16")), "CPU", "f16") == "f32"
    assert backend.supported_precision(FakeCore(), "CPU", None) is None  # a peer: OpenVINO's own default


# -- what is missing --------------------------------------------------------------------------------


def test_runtime_without_openvino_names_the_pip_command(artifact_of, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "openvino", None)  # find_spec and import now fail
    folder = artifact_of("openvino", "fp32")
    with pytest.raises(BackendUnavailableError, match=r"needs openvino, which is not installed; pip install 'vitedge\[openvino\]'"):
        Classifier.open(folder)
    assert main(["predict", str(folder), PHOTO]) == 1
    errors = capsys.readouterr().err
    assert errors.count("\n") == 1 and "pip install 'vitedge[openvino]'" in errors


def test_converting_without_openvino_names_the_extra(monkeypatch):
    from vitedge.converters.openvino import compat

    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(ConversionError, match=r"needs openvino, which is not installed; pip install 'vitedge\[convert\]'"):
        compat.openvino()



def test_the_backend_runs_with_torch_blocked(artifact_of):
    """openvino itself must not pull torch in (its PyTorch frontend is for conversion only)."""
    import subprocess
    import textwrap

    from tests.test_runtime_isolation import BLOCKER

    script = BLOCKER + textwrap.dedent(f"""
        import sys
        from vitedge.runtime import Classifier
        classifier = Classifier.open({str(artifact_of("openvino", "int8-static"))!r})
        assert classifier.predict({PHOTO!r}).top.label
        assert not any(name.split(".")[0] in ("torch", "nncf") for name in sys.modules), "heavy module imported"
        """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr

# -- the published study's peer ---------------------------------------------------------------------


def test_the_openvino_nncf_defaults_peer_builds_and_runs_in_the_harness(artifact_of, tiny_folder, tmp_path):
    from vitedge.benchmarks.bench import BenchTarget, run_bench
    from vitedge.benchmarks.results import BenchSettings
    from vitedge.benchmarks.studies.peers import OPENVINO_PEER, openvino_nncf_default_peer
    from vitedge.converters.loading import load_source

    peer = openvino_nncf_default_peer(load_source(str(tiny_folder)), artifact_of("openvino", "fp32"), tmp_path / "peer")
    manifest = read_manifest(peer)
    assert (manifest.format, manifest.precision, manifest.conversion.recipe) == ("openvino", "int8-static",
                                                                                 {"peer": OPENVINO_PEER})
    assert {entry.path for entry in manifest.files} == {"model.xml", "model.bin"} and manifest.validation is None
    default = ov.Core().compile_model(str(peer / "model.xml"), "CPU").get_property("INFERENCE_PRECISION_HINT")
    assert Classifier.open(peer).backend.execution["precision"] == default.get_type_name()  # OpenVINO's own choice
    settings = BenchSettings(threads=1, batch_sizes=(1,), warmup=1, runs=2, rounds=1, timeout_s=120)
    run = run_bench([BenchTarget(str(peer), name="OpenVINO + NNCF defaults", kind="peer", note=OPENVINO_PEER),
                     BenchTarget(str(artifact_of("openvino", "int8-static")))], settings=settings, data=None)
    assert [row.status for row in run.results] == ["ok", "ok"], [row.error for row in run.results]

