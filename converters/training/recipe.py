"""The training recipe and the pieces of it the loop (:mod:`vitedge.converters.training.loop`) uses.

:class:`TrainConfig` (epochs, batch size, AdamW learning rate and weight decay, warmup, label
smoothing, seed, threads, time budget, augmentation), validated on construction, and the helpers
that carry it out: AdamW parameter groups (no decay on biases, norms and ViT's learned tokens),
linear warmup then cosine decay (following the clock when a time budget binds), label-preserving
augmentation (random shifts, horizontal flips) and a scoped torch thread count.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from vitedge.errors import UsageError

# Parameters that are never weight-decayed besides biases and norms (all 1-D): ViT's learned tokens.
_NO_DECAY_SUFFIXES = ("cls_token", "position_embeddings", "mask_token")


def is_int(value: object) -> bool:
    """An int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """A finite int or float that is not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _positive_int(value: object) -> bool:
    return is_int(value) and value >= 1


def _non_negative_int(value: object) -> bool:
    return is_int(value) and value >= 0


def _fraction(value: object) -> bool:
    return is_number(value) and 0 <= value < 1


# (field, test, what the field must be): one line per field of TrainConfig.
_FIELD_RULES: tuple[tuple[str, Callable[[object], bool], str], ...] = (
    ("epochs", _positive_int, "a positive integer"),
    ("batch_size", _positive_int, "a positive integer"),
    ("learning_rate", lambda value: is_number(value) and value > 0, "positive"),
    ("weight_decay", lambda value: is_number(value) and value >= 0, "zero or positive"),
    ("warmup_fraction", _fraction, "in [0, 1)"),
    ("label_smoothing", _fraction, "in [0, 1)"),
    ("seed", _non_negative_int, "a non-negative integer"),
    ("num_threads", lambda value: value is None or _positive_int(value), "a positive integer or None"),
    ("max_seconds", lambda value: value is None or (is_number(value) and value > 0), "positive or None"),
    ("max_shift", _non_negative_int, "a non-negative integer"),
    ("horizontal_flip", lambda value: isinstance(value, bool), "True or False"),
)


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
        problems = [
            f"{name} must be {requirement}, got {getattr(self, name)!r}"
            for name, test, requirement in _FIELD_RULES
            if not test(getattr(self, name))
        ]
        if problems:
            raise UsageError("invalid training config: " + "; ".join(problems))


@contextmanager
def torch_threads(num_threads: int | None) -> Iterator[None]:
    """Run the block with ``num_threads`` torch CPU threads (None: as they are); restore the count after."""
    previous = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: trainable matrices decay; biases, norms and ViT's learned tokens do not."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        if parameter.ndim < 2 or name.endswith(_NO_DECAY_SUFFIXES):
            no_decay.append(parameter)
        else:
            decay.append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def warmup_cosine(
    total_steps: int, warmup_fraction: float, budget_spent: Callable[[], float] | None = None
) -> Callable[[int], float]:
    """Learning-rate factor per step: linear warmup, then cosine decay to zero.

    ``budget_spent`` returns the fraction of the time budget used so far. Read as a step (that
    fraction of all steps), it runs ahead of the step count exactly when the run, at its pace so far,
    would overrun the budget; the decay then follows the clock, so the rate still reaches zero when
    the budget ends. A budget that does not bind leaves the schedule (and the run) deterministic.
    """
    warmup_steps = round(total_steps * warmup_fraction)
    decay_steps = max(total_steps - warmup_steps, 1)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / decay_steps
        if budget_spent is not None:
            progress = max(progress, (budget_spent() * total_steps - warmup_steps) / decay_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def budget_clock(started: float, max_seconds: float) -> Callable[[], float]:
    """The fraction of a ``max_seconds`` budget spent since ``started`` (a ``time.perf_counter()``)."""
    return lambda: (time.perf_counter() - started) / max_seconds


def augment(batch: torch.Tensor, config: TrainConfig, generator: torch.Generator) -> torch.Tensor:
    """Random shifts (edge pixels repeat) and flips, per image, as ``config`` asks."""
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
