"""Transfer learning on the user's images: a new head for their classes, then fine-tuning.

    >>> from vitedge.converters.finetune import finetune
    >>> run = finetune("google/vit-base-patch16-224", "photos/", "models/mine")
    >>> # vitedge convert models/mine --to onnx --out artifacts/mine

The result is a Hugging Face folder (config with ``id2label``, ``model.safetensors``,
``preprocessor_config.json``) whose ``vitedge_training.json`` makes every artifact converted from
it say ``weights: finetuned``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from vitedge.converters.imagefolder_data import load_training_data, read_class_names
from vitedge.converters.training_loop import EpochRecord, cross_entropy_objective
from vitedge.converters.training_models import build_starting_model
from vitedge.converters.training_output import check_output
from vitedge.converters.training_run import (
    TrainingOptions,
    TrainingRun,
    default_checkpoint_dir,
    train_and_save,
)
from vitedge.errors import UsageError


def finetune(
    model: str,
    data: str | os.PathLike,
    out: str | os.PathLike,
    options: TrainingOptions | None = None,
    *,
    val_data: str | os.PathLike | None = None,
    image_size: int | None = None,
    patch_size: int | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    overwrite: bool = False,
    allow_pickle: bool = False,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    echo: Callable[[str], None] | None = None,
) -> TrainingRun:
    """Fine-tune ``model`` on an ImageFolder and write the result as a Hugging Face folder.

    Args:
        model: A hub id, a local Hugging Face folder, ``preset:NAME`` or a ``config.json``
            (the last two start from random weights: training from scratch).
        data: ``DIR/<class name>/<image>``.
        out: The folder to write.
        options: Recipe, freezing, validation split, QAT (default: :class:`TrainingOptions`).
        val_data: A validation ImageFolder with the same classes (default: split off ``data``).
        image_size: Input size for a preset or config file.
        patch_size: Patch size for a preset or config file.
        checkpoint_dir: Resumable state and metrics log (default: ``OUT.checkpoint`` beside ``out``).
        resume: Continue from the checkpoint when there is one.
        overwrite: Replace an earlier training output at ``out``.
        allow_pickle: Accept a pickle checkpoint as the starting model (only for sources you trust).
        on_epoch: Called after each epoch.
        echo: Where progress lines go.

    Raises:
        UsageError: Bad data (empty or single class, unreadable images), options or output folder;
            reported before training starts.
        ModelLoadError: The model cannot be loaded.
    """
    options = options or TrainingOptions()
    if not isinstance(options, TrainingOptions):
        raise UsageError(f"options must be TrainingOptions, got {type(options).__name__}")
    say = echo or (lambda line: None)
    out_path = Path(out)
    check_output(out_path, overwrite=overwrite or resume)
    class_names = read_class_names(data)
    start = build_starting_model(model, class_names, image_size=image_size, patch_size=patch_size,
                                 seed=options.loop.train.seed, allow_pickle=allow_pickle)
    say(f"reading {data} ({len(class_names)} classes) at {start.image_size}x{start.image_size}")
    training_data = load_training_data(data, start.preprocess, val_dir=val_data, val_fraction=options.val_fraction,
                                       seed=options.loop.train.seed, skip_unreadable=options.skip_unreadable)
    say(f"training on {len(training_data.train)} images, validating on {len(training_data.val)}"
        + (f" ({len(training_data.skipped)} unreadable skipped)" if training_data.skipped else ""))
    objective = cross_entropy_objective(options.loop.train.label_smoothing)
    return train_and_save(
        start, training_data, objective, options, out=out_path, weights="finetuned",
        details={"task": "finetune"},
        checkpoint_dir=Path(checkpoint_dir) if checkpoint_dir else default_checkpoint_dir(out_path),
        resume=resume, overwrite=overwrite or resume, on_epoch=on_epoch,
    )
