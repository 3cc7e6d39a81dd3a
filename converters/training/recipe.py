"""Train an image classifier on in-memory tensors: the small, deterministic base of fine-tuning.

AdamW with linear warmup and cosine decay, label smoothing, optional label-preserving augmentation
(random shifts, horizontal flips), a wall-clock budget, seeded and deterministic on CPU. Inputs are
preprocessed already (``vitedge.runtime.preprocess``), so training sees exactly what the runtime feeds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from vitedge.errors import UsageError

# Parameters that are never weight-decayed besides biases and norms (all 1-D): ViT's learned tokens.
_NO_DECAY_SUFFIXES = ("cls_token", "position_embeddings", "mask_token")


@dataclass(frozen=True)
class TrainConfig:
    """How to train.

    Attributes:
        epochs: Passes over the training set.
        batch_size: Images per optimizer step.
        learning_rate: Peak AdamW learning rate, reached at the end of warmup.
        weight_decay: AdamW weight decay, applied to matrices only (not biases, norms, tokens).
        warmup_fraction: Share of all steps spent warming the learning rate up linearly from
            zero; the rest decays it to zero along a cosine.
        label_smoothing: Cross-entropy label smoothing in [0, 1).
        seed: Seeds shuffling, augmentation and dropout; same seed, same data, same threads
            (and a time budget that does not bind): the same weights.
        num_threads: torch CPU threads while training (restored afterwards); None keeps the current.
        max_seconds: Wall-clock budget. When the machine is too slow to finish all epochs in it,
            the cosine decay follows the clock instead of the step count (so the learning rate
            still anneals to zero), training stops after the step that spends the budget, and it
            evaluates and returns cleanly; such a run is not deterministic. None trains all epochs.
        max_shift: Augmentation: shift each training image by up to this many pixels in each
            direction (edge pixels repeat). 0 disables it.
        horizontal_flip: Augmentation: flip half of the training images left-right. Only for data
            whose labels survive a mirror image (not for "arrow pointing left" classes).
    """

    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 0.05
    warmup_fraction: float = 0.1
    label_smoothing: float = 0.1
    seed: int = 0
    num_threads: int | None = None
    max_seconds: float | None = None
    max_shift: int = 0
    horizontal_flip: bool = False

    def __post_init__(self) -> None:
        problems = []
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                problems.append(f"{name} must be a positive integer, got {value!r}")
        if not _is_number(self.learning_rate) or not self.learning_rate > 0:
            problems.append(f"learning_rate must be positive, got {self.learning_rate!r}")
        if not _is_number(self.weight_decay) or not self.weight_decay >= 0:
            problems.append(f"weight_decay must be zero or positive, got {self.weight_decay!r}")
        for name in ("warmup_fraction", "label_smoothing"):
            value = getattr(self, name)
            if not _is_number(value) or not 0 <= value < 1:
                problems.append(f"{name} must be in [0, 1), got {value!r}")
        if not _is_int(self.seed) or self.seed < 0:
            problems.append(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.num_threads is not None and (not _is_int(self.num_threads) or self.num_threads < 1):
            problems.append(f"num_threads must be a positive integer or None, got {self.num_threads!r}")
        if self.max_seconds is not None and (not _is_number(self.max_seconds) or not self.max_seconds > 0):
            problems.append(f"max_seconds must be positive or None, got {self.max_seconds!r}")
        if not _is_int(self.max_shift) or self.max_shift < 0:
            problems.append(f"max_shift must be a non-negative integer, got {self.max_shift!r}")
        if not isinstance(self.horizontal_flip, bool):
            problems.append(f"horizontal_flip must be True or False, got {self.horizontal_flip!r}")
        if problems:
            raise UsageError("invalid training config: " + "; ".join(problems))


@dataclass(frozen=True)
class EpochStats:
    """What one epoch did; passed to ``on_epoch``.

    Attributes:
        epoch: 1-based epoch number.
        train_loss: Mean training loss over the epoch's steps.
        val_accuracy: Top-1 accuracy on the validation set after the epoch.
        seconds: Wall-clock seconds since training started.
    """

    epoch: int
    train_loss: float
    val_accuracy: float
    seconds: float


@dataclass(frozen=True)
class TrainResult:
    """What training did.

    Attributes:
        epochs_run: Epochs that ran at least one step (the last may be partial when stopped early).
        train_loss: Mean training loss per epoch.
        val_accuracy: Validation top-1 accuracy after each epoch.
        final_val_accuracy: Validation top-1 accuracy of the returned model.
        seconds: Wall-clock seconds, evaluation included.
        stopped_early: True when ``max_seconds`` ran out before the last epoch ended.
    """

    epochs_run: int
    train_loss: tuple[float, ...]
    val_accuracy: tuple[float, ...]
    final_val_accuracy: float
    seconds: float
    stopped_early: bool


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_data(inputs: np.ndarray, labels: np.ndarray, num_labels: int, name: str) -> None:
    if inputs.ndim != 4 or inputs.dtype != np.float32:
        raise UsageError(f"{name} inputs must be a float32 (N, C, H, W) array, got {inputs.dtype} {inputs.shape}")
    if labels.ndim != 1 or labels.shape[0] != inputs.shape[0] or not np.issubdtype(labels.dtype, np.integer):
        raise UsageError(f"{name} labels must be {inputs.shape[0]} integers, got {labels.dtype} {labels.shape}")
    if inputs.shape[0] == 0:
        raise UsageError(f"{name} set is empty")
    if labels.min() < 0 or labels.max() >= num_labels:
        raise UsageError(f"{name} labels must be in range(0, {num_labels}) (the model's num_labels)")


@contextmanager
def _torch_threads(num_threads: int | None) -> Iterator[None]:
    previous = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        if parameter.ndim < 2 or name.endswith(_NO_DECAY_SUFFIXES):
            no_decay.append(parameter)
        else:
            decay.append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _warmup_cosine(
    total_steps: int, warmup_fraction: float, budget_spent: Callable[[], float] | None = None
) -> Callable[[int], float]:
    """Learning-rate factor per step: linear warmup, then cosine decay to zero.

    ``budget_spent`` returns the fraction of the time budget used so far; the decay follows it
    whenever it runs ahead of the step count.
    """
    warmup_steps = round(total_steps * warmup_fraction)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
        if budget_spent is not None:
            progress = max(progress, budget_spent())
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def _budget_clock(started: float, max_seconds: float) -> Callable[[], float]:
    return lambda: (time.perf_counter() - started) / max_seconds


def _augment(batch: torch.Tensor, config: TrainConfig, generator: torch.Generator) -> torch.Tensor:
    """Random shifts (edge pixels repeat) and flips, per image."""
    if config.max_shift:
        shift = config.max_shift
        count, _, height, width = batch.shape
        padded = nn.functional.pad(batch, (shift, shift, shift, shift), mode="replicate")
        offsets = torch.randint(0, 2 * shift + 1, (count, 2), generator=generator).tolist()
        batch = torch.stack([padded[i, :, y : y + height, x : x + width] for i, (y, x) in enumerate(offsets)])
    if config.horizontal_flip:
        flip = torch.rand(batch.shape[0], generator=generator) < 0.5
        batch = torch.where(flip[:, None, None, None], batch.flip(-1), batch)
    return batch


def evaluate_accuracy(model: nn.Module, inputs: np.ndarray, labels: np.ndarray, batch_size: int = 128) -> float:
    """Top-1 accuracy of an image classifier.

    Args:
        model: A model called as ``model(pixel_values=...)`` returning ``.logits``
            (e.g. ``ViTForImageClassification``). Its train/eval mode is restored afterwards.
        inputs: Preprocessed images, float32 (N, C, H, W).
        labels: Integer labels, (N,).
        batch_size: Images per forward pass.

    Returns:
        The fraction of images whose highest logit is their label.
    """
    if not _is_int(batch_size) or batch_size < 1:
        raise UsageError(f"batch_size must be a positive integer, got {batch_size!r}")
    _check_data(inputs, labels, getattr(model.config, "num_labels", int(labels.max()) + 1), "evaluation")
    was_training = model.training
    model.eval()
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(inputs), batch_size):
            batch = torch.from_numpy(inputs[start : start + batch_size])
            predicted = model(pixel_values=batch).logits.argmax(dim=-1).numpy()
            correct += int((predicted == labels[start : start + batch_size]).sum())
    model.train(was_training)
    return correct / len(inputs)


def train_classifier(
    model: nn.Module,
    train_inputs: np.ndarray,
    train_labels: np.ndarray,
    val_inputs: np.ndarray,
    val_labels: np.ndarray,
    config: TrainConfig,
    *,
    on_epoch: Callable[[EpochStats], None] | None = None,
) -> TrainResult:
    """Train a classifier in place and report how it went.

    The global torch random state and thread count are left as they were; the model is left in
    eval mode.

    Args:
        model: A model called as ``model(pixel_values=...)`` returning ``.logits``
            (e.g. ``ViTForImageClassification``), with ``config.num_labels`` outputs.
        train_inputs: Preprocessed training images, float32 (N, C, H, W).
        train_labels: Integer training labels, (N,).
        val_inputs: Preprocessed validation images, float32 (M, C, H, W).
        val_labels: Integer validation labels, (M,).
        config: The training recipe.
        on_epoch: Called after each epoch with its :class:`EpochStats` (e.g. to print progress).

    Returns:
        Per-epoch losses and accuracies, the final validation accuracy and the time taken.

    Raises:
        UsageError: Inputs or labels of the wrong shape, type or range.
    """
    num_labels = model.config.num_labels
    _check_data(train_inputs, train_labels, num_labels, "training")
    _check_data(val_inputs, val_labels, num_labels, "validation")
    started = time.perf_counter()
    images = torch.from_numpy(np.ascontiguousarray(train_inputs))
    targets = torch.from_numpy(train_labels.astype(np.int64))
    steps_per_epoch = math.ceil(len(images) / config.batch_size)
    losses: list[float] = []
    accuracies: list[float] = []
    stopped_early = False

    with _torch_threads(config.num_threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)  # dropout and stochastic depth, if the model has them
        generator = torch.Generator().manual_seed(config.seed)
        optimizer = torch.optim.AdamW(_parameter_groups(model, config.weight_decay), lr=config.learning_rate)
        budget_spent = None if config.max_seconds is None else _budget_clock(started, config.max_seconds)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, _warmup_cosine(steps_per_epoch * config.epochs, config.warmup_fraction, budget_spent)
        )
        loss_function = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        try:
            for epoch in range(1, config.epochs + 1):
                model.train()
                order = torch.randperm(len(images), generator=generator)
                epoch_loss, steps = 0.0, 0
                for start in range(0, len(images), config.batch_size):
                    index = order[start : start + config.batch_size]
                    batch = _augment(images[index], config, generator)
                    loss = loss_function(model(pixel_values=batch).logits, targets[index])
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    schedule.step()
                    epoch_loss += loss.item()
                    steps += 1
                    if config.max_seconds is not None and time.perf_counter() - started >= config.max_seconds:
                        stopped_early = epoch < config.epochs or steps < steps_per_epoch
                        break
                losses.append(epoch_loss / steps)
                accuracies.append(evaluate_accuracy(model, val_inputs, val_labels))
                if on_epoch is not None:
                    on_epoch(EpochStats(epoch, losses[-1], accuracies[-1], time.perf_counter() - started))
                if stopped_early:
                    break
        finally:
            model.eval()

    return TrainResult(
        epochs_run=len(losses),
        train_loss=tuple(losses),
        val_accuracy=tuple(accuracies),
        final_val_accuracy=accuracies[-1],
        seconds=time.perf_counter() - started,
        stopped_early=stopped_early,
    )
