"""The quickstart recipe: a small ViT trained from scratch on the built-in shapes dataset.

Tuned so that on a 2-core CPU the whole training (data generation, preprocessing, training) takes
one to two minutes and the model is good but not perfect, so that quantization losses show. It
trains through the one training loop (:func:`vitedge.converters.training.loop.run_training`, the loop
of ``vitedge finetune``), on CPU, in fp32, keeping the last epoch's weights.
Measurements: ``benchmarks/results/quickstart_recipe.md``; reproduce them with
``python -m vitedge.converters.training.quickstart_recipe``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from transformers import ViTConfig, ViTForImageClassification

from vitedge.converters.training.images import PreprocessedImages
from vitedge.converters.training.loop import (
    EpochRecord,
    LoopConfig,
    LoopResult,
    cross_entropy_objective,
    evaluate,
    run_training,
)
from vitedge.converters.training.recipe import TrainConfig
from vitedge.data.shapes import ShapesConfig, shapes_arrays, shapes_class_names
from vitedge.errors import UsageError
from vitedge.runtime.preprocess_spec import PreprocessSpec


@dataclass(frozen=True)
class SplitCounts:
    """Images per class in each split of the shapes dataset (calibration: for static quantization)."""

    train: int
    val: int
    test: int
    calibration: int

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UsageError(f"invalid split counts: {field.name} must be a positive integer, got {value!r}")


QUICKSTART_SHAPES = ShapesConfig(num_classes=10, difficulty=0.2, min_size=48, max_size=160, seed=0)
QUICKSTART_COUNTS = SplitCounts(train=300, val=50, test=50, calibration=10)
QUICKSTART_TRAIN = TrainConfig(
    epochs=8,
    batch_size=32,
    learning_rate=1e-3,
    weight_decay=0.05,
    warmup_fraction=0.1,
    label_smoothing=0.1,
    seed=0,
    # One thread: the matrices are small; on a busy 2-core machine two threads ran 2-8x slower than
    # one; and a fixed count keeps the result the same from machine to machine.
    num_threads=1,
    # A safety net for slow or busy machines. Data and training cost about 70 CPU seconds, about
    # that long on an idle machine, where this budget does not bind.
    max_seconds=100.0,
    # Shifts did not help in the sweep; flips would make arrows point the way easy images never do.
    max_shift=0,
    horizontal_flip=False,
)
QUICKSTART_MODEL_SEED = 0
_IMAGE_SIZE = 32


def quickstart_vit_config(class_names: Sequence[str]) -> ViTConfig:
    """The quickstart model's architecture.

    Args:
        class_names: Labels in index order (e.g. :func:`shapes_class_names` of :data:`QUICKSTART_SHAPES`).

    Returns:
        A small ViT config with ``id2label``/``label2id`` set from the class names.
    """
    names = list(class_names)
    if len(names) < 2 or len(set(names)) != len(names):
        raise UsageError(f"class_names must be at least two distinct names, got {names!r}")
    return ViTConfig(
        hidden_size=128,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=512,
        image_size=_IMAGE_SIZE,
        patch_size=8,
        num_channels=3,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        id2label=dict(enumerate(names)),
        label2id={name: index for index, name in enumerate(names)},
    )


def quickstart_preprocess_spec() -> PreprocessSpec:
    """ViTImageProcessor-style preprocessing for the quickstart model.

    Returns:
        Exact bilinear resize to the model's image size, rescale by 1/255, mean = std = 0.5, NCHW.
    """
    return PreprocessSpec(
        resize_mode="exact",
        size=(_IMAGE_SIZE, _IMAGE_SIZE),
        resample="bilinear",
        rescale_factor=1 / 255,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        layout="NCHW",
    )


def build_quickstart_model(class_names: Sequence[str], *, seed: int = QUICKSTART_MODEL_SEED) -> ViTForImageClassification:
    """A freshly initialized quickstart ViT, the same weights for the same seed.

    Args:
        class_names: Labels in index order.
        seed: Seeds the weight initialization (the global torch random state is left as it was).

    Returns:
        The model, in eval mode.
    """
    config = quickstart_vit_config(class_names)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ViTForImageClassification(config)
    return model.eval()


@dataclass(frozen=True)
class QuickstartRun:
    """What :func:`run_quickstart_recipe` did.

    Attributes:
        model: The trained model (the last epoch's weights), in eval mode.
        train: What the training loop did.
        val_accuracy: Top-1 accuracy of the trained model on the validation split.
        test_accuracy: Top-1 accuracy on the test split.
        data_seconds: Generating and preprocessing the train and val splits.
        training_seconds: Data plus training: what the quickstart user waits for.
        training_cpu_seconds: CPU time of this process over the same span, all threads; close to
            the wall time the span takes on an idle machine with one thread, whatever the load now.
    """

    model: ViTForImageClassification
    train: LoopResult
    val_accuracy: float
    test_accuracy: float
    data_seconds: float
    training_seconds: float
    training_cpu_seconds: float


def run_quickstart_recipe(
    *,
    shapes: ShapesConfig = QUICKSTART_SHAPES,
    counts: SplitCounts = QUICKSTART_COUNTS,
    train_config: TrainConfig = QUICKSTART_TRAIN,
    on_epoch: Callable[[EpochRecord], None] | None = None,
) -> QuickstartRun:
    """Generate the data, build the model, train it and measure it on the test split.

    Args:
        shapes: The dataset.
        counts: Images per class in each split (the calibration count is not used here).
        train_config: The training recipe.
        on_epoch: Progress callback, called after each epoch.

    Returns:
        The trained model with its accuracies and timings.
    """
    started, cpu_started = time.perf_counter(), time.process_time()
    spec = quickstart_preprocess_spec()
    class_names = shapes_class_names(shapes)
    train = PreprocessedImages(*shapes_arrays("train", counts.train, shapes, spec))
    val = PreprocessedImages(*shapes_arrays("val", counts.val, shapes, spec))
    data_seconds = time.perf_counter() - started
    model = build_quickstart_model(class_names)
    loop = LoopConfig(train=train_config, device="cpu", amp="fp32", progress=False, keep="last")
    result = run_training(model, train, val, loop, cross_entropy_objective(train_config.label_smoothing),
                          on_epoch=on_epoch)
    training_seconds = time.perf_counter() - started
    training_cpu_seconds = time.process_time() - cpu_started
    test = PreprocessedImages(*shapes_arrays("test", counts.test, shapes, spec))
    return QuickstartRun(
        model=model,
        train=result,
        val_accuracy=result.history[-1].val_accuracy,
        test_accuracy=evaluate(model, test, torch.device("cpu")),
        data_seconds=data_seconds,
        training_seconds=training_seconds,
        training_cpu_seconds=training_cpu_seconds,
    )


def _main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the quickstart recipe end to end; print time and accuracy.")
    parser.add_argument("--difficulty", type=float, help="override the dataset difficulty")
    parser.add_argument("--train-per-class", type=int, help="override the training images per class")
    parser.add_argument("--epochs", type=int, help="override the number of epochs")
    parser.add_argument("--max-seconds", type=float, help="override the training time budget (0: none)")
    args = parser.parse_args(argv)
    shapes, counts, train_config = QUICKSTART_SHAPES, QUICKSTART_COUNTS, QUICKSTART_TRAIN
    if args.difficulty is not None:
        shapes = dataclasses.replace(shapes, difficulty=args.difficulty)
    if args.train_per_class is not None:
        counts = dataclasses.replace(counts, train=args.train_per_class)
    if args.epochs is not None:
        train_config = dataclasses.replace(train_config, epochs=args.epochs)
    if args.max_seconds is not None:
        train_config = dataclasses.replace(train_config, max_seconds=args.max_seconds or None)
    print(f"dataset: {shapes}\ncounts per class: {counts}\ntraining: {train_config}", flush=True)

    def report(stats: EpochRecord) -> None:
        print(
            f"epoch {stats.epoch}: loss {stats.train_loss:.3f}  val accuracy {stats.val_accuracy:.3f}"
            f"  ({stats.seconds:.1f} s)",
            flush=True,
        )

    run = run_quickstart_recipe(shapes=shapes, counts=counts, train_config=train_config, on_epoch=report)
    print(
        f"data {run.data_seconds:.1f} s + training {run.train.seconds:.1f} s = {run.training_seconds:.1f} s"
        f" (CPU {run.training_cpu_seconds:.1f} s, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs,"
        f" stopped early: {run.train.stopped == 'time-budget'})\n"
        f"val accuracy {run.val_accuracy:.3f}  test accuracy {run.test_accuracy:.3f}"
    )


if __name__ == "__main__":
    _main()
