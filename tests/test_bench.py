"""The benchmark harness: rows, failures, accuracy against a direct computation, the reference kept out of timings."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from tests.conftest import TINY_LABELS, write_tiny_folder
from vitedge.benchmarks import bench as bench_module
from vitedge.benchmarks.bench import BenchTarget, run_bench
from vitedge.benchmarks.bench_data import folder_data
from vitedge.benchmarks.plots import pareto_front
from vitedge.benchmarks.results import BenchSettings, load_runs, merge_runs, save_runs
from vitedge.benchmarks.runner import WorkerJob, _crash_message, run_worker
from vitedge.data.shapes import ShapesConfig, shapes_samples
from vitedge.errors import UsageError
from vitedge.formats import FORMATS
from vitedge.metrics import row_cosines, top1_agreement, topk_accuracy
from vitedge.runtime import Classifier
from vitedge.runtime.images import load_rgb
from vitedge.runtime.preprocess import preprocess

SETTINGS = BenchSettings(threads=1, batch_sizes=(1, 4), warmup=1, runs=4, rounds=2, timeout_s=120)


@pytest.fixture(scope="module")
def labelled_folder(tmp_path_factory):
    """An ImageFolder whose classes are the tiny model's labels, plus one unreadable image."""
    root = tmp_path_factory.mktemp("bench-data") / "images"
    config = ShapesConfig(num_classes=len(TINY_LABELS), min_size=24, max_size=64)
    for index, (image, label) in enumerate(shapes_samples("test", 3, config)):
        folder = root / TINY_LABELS[label]
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"{index:02d}.png")
    (root / TINY_LABELS[0] / "99_corrupt.png").write_bytes(b"\x89PNG not really")
    return root


@pytest.fixture(scope="module")
def other_artifact(tmp_path_factory):
    from vitedge.converters import convert

    folder = write_tiny_folder(tmp_path_factory.mktemp("models") / "tiny-seed1", seed=1)
    return convert(str(folder), to="onnx", out=tmp_path_factory.mktemp("artifacts") / "tiny-seed1",
                   validation_samples=4).path


@pytest.fixture(scope="module")
def tampered_artifact(tiny_artifact, tmp_path_factory):
    copy = shutil.copytree(tiny_artifact, tmp_path_factory.mktemp("artifacts") / "tampered")
    data = bytearray((copy / "model.onnx").read_bytes())
    data[-100] ^= 1
    (copy / "model.onnx").write_bytes(bytes(data))
    return copy


@pytest.fixture(scope="module")
def bench(tiny_artifact, other_artifact, tampered_artifact, labelled_folder, tmp_path_factory):
    """One run: two good artifacts, a tampered one, a missing one; the reference a copy of the second."""
    reference = shutil.copytree(other_artifact, tmp_path_factory.mktemp("artifacts") / "reference")
    jobs = []

    def recording(job):
        jobs.append(job)
        return run_worker(job)

    targets = [BenchTarget(str(p)) for p in (tiny_artifact, other_artifact, tampered_artifact)]
    targets.append(BenchTarget(str(tiny_artifact.parent / "missing"), name="missing"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bench_module, "run_worker", recording)
        run = run_bench(targets, settings=SETTINGS, data=folder_data(labelled_folder), reference=str(reference),
                        device="test-box", command="test")
    return run, jobs, reference


def _direct_logits(artifact, paths):
    classifier = Classifier.open(artifact)
    inputs = np.stack([preprocess(load_rgb(p), classifier.manifest.preprocess) for p in paths])
    return classifier.run(inputs)["logits"], classifier.labels


def test_rows_keep_order_and_failures_do_not_stop_the_run(bench, tiny_artifact):
    run, _, _ = bench
    assert [row.status for row in run.results] == ["ok", "ok", "failed", "failed"]
    assert "checksum mismatch" in run.results[2].error and run.results[2].format == "onnx"
    assert "no such artifact folder" in run.results[3].error
    row = run.results[0]
    assert (row.name, row.format, row.precision, row.backend) == ("tiny-onnx", "onnx", "fp32", "onnxruntime")
    assert row.size_bytes == sum(e.bytes for e in Classifier.open(tiny_artifact).manifest.files)
    assert row.cold_load_ms > 0 and row.first_inference_ms > 0 and set(row.load_parts_ms) == {"import", "checksum", "load"}
    assert [entry.batch_size for entry in row.latency] == [1, 4]
    for entry in row.latency:
        assert len(entry.samples_ms) == SETTINGS.runs, "both rounds' timed calls are pooled"
        assert entry.stats.p50_ms > 0 and entry.images_per_second > 0
    assert 0 < row.memory.baseline_rss_bytes <= row.memory.peak_rss_bytes
    assert run.machine["cpu"] and run.settings == SETTINGS and run.data.labelled


def test_accuracy_matches_a_direct_computation(bench, tiny_artifact, labelled_folder):
    run, _, reference = bench
    data = folder_data(labelled_folder)
    readable = [i for i, p in enumerate(data.paths) if "corrupt" not in p]
    paths = [data.paths[i] for i in readable]
    logits, labels = _direct_logits(tiny_artifact, paths)
    reference_logits, _ = _direct_logits(reference, paths)
    truth = np.asarray([labels.index(data.class_names[data.labels[i]]) for i in readable])
    accuracy = run.results[0].accuracy
    assert accuracy.samples == len(paths) == 12 and "1 unreadable" in accuracy.note
    assert accuracy.top1 == pytest.approx(topk_accuracy(logits, truth, k=1))
    assert accuracy.top5 is None, "top-5 of a 4-class model says nothing"
    assert accuracy.top1_agreement == pytest.approx(top1_agreement(reference_logits, logits))
    assert accuracy.mean_logits_cosine == pytest.approx(row_cosines(reference_logits, logits).mean(), abs=1e-5)
    assert accuracy.reference == run.reference == "reference"
    twin = run.results[1].accuracy
    assert twin.top1_agreement == 1.0 and twin.min_logits_cosine == pytest.approx(1.0, abs=1e-6)


def test_reference_runs_once_untimed_before_any_timing(bench, tiny_artifact, other_artifact):
    _, jobs, reference = bench
    first, *timed = jobs
    assert first.target == str(reference) and first.runs == 0 and first.warmup == 0 and first.want_outputs
    assert all(job.target != str(reference) and job.runs > 0 for job in timed)
    # 2 rounds x 2 good artifacts + the tampered one once (a failure is not retried); outputs only in round 1
    assert [job.target for job in timed] == [str(tiny_artifact), str(other_artifact), timed[2].target,
                                             str(tiny_artifact), str(other_artifact)]
    assert [job.want_outputs for job in timed] == [True, True, True, False, False]
    assert sum(job.runs for job in timed if job.target == str(tiny_artifact)) == SETTINGS.runs


def test_a_backend_that_cannot_run_here_is_a_skipped_row_without_a_worker(tiny_artifact, monkeypatch):
    monkeypatch.setitem(FORMATS, "onnx", dataclasses.replace(FORMATS["onnx"], runtime_systems=("Plan9",)))
    monkeypatch.setattr(bench_module, "run_worker", lambda job: pytest.fail("no worker for a skipped row"))
    run = run_bench([BenchTarget(str(tiny_artifact))], settings=SETTINGS, data=None)
    row = run.results[0]
    assert row.status == "skipped" and "only on Plan9" in row.error and row.size_bytes > 0


def test_a_hung_or_crashed_worker_is_a_failure_not_an_exception(tiny_artifact):
    outcome = run_worker(WorkerJob(str(tiny_artifact), 1, (1,), 0, 1, timeout_s=0.05))
    assert not outcome.ok and "timed out" in outcome.error
    assert "SIGKILL" in _crash_message(-9, "") and "out of memory" in _crash_message(-9, "")
    assert _crash_message(3, "Traceback\nValueError: boom\n").endswith("ValueError: boom")


def test_json_round_trip_and_merge(bench, tmp_path):
    run, _, _ = bench
    laptop, pi = tmp_path / "laptop.json", tmp_path / "pi.json"
    save_runs([run], laptop)
    save_runs([dataclasses.replace(run, device="pi")], pi)
    assert json.loads(laptop.read_text())["schema"] == "vitedge.bench/1"
    assert load_runs(laptop) == [run]
    assert [r.device for r in merge_runs([laptop, pi])] == ["test-box", "pi"]
    document = json.loads(laptop.read_text())
    document["schema"] = "vitedge.bench/9"
    (tmp_path / "future.json").write_text(json.dumps(document))
    with pytest.raises(UsageError, match="newer"):
        load_runs(tmp_path / "future.json")
    (tmp_path / "manifest.json").write_text(json.dumps({"schema": "vitedge.artifact/1"}))
    with pytest.raises(UsageError, match="not a vitedge benchmark"):
        load_runs(tmp_path / "manifest.json")


def test_settings_validate_and_split_runs_over_rounds():
    settings = BenchSettings(runs=10, rounds=3)
    assert [settings.runs_in_round(i) for i in range(3)] == [4, 3, 3]
    with pytest.raises(UsageError, match="runs"):
        BenchSettings(runs=2, rounds=3)
    with pytest.raises(UsageError, match="batch sizes"):
        BenchSettings(batch_sizes=(0,))


def test_data_folders(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(3):
        Image.new("RGB", (8, 8), (i, 0, 0)).save(flat / f"{i}.png")
    data = folder_data(flat, samples=2)
    assert not data.labelled and len(data.paths) == 2
    with pytest.raises(UsageError, match="no such folder"):
        folder_data(tmp_path / "nope")


def test_pareto_front_keeps_the_points_nothing_beats():
    points = [(10, 0.9), (5, 0.8), (20, 0.85), (5, 0.7), (30, 0.95)]
    assert pareto_front(points) == [(5, 0.8), (10, 0.9), (30, 0.95)]
