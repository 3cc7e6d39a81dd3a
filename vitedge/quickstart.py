"""``vitedge quickstart``: the whole path on a built-in default, offline, in a couple of minutes.

Train a small ViT on the built-in shapes dataset, save it as a Hugging Face folder, convert it to
ONNX and Core ML (validated against torch; Core ML by simulation off macOS), classify a few held-out
images with the torch-free runtime (Core ML only where it runs), and measure each artifact's
accuracy on the test split. Prints what it did and where everything is.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vitedge.data.imagefolder import read_image_folder
from vitedge.data.shapes import write_image_folder
from vitedge.metrics import topk_accuracy

SAMPLE_IMAGES = 6


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


def save_hf_folder(model, folder: Path, spec, record: dict) -> None:
    """The trained model as a Hugging Face folder that `vitedge convert` (and transformers) take."""
    from transformers.utils import logging as hf_logging

    if folder.exists():
        shutil.rmtree(folder)
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(folder, safe_serialization=True)
    finally:
        hf_logging.enable_progress_bar()
    processor = {
        "image_processor_type": "ViTImageProcessor",
        "do_resize": True, "size": {"height": spec.size[0], "width": spec.size[1]}, "resample": 2,
        "do_rescale": True, "rescale_factor": spec.rescale_factor,
        "do_normalize": True, "image_mean": list(spec.mean), "image_std": list(spec.std),
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(processor, indent=2) + "\n")
    from vitedge.converters.loading import TRAINING_RECORD

    (folder / TRAINING_RECORD).write_text(json.dumps(record, indent=2) + "\n")


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
    from vitedge.converters import convert
    from vitedge.converters.training.quickstart_recipe import (
        QUICKSTART_COUNTS,
        QUICKSTART_SHAPES,
        QUICKSTART_TRAIN,
        quickstart_preprocess_spec,
        run_quickstart_recipe,
    )
    from vitedge.formats import get_format
    from vitedge.render import human_bytes, validation_text
    from vitedge.runtime import Classifier

    started = time.perf_counter()
    counts, train_config = QUICKSTART_COUNTS, QUICKSTART_TRAIN
    if small:
        counts = dataclasses.replace(counts, train=6, val=2, test=3)
        train_config = dataclasses.replace(train_config, epochs=1)
    if max_seconds is not None:
        train_config = dataclasses.replace(train_config, max_seconds=max_seconds)
    shapes = QUICKSTART_SHAPES
    out.mkdir(parents=True, exist_ok=True)
    echo(f"vitedge quickstart -> {out}")
    echo(f"1/4 training a small ViT on the built-in shapes dataset ({shapes.num_classes} classes, "
         f"difficulty {shapes.difficulty}, {counts.train} training images per class)")

    def progress(stats) -> None:
        echo(f"    epoch {stats.epoch}: loss {stats.train_loss:.3f}, validation accuracy {stats.val_accuracy:.1%} "
             f"({stats.seconds:.0f} s)")

    run = run_quickstart_recipe(shapes=shapes, counts=counts, train_config=train_config, on_epoch=progress)
    echo(f"    trained in {run.training_seconds:.0f} s: test accuracy {run.test_accuracy:.1%} (torch fp32)")
    spec = quickstart_preprocess_spec()
    model_folder = out / "model"
    save_hf_folder(run.model, model_folder, spec, {
        "weights": "trained",
        "dataset": {"name": "shapes", **dataclasses.asdict(shapes), "counts": dataclasses.asdict(counts)},
        "train": dataclasses.asdict(train_config),
        "val_accuracy": run.train.final_val_accuracy,
        "test_accuracy": run.test_accuracy,
    })
    echo(f"    saved the model as a Hugging Face folder: {model_folder}")

    echo("2/4 writing the held-out test images (an ImageFolder: one folder per class)")
    if (out / "data" / "test").exists():
        shutil.rmtree(out / "data" / "test")
    data_folder = write_image_folder(out / "data", "test", counts.test, shapes)
    test_set = read_image_folder(data_folder)
    echo(f"    {len(test_set.samples)} images in {data_folder}")

    echo("3/4 converting to ONNX, TFLite and Core ML and validating against the torch model")
    names = ("onnx-fp32", "tflite-fp32", "tflite-int8-dynamic", "coreml-fp16")  # TFLite int8 reuses the fp32 conversion
    artifacts = {name: out / "artifacts" / name for name in names}
    for name, path in artifacts.items():
        fmt, precision = name.split("-", 1)
        result = convert(str(model_folder), to=fmt, precision=precision, out=path, overwrite=True,
                         validation_images=data_folder)
        size = sum(entry.bytes for entry in result.manifest.files)
        echo(f"    {path} ({human_bytes(size)}): {validation_text(result.validation)}")

    echo("4/4 classifying with the torch-free runtime")
    accuracies = {}
    paths = [path for path, _ in test_set.samples]
    labels = [label for _, label in test_set.samples]
    runnable = {}  # Core ML runs only on Apple systems: elsewhere its artifact is converted and simulated, not run
    for name, path in artifacts.items():
        fmt = get_format(name.split("-", 1)[0])
        if fmt.backend_supported_here():
            runnable[name] = path
        else:
            echo(f"    {name}: not run here: {fmt.title} runs only on {', '.join(fmt.runtime_systems)}; copy {path} there "
                 "(its validation above is a simulation)")
    for name, path in runnable.items():
        classifier = Classifier.open(path)
        results = classifier.predict(paths, top_k=3)
        scores = np.zeros((len(results), len(classifier.labels)), np.float32)
        for row, result in enumerate(results):
            for prediction in result.predictions:
                scores[row, prediction.index] = prediction.score
        truth = np.asarray([classifier.labels.index(test_set.class_names[label]) for label in labels])
        accuracies[name] = topk_accuracy(scores, truth, k=1)
        echo(f"    {name}: test accuracy {accuracies[name]:.1%} on {len(paths)} images")
    step = max(1, len(paths) // SAMPLE_IMAGES)
    for path, result, label in list(zip(paths, results, labels))[::step][:SAMPLE_IMAGES]:
        top = result.top
        mark = "right" if top.label == test_set.class_names[label] else f"wrong: it is {test_set.class_names[label]}"
        echo(f"    {Path(path).relative_to(out)}: {top.label} {top.score:.0%} ({mark})")
    echo("benchmarking each artifact in a fresh process (latency, memory, accuracy vs the torch model)")
    from vitedge.quickstart_bench import benchmark_quickstart

    bench = benchmark_quickstart(out, artifacts, run.model, data_folder, small=small, echo=echo)  # Core ML: a skipped row
    echo(f"    report: {bench.html} (with plots), {bench.markdown}")
    seconds = time.perf_counter() - started
    first = next(iter(artifacts.values()))
    echo(f"done in {seconds:.0f} s. Next:")
    echo(f"    vitedge predict {first} {data_folder} --top-k 3")
    echo(f"    vitedge inspect {first}")
    echo(f"    vitedge bench {' '.join(str(p) for p in artifacts.values())} --data {data_folder} --report my-report.html")
    echo(f"    vitedge convert {model_folder} --to onnx --out my-artifact")
    return QuickstartResult(model_folder, artifacts, data_folder, run.test_accuracy, accuracies, seconds, bench.html)
