"""Transfer learning on the user's images: a new head for their classes, then fine-tuning.

    >>> from vitedge.converters.training.finetune import finetune
    >>> run = finetune("google/vit-base-patch16-224", "photos/", "models/mine")
    >>> # vitedge convert models/mine --to onnx --out artifacts/mine

The result is a Hugging Face folder (config with ``id2label``, ``model.safetensors``,
``preprocessor_config.json``) whose ``vitedge_training.json`` makes every artifact converted from
it say ``weights: finetuned``.
"""

from __future__ import annotations

import os
from pathlib import Path

from vitedge.converters.training.loop import cross_entropy_objective
from vitedge.converters.training.models import build_starting_model
from vitedge.converters.training.output import check_output
from vitedge.converters.training.run import RunSetup, TrainingOptions, TrainingRun, train_and_save
from vitedge.data.imagefolder import load_training_data, read_class_names
from vitedge.errors import UsageError


def finetune(
    model: str,
    data: str | os.PathLike,
    out: str | os.PathLike,
    options: TrainingOptions | None = None,
    setup: RunSetup | None = None,
) -> TrainingRun:
    """Fine-tune ``model`` on an ImageFolder and write the result as a Hugging Face folder.

    Args:
        model: A hub id, a local Hugging Face folder, ``preset:NAME`` or a ``config.json``
            (the last two start from random weights: training from scratch).
        data: ``DIR/<class name>/<image>``.
        out: The folder to write.
        options: Recipe, freezing, validation split, QAT (default: :class:`TrainingOptions`).
        setup: Validation folder, sizes of a from-scratch start, checkpoints and resuming,
            overwriting, progress callbacks (default: :class:`RunSetup`).

    Raises:
        UsageError: Bad data (empty or single class, unreadable images), options or output folder;
            reported before training starts.
        ModelLoadError: The model cannot be loaded.
    """
    options = options or TrainingOptions()
    setup = setup or RunSetup()
    if not isinstance(options, TrainingOptions):
        raise UsageError(f"options must be TrainingOptions, got {type(options).__name__}")
    out_path = Path(out)
    check_output(out_path, overwrite=setup.overwrite or setup.resume)
    class_names = read_class_names(data)
    start = build_starting_model(model, class_names, image_size=setup.image_size, patch_size=setup.patch_size,
                                 seed=options.loop.train.seed, allow_pickle=setup.allow_pickle)
    setup.say(f"reading {data} ({len(class_names)} classes) at {start.input_size[1]}x{start.input_size[0]}")
    training_data = load_training_data(data, start.preprocess, val_dir=setup.val_data, val_fraction=options.val_fraction,
                                       seed=options.loop.train.seed, skip_unreadable=options.skip_unreadable)
    setup.say(f"training on {len(training_data.train)} images, validating on {len(training_data.val)}"
              + (f" ({len(training_data.skipped)} unreadable skipped)" if training_data.skipped else ""))
    objective = cross_entropy_objective(options.loop.train.label_smoothing)
    return train_and_save(start, training_data, objective, options, out=out_path, weights="finetuned",
                          details={"task": "finetune"}, setup=setup)
