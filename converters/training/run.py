"""What fine-tuning and distillation share: options, the run (QAT, loop, save) and its result."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vitedge._version import __version__
from vitedge.converters.training.loop import (
    METRICS_LOG,
    EpochRecord,
    LoopConfig,
    LoopResult,
    Objective,
    run_training,
)
from vitedge.converters.training.models import StartingModel, freeze
from vitedge.converters.training.output import save_training_output
from vitedge.converters.training.qat import QAT_RECORD, QatConfig, prepare_qat, qat_record, strip_qat
from vitedge.converters.training.recipe import TrainConfig
from vitedge.data.imagefolder import TrainingData
from vitedge.errors import UsageError

#: Fine-tuning defaults: a pretrained ViT's usual recipe (AdamW 2e-4, warmup 10%, cosine, smoothing 0.1).
FINETUNE_RECIPE = TrainConfig(epochs=10, batch_size=32, learning_rate=2e-4, weight_decay=0.05,
                              warmup_fraction=0.1, label_smoothing=0.1, seed=0)


@dataclass(frozen=True)
class TrainingOptions:
    """Options shared by ``finetune`` and ``distill``.

    Attributes:
        loop: The loop and its recipe (epochs, batch size, learning rate, precision, ...).
        freeze_layers: Freeze the embeddings and the first K encoder layers (0: train everything).
        head_only: Train the classifier head only (linear probing).
        val_fraction: Share of each class held out for validation when no validation folder is given.
        skip_unreadable: Train without unreadable images instead of refusing to start.
        qat: Quantization-aware training (fake int8 on the encoder's linear layers); None: off.
    """

    loop: LoopConfig = field(default_factory=lambda: LoopConfig(train=FINETUNE_RECIPE))
    freeze_layers: int = 0
    head_only: bool = False
    val_fraction: float = 0.1
    skip_unreadable: bool = False
    qat: QatConfig | None = None

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.freeze_layers, int) or isinstance(self.freeze_layers, bool) or self.freeze_layers < 0:
            problems.append(f"freeze_layers must be a non-negative integer, got {self.freeze_layers!r}")
        if self.head_only and self.freeze_layers:
            problems.append("head_only and freeze_layers exclude each other")
        if not isinstance(self.val_fraction, (int, float)) or math.isnan(self.val_fraction) or not 0 < self.val_fraction <= 0.5:
            problems.append(f"val_fraction must be in (0, 0.5], got {self.val_fraction!r}")
        if self.qat is not None and not isinstance(self.qat, QatConfig):
            problems.append(f"qat must be a QatConfig or None, got {type(self.qat).__name__}")
        if problems:
            raise UsageError("invalid training options: " + "; ".join(problems))


@dataclass(frozen=True)
class RunSetup:
    """Where a fine-tuning or distillation run reads and writes, and how it reports.

    Attributes:
        val_data: A validation ImageFolder with the same classes (default: split off the data).
        image_size: Input size of a preset or ``config.json`` start (random init; a distillation
            student defaults to the teacher's).
        patch_size: Patch size of a preset or ``config.json`` start.
        checkpoint_dir: Resumable state and metrics log (default: ``OUT.checkpoint`` beside the output).
        resume: Continue from the checkpoint when there is one.
        overwrite: Replace an earlier training output.
        allow_pickle: Accept pickle checkpoints (only for sources you trust).
        on_epoch: Called after each epoch (rank 0).
        echo: Where progress lines go.
    """

    val_data: str | os.PathLike | None = None
    image_size: int | None = None
    patch_size: int | None = None
    checkpoint_dir: str | os.PathLike | None = None
    resume: bool = False
    overwrite: bool = False
    allow_pickle: bool = False
    on_epoch: Callable[[EpochRecord], None] | None = None
    echo: Callable[[str], None] | None = None

    def say(self, line: str) -> None:
        if self.echo is not None:
            self.echo(line)

    def checkpoints(self, out: Path) -> Path:
        return Path(self.checkpoint_dir) if self.checkpoint_dir else default_checkpoint_dir(out)


@dataclass(frozen=True)
class TrainingRun:
    """A finished fine-tuning or distillation run.

    Attributes:
        out: The Hugging Face folder written (None on ranks other than 0 of a DDP run).
        loop: What the loop did (history, best epoch, why it stopped).
        record: The training record written as ``vitedge_training.json``.
        model: The trained model (plain layers, best epoch's weights), on CPU in eval mode.
    """

    out: Path | None
    loop: LoopResult
    record: dict[str, Any]
    model: torch.nn.Module


def train_and_save(
    start: StartingModel,
    data: TrainingData,
    objective: Objective,
    options: TrainingOptions,
    *,
    out: Path,
    weights: str,
    details: dict[str, Any],
    setup: RunSetup,
) -> TrainingRun:
    """Freeze, prepare QAT, train, strip QAT and write the folder (rank 0)."""
    model = start.model
    parameters = freeze(model, freeze_layers=options.freeze_layers, head_only=options.head_only)
    qat_config = prepare_qat(model, options.qat) if options.qat is not None else None
    checkpoint_dir = setup.checkpoints(out)
    load_average = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    result = run_training(model, data.train, data.val, options.loop, objective,
                          checkpoint_dir=checkpoint_dir, resume=setup.resume, on_epoch=setup.on_epoch)
    for parameter in model.parameters():
        parameter.requires_grad = True
    ranges = strip_qat(model) if qat_config is not None else None
    record = {
        "weights": weights,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "vitedge_version": __version__,
        "start": start.origin,
        "data": data.describe(),
        "recipe": _recipe(options),
        **details,
        **parameters,
        "qat": qat_config is not None,
        "load_average_at_start": load_average,  # timings on a shared machine need it
        "result": {key: value for key, value in result.to_dict().items() if key != "history"},
    }
    written = None
    if result.world_size == 1 or _is_rank_zero():
        written = save_training_output(model, out, spec=start.preprocess, processor_config=start.processor_config,
                                       record=record, overwrite=setup.overwrite or setup.resume,
                                       extra_files={METRICS_LOG: checkpoint_dir / METRICS_LOG})
        if ranges is not None:
            (written / QAT_RECORD).write_text(json.dumps(qat_record(qat_config, ranges), indent=2) + "\n")
    return TrainingRun(written, result, record, model)


def _is_rank_zero() -> bool:
    import torch.distributed as dist

    return not dist.is_initialized() or dist.get_rank() == 0


def _recipe(options: TrainingOptions) -> dict[str, Any]:
    recipe = dataclasses.asdict(options)
    recipe["loop"].pop("progress", None)
    return recipe


def default_checkpoint_dir(out: Path) -> Path:
    """Where a run keeps its resumable state: beside ``out``, as ``OUT.checkpoint``."""
    return out.with_name(out.name + ".checkpoint")
