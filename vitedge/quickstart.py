"""``vitedge quickstart``: the whole path on a built-in default, offline, in a couple of minutes.

Train a small ViT on the built-in shapes dataset (the training loop of ``vitedge finetune``), save it
as a Hugging Face folder, write held-out test images as an ImageFolder, convert the model to ONNX,
TFLite (fp32 and int8-dynamic) and Core ML (each validated against torch on those images; Core ML by
simulation off macOS), classify the test images with the torch-free runtime (Core ML only where it
runs), and benchmark every artifact in a fresh process. Prints what it did and where everything is.
Each folder it writes (model, test images, artifacts) replaces the previous run's atomically.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vitedge.data.imagefolder import ImageFolder, read_image_folder
from vitedge.data.shapes import ShapesConfig, write_image_folder
from vitedge.metrics import topk_accuracy

if TYPE_CHECKING:
    from vitedge.converters.training.quickstart_recipe import QuickstartRun, SplitCounts
    from vitedge.converters.training.recipe import TrainConfig

SAMPLE_IMAGES = 6
# TFLite int8 reuses the fp32 conversion; Core ML is converted everywhere but runs only on Apple systems.
ARTIFACT_NAMES = ("onnx-fp32", "tflite-fp32", "tflite-int8-dynamic", "coreml-fp16")


@dataclass(frozen=True)
class QuickstartResult:
    """Where the quickstart put things and how good they are."""

    model_folder: Path
    artifacts: dict[str, Path]
    images_folder: Path
    torch_test_accuracy: float
    artifact_test_accuracy: dict[str, float]
    seconds: float
    report: Path | None = None


def write_test_images(out: Path, count: int, shapes: ShapesConfig) -> Path:
    """The test split as an ImageFolder ``out/data/test/<class>/NNNN.png``, replacing an earlier one atomically."""
    from vitedge.converters.atomic import atomic_folder

    folder = out / "data" / "test"
    with atomic_folder(folder, overwrite=True, check=None) as work:
        written = write_image_folder(work, folder.name, count, shapes)  # work/test/<class>/...
        for class_folder in written.iterdir():
            class_folder.rename(work / class_folder.name)
        written.rmdir()
    return folder


def run_quickstart(
    out: Path, *, max_seconds: float | None = None, small: bool = False, echo: Callable[[str], None] = print
) -> QuickstartResult:
    """Run the quickstart into ``out`` (created or refreshed).

    Args:
        out: Working folder: ``model/`` (HF folder), ``artifacts/``, ``data/`` (held-out images).
        max_seconds: Cap on training time (default: the recipe's).
        small: A tiny run (a few seconds; for tests and smoke checks), not a useful model.
        echo: Where progress lines go.
    """
    from vitedge.converters.training.quickstart_recipe import QUICKSTART_SHAPES

    started = time.perf_counter()
    shapes = QUICKSTART_SHAPES
    counts, train_config = _settings(small, max_seconds)
    out.mkdir(parents=True, exist_ok=True)
    echo(f"vitedge quickstart -> {out}")
    run, model_folder = _train(out, shapes, counts, train_config, echo)
    echo("2/4 writing the held-out test images (an ImageFolder: one folder per class)")
    data_folder = write_test_images(out, counts.test, shapes)
    test_set = read_image_folder(data_folder)
    echo(f"    {len(test_set.samples)} images in {data_folder}")
    artifacts = _convert(out, model_folder, data_folder, echo)
    echo("4/4 classifying with the torch-free runtime")
    accuracies = _classify(out, artifacts, test_set, echo)
    echo("benchmarking each artifact in a fresh process (latency, memory, accuracy vs the torch model)")
    from vitedge.quickstart_bench import benchmark_quickstart

    bench = benchmark_quickstart(out, artifacts, run.model, data_folder, small=small, echo=echo)  # Core ML: a skipped row
    echo(f"    report: {bench.html} (with plots), {bench.markdown}")
    seconds = time.perf_counter() - started
    _next_steps(seconds, model_folder, artifacts, data_folder, echo)
    return QuickstartResult(model_folder, artifacts, data_folder, run.test_accuracy, accuracies, seconds, bench.html)


def _settings(small: bool, max_seconds: float | None) -> tuple[SplitCounts, TrainConfig]:
    """The split counts and training recipe: the quickstart's, or a tiny run's, with the time cap."""
    from vitedge.converters.training.quickstart_recipe import QUICKSTART_COUNTS, QUICKSTART_TRAIN

    counts, train_config = QUICKSTART_COUNTS, QUICKSTART_TRAIN
    if small:
        counts = dataclasses.replace(counts, train=6, val=2, test=3)
        train_config = dataclasses.replace(train_config, epochs=1)
    if max_seconds is not None:
        train_config = dataclasses.replace(train_config, max_seconds=max_seconds)
    return counts, train_config


def _train(
    out: Path, shapes: ShapesConfig, counts: SplitCounts, train_config: TrainConfig, echo: Callable[[str], None]
) -> tuple[QuickstartRun, Path]:
    """Step 1: train the model and save it as ``out/model``; returns the run and the folder."""
    from vitedge.converters.training.quickstart_recipe import (
        quickstart_preprocess_spec,
        run_quickstart_recipe,
    )

    echo(f"1/4 training a small ViT on the built-in shapes dataset ({shapes.num_classes} classes, "
         f"difficulty {shapes.difficulty}, {counts.train} training images per class)")

    def progress(stats) -> None:
        echo(f"    epoch {stats.epoch}: loss {stats.train_loss:.3f}, validation accuracy {stats.val_accuracy:.1%} "
             f"({stats.seconds:.0f} s)")

    run = run_quickstart_recipe(shapes=shapes, counts=counts, train_config=train_config, on_epoch=progress)
    echo(f"    trained in {run.training_seconds:.0f} s: test accuracy {run.test_accuracy:.1%} (torch fp32)")
    model_folder = out / "model"
    from vitedge.converters.training.output import save_hf_folder

    save_hf_folder(run.model, model_folder, quickstart_preprocess_spec(), {
        "weights": "trained",
        "dataset": {"name": "shapes", **dataclasses.asdict(shapes), "counts": dataclasses.asdict(counts)},
        "train": dataclasses.asdict(train_config),
        "val_accuracy": run.val_accuracy,
        "test_accuracy": run.test_accuracy,
    })
    echo(f"    saved the model as a Hugging Face folder: {model_folder}")
    return run, model_folder


def _convert(out: Path, model_folder: Path, data_folder: Path, echo: Callable[[str], None]) -> dict[str, Path]:
    """Step 3: every artifact of :data:`ARTIFACT_NAMES`, validated on the test images."""
    from vitedge.converters import convert
    from vitedge.render import human_bytes, validation_text

    echo("3/4 converting to ONNX, TFLite and Core ML and validating against the torch model")
    artifacts = {name: out / "artifacts" / name for name in ARTIFACT_NAMES}
    for name, path in artifacts.items():
        fmt, precision = name.split("-", 1)
        result = convert(str(model_folder), to=fmt, precision=precision, out=path, overwrite=True,
                         validation_images=data_folder)
        size = sum(entry.bytes for entry in result.manifest.files)
        echo(f"    {path} ({human_bytes(size)}): {validation_text(result.validation)}")
    return artifacts


def _runnable(artifacts: dict[str, Path], echo: Callable[[str], None]) -> dict[str, Path]:
    """The artifacts whose backend runs here (Core ML only on Apple systems); says why the others do not."""
    from vitedge.formats import get_format

    runnable = {}
    for name, path in artifacts.items():
        fmt = get_format(name.split("-", 1)[0])
        if fmt.backend_supported_here():
            runnable[name] = path
        else:
            echo(f"    {name}: not run here: {fmt.title} runs only on {', '.join(fmt.runtime_systems)}; copy {path} there "
                 "(its validation above is a simulation)")
    return runnable


def _classify(out: Path, artifacts: dict[str, Path], test_set: ImageFolder, echo: Callable[[str], None]) -> dict[str, float]:
    """Step 4: each runnable artifact's test accuracy with the torch-free runtime, then a few samples."""
    from vitedge.runtime import Classifier

    accuracies = {}
    paths = [path for path, _ in test_set.samples]
    labels = [label for _, label in test_set.samples]
    results = []
    for name, path in _runnable(artifacts, echo).items():
        classifier = Classifier.open(path)
        results = classifier.predict(paths, top_k=3)
        scores = np.zeros((len(results), len(classifier.labels)), np.float32)
        for row, result in enumerate(results):
            for prediction in result.predictions:
                scores[row, prediction.index] = prediction.score
        truth = np.asarray([classifier.labels.index(test_set.class_names[label]) for label in labels])
        accuracies[name] = topk_accuracy(scores, truth, k=1)
        echo(f"    {name}: test accuracy {accuracies[name]:.1%} on {len(paths)} images")
    _show_samples(out, paths, results, labels, test_set.class_names, echo)  # the last runnable artifact's predictions
    return accuracies


def _show_samples(out: Path, paths: list[str], results, labels: list[int], class_names, echo: Callable[[str], None]) -> None:
    step = max(1, len(paths) // SAMPLE_IMAGES)
    for path, result, label in list(zip(paths, results, labels))[::step][:SAMPLE_IMAGES]:
        top = result.top
        mark = "right" if top.label == class_names[label] else f"wrong: it is {class_names[label]}"
        echo(f"    {Path(path).relative_to(out)}: {top.label} {top.score:.0%} ({mark})")


def _next_steps(seconds: float, model_folder: Path, artifacts: dict[str, Path], data_folder: Path,
                echo: Callable[[str], None]) -> None:
    first = next(iter(artifacts.values()))
    echo(f"done in {seconds:.0f} s. Next:")
    echo(f"    vitedge predict {first} {data_folder} --top-k 3")
    echo(f"    vitedge inspect {first}")
    echo(f"    vitedge bench {' '.join(str(p) for p in artifacts.values())} --data {data_folder} --report my-report.html")
    echo(f"    vitedge convert {model_folder} --to onnx --out my-artifact")
