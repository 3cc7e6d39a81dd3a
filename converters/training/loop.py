"""The training loop behind ``vitedge finetune`` and ``vitedge distill``: one process, one GPU, or DDP.

It extends :mod:`vitedge.converters.training.recipe` (same AdamW parameter groups, warmup + cosine schedule,
augmentation and time budget) with what fine-tuning on users' data needs: mixed precision (bf16
autocast on CPU, fp16 with loss scaling on GPU), gradient checkpointing, gradient accumulation,
early stopping on validation accuracy (the best epoch's weights are kept), resumable
checkpoints, a progress bar and a metrics log (JSON lines).

Scale-out is PyTorch's DDP, launched by ``torchrun`` (or Hugging Face Accelerate's launcher,
which sets the same environment): with ``WORLD_SIZE`` > 1 each process joins the process group
(gloo on CPU, NCCL on GPU), takes its share of every batch, and DDP averages the gradients. A
batch is ``batch_size`` images per optimizer step across all processes, so a recipe means the
same thing on one process or eight. Only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vitedge.converters.training.recipe import (
    TrainConfig,
    _augment,
    _budget_clock,
    _is_int,
    _parameter_groups,
    _torch_threads,
    _warmup_cosine,
)
from vitedge.data.imagefolder import LabeledImages
from vitedge.errors import UsageError

AMP_MODES = ("auto", "fp32", "bf16", "fp16")
METRICS_LOG = "metrics.jsonl"
_MODEL_STATE = "model.safetensors"
_BEST_STATE = "best.safetensors"
_TRAINER_STATE = "trainer_state.pt"


@dataclass(frozen=True)
class LoopConfig:
    """How the loop runs, on top of the recipe in :class:`~vitedge.converters.training.recipe.TrainConfig`.

    Attributes:
        train: The recipe: epochs, batch size (images per optimizer step, all processes together),
            learning rate, weight decay, warmup, label smoothing, seed, threads, time budget, augmentation.
        accumulation_steps: Split each process's share of a batch into this many micro-batches
            (same gradients, less memory).
        amp: ``auto`` (fp16 with loss scaling on GPU, fp32 on CPU), ``fp32``, ``bf16`` (autocast;
            CPU or GPU) or ``fp16`` (GPU only).
        gradient_checkpointing: Recompute activations in the backward pass (less memory, ~30% slower).
        patience: Stop after this many epochs without a better validation accuracy; None: never.
        device: ``auto`` (the local GPU when there is one), ``cpu``, ``cuda`` or ``cuda:N``.
        progress: Show a progress bar (rank 0, on a terminal).
    """

    train: TrainConfig = field(default_factory=TrainConfig)
    accumulation_steps: int = 1
    amp: str = "auto"
    gradient_checkpointing: bool = False
    patience: int | None = None
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.train, TrainConfig):
            problems.append(f"train must be a TrainConfig, got {type(self.train).__name__}")
        if not _is_int(self.accumulation_steps) or self.accumulation_steps < 1:
            problems.append(f"accumulation_steps must be a positive integer, got {self.accumulation_steps!r}")
        if self.amp not in AMP_MODES:
            problems.append(f"amp must be one of {', '.join(AMP_MODES)}, got {self.amp!r}")
        if self.patience is not None and (not _is_int(self.patience) or self.patience < 1):
            problems.append(f"patience must be a positive integer or None, got {self.patience!r}")
        if not isinstance(self.device, str) or not (self.device in ("auto", "cpu") or self.device.startswith("cuda")):
            problems.append(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if problems:
            raise UsageError("invalid training loop config: " + "; ".join(problems))


@dataclass(frozen=True)
class Batch:
    """What an objective sees: the (augmented) inputs, their labels and their dataset indices."""

    inputs: torch.Tensor
    labels: torch.Tensor
    index: torch.Tensor


#: ``objective(logits, batch) -> loss`` (a mean over the batch).
Objective = Callable[[torch.Tensor, Batch], torch.Tensor]


@dataclass(frozen=True)
class EpochRecord:
    """One line of the metrics log."""

    epoch: int
    train_loss: float
    val_accuracy: float
    learning_rate: float
    seconds: float
    images_per_second: float


@dataclass(frozen=True)
class LoopResult:
    """What the loop did. The model holds the best epoch's weights."""

    history: tuple[EpochRecord, ...]
    best_epoch: int
    best_val_accuracy: float
    stopped: str  # "completed" | "early-stopping" | "time-budget"
    resumed_from_epoch: int
    world_size: int
    seconds: float

    def to_dict(self) -> dict:
        return {**asdict(self), "history": [asdict(record) for record in self.history]}


@dataclass(frozen=True)
class Distributed:
    """This process's place in a DDP run (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def distributed_from_env(device: torch.device | None = None) -> Distributed:
    """Join the process group that ``torchrun`` (or ``accelerate launch``) describes in the environment."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed()
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if device is not None and device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return Distributed(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"device {name!r}: no CUDA GPU is available here", hint="use --device cpu or auto")
    if name == "cuda":
        return torch.device(f"cuda:{local_rank}")
    return torch.device(name)


def _amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    if amp == "auto":
        return torch.float16 if device.type == "cuda" else None
    if amp == "fp16" and device.type != "cuda":
        raise UsageError("fp16 mixed precision needs a GPU (loss scaling is a GPU technique)", hint="use bf16 on CPU")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]


def _broadcast(value: float, dist_info: Distributed, device: torch.device) -> float:
    """Rank 0's value on every rank (so that all ranks take the same decisions)."""
    if dist_info.world_size == 1:
        return value
    import torch.distributed as dist

    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(tensor, src=0)
    return float(tensor.item())


def evaluate(
    model: nn.Module, images: LabeledImages, device: torch.device, *, batch_size: int = 128,
    amp_dtype: torch.dtype | None = None,
) -> float:
    """Top-1 accuracy of ``model`` on ``images`` (its train/eval mode is restored)."""
    was_training = model.training
    model.eval()
    correct = 0
    with torch.inference_mode(), _autocast(device, amp_dtype):
        for start in range(0, len(images), batch_size):
            batch = torch.from_numpy(images.inputs(slice(start, start + batch_size))).to(device)
            predicted = model(pixel_values=batch).logits.argmax(dim=-1).cpu().numpy()
            correct += int((predicted == images.labels[start : start + batch_size]).sum())
    model.train(was_training)
    return correct / len(images)


def _autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


class _Checkpoints:
    """Resumable state in a folder: weights (safetensors), optimizer and counters (tensors only)."""

    def __init__(self, folder: Path | None, enabled: bool) -> None:
        self.folder = folder
        self.enabled = enabled and folder is not None

    def exists(self) -> bool:
        return self.folder is not None and (self.folder / _TRAINER_STATE).is_file()

    def save(self, model: nn.Module, best: dict[str, torch.Tensor], trainer: dict) -> None:
        if not self.enabled:
            return
        from safetensors.torch import save_file

        self.folder.mkdir(parents=True, exist_ok=True)
        for name, tensors in ((_MODEL_STATE, _cpu_state(model)), (_BEST_STATE, best)):
            save_file(tensors, str(self.folder / (name + ".tmp")))
            os.replace(self.folder / (name + ".tmp"), self.folder / name)
        torch.save(trainer, self.folder / (_TRAINER_STATE + ".tmp"))
        os.replace(self.folder / (_TRAINER_STATE + ".tmp"), self.folder / _TRAINER_STATE)

    def load(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict]:
        from safetensors.torch import load_file

        try:
            trainer = torch.load(self.folder / _TRAINER_STATE, weights_only=True)
            return load_file(str(self.folder / _MODEL_STATE)), load_file(str(self.folder / _BEST_STATE)), trainer
        except Exception as error:
            raise UsageError(
                f"{self.folder}: the checkpoint cannot be read ({type(error).__name__}: {error})",
                hint="delete the checkpoint folder to start over",
            ) from None

    def log(self, record: EpochRecord) -> None:
        if self.enabled:
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(self.folder / METRICS_LOG, "a", encoding="utf-8") as log:
                log.write(json.dumps(asdict(record)) + "\n")


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().to("cpu", copy=True).contiguous() for name, tensor in model.state_dict().items()}


def _progress(total: int, epoch: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"epoch {epoch}", unit="step", leave=False, disable=not enabled or not sys.stderr.isatty(),
                file=sys.stderr, dynamic_ncols=True)


def run_training(
    model: nn.Module,
    train: LabeledImages,
    val: LabeledImages,
    config: LoopConfig,
    objective: Objective,
    *,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    on_epoch: Callable[[EpochRecord], None] | None = None,
) -> LoopResult:
    """Train ``model`` in place; on return it holds the weights of the best validation epoch.

    Args:
        model: A classifier called as ``model(pixel_values=...)`` returning ``.logits``.
        train: Training images and labels.
        val: Validation images and labels (early stopping and the best epoch).
        config: The loop and its recipe.
        objective: The loss (cross-entropy, distillation, ...): ``objective(logits, batch)``.
        checkpoint_dir: Where to keep resumable state and the metrics log (rank 0 writes); None: nowhere.
        resume: Continue from ``checkpoint_dir`` when it holds a checkpoint (fresh start otherwise).
        on_epoch: Called after each epoch (rank 0 only), e.g. to print a line.

    Raises:
        UsageError: An unusable device or precision, a model without gradient checkpointing, a
            checkpoint that cannot be read or does not fit the model.
    """
    recipe = config.train
    if len(train) == 0 or len(val) == 0:
        raise UsageError("training and validation sets must not be empty")
    started = time.perf_counter()
    # Join the process group first: the device of a GPU process depends on its local rank.
    dist_info = distributed_from_env(torch.device("cuda") if config.device.startswith("cuda") or
                                     (config.device == "auto" and torch.cuda.is_available()) else None)
    device = resolve_device(config.device, dist_info.local_rank)
    amp_dtype = _amp_dtype(config.amp, device)
    checkpoints = _Checkpoints(checkpoint_dir, enabled=dist_info.is_main)
    if config.gradient_checkpointing:
        if not getattr(model, "supports_gradient_checkpointing", False):
            raise UsageError(f"{type(model).__name__} does not support gradient checkpointing")
        model.gradient_checkpointing_enable()
    model.to(device)
    step_model: nn.Module = model
    if dist_info.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        step_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    batch_size = recipe.batch_size
    if batch_size < dist_info.world_size:
        raise UsageError(f"batch size {batch_size} is smaller than the {dist_info.world_size} processes")
    if len(train) < dist_info.world_size:
        raise UsageError(f"{len(train)} training images cannot be shared by {dist_info.world_size} processes")
    steps_per_epoch = math.ceil(len(train) / batch_size)
    if 0 < len(train) % batch_size < dist_info.world_size:
        steps_per_epoch -= 1  # a last batch too small to give every process an image
    targets_all = torch.from_numpy(train.labels.astype(np.int64))

    with _torch_threads(recipe.num_threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        generator = torch.Generator().manual_seed(recipe.seed)
        optimizer = torch.optim.AdamW(_parameter_groups(model, recipe.weight_decay), lr=recipe.learning_rate)
        budget = None if recipe.max_seconds is None else _budget_clock(started, recipe.max_seconds)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, _warmup_cosine(steps_per_epoch * recipe.epochs, recipe.warmup_fraction, budget)
        )
        scaler = torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None
        history: list[EpochRecord] = []
        best_state = _cpu_state(model)
        best_accuracy, best_epoch, stale, first_epoch = -1.0, 0, 0, 1
        if resume and checkpoint_dir is not None and (checkpoint_dir / _TRAINER_STATE).is_file():
            state, best_state, trainer = _Checkpoints(checkpoint_dir, True).load()
            try:
                model.load_state_dict(state)
            except RuntimeError as error:
                raise UsageError(f"{checkpoint_dir}: the checkpoint does not fit this model ({str(error)[:200]})",
                                 hint="delete the checkpoint folder or resume with the same model") from None
            optimizer.load_state_dict(trainer["optimizer"])
            schedule.load_state_dict(trainer["schedule"])
            if scaler is not None and trainer.get("scaler"):
                scaler.load_state_dict(trainer["scaler"])
            generator.set_state(trainer["generator"])
            torch.set_rng_state(trainer["torch_rng"])
            best_accuracy, best_epoch, stale = trainer["best_accuracy"], trainer["best_epoch"], trainer["stale"]
            history = [EpochRecord(**record) for record in json.loads(trainer["history"])]
            first_epoch = trainer["epoch"] + 1
        resumed_from = first_epoch - 1
        if resumed_from == 0 and checkpoints.enabled:
            (checkpoint_dir / METRICS_LOG).unlink(missing_ok=True)  # a fresh run starts a fresh log
        stopped = "completed"
        for epoch in range(first_epoch, recipe.epochs + 1):
            step_model.train()
            order = torch.randperm(len(train), generator=generator)
            epoch_started, epoch_loss, steps, seen = time.perf_counter(), 0.0, 0, 0
            out_of_time = False
            with _progress(steps_per_epoch, epoch, config.progress and dist_info.is_main) as bar:
                for step in range(steps_per_epoch):
                    index = order[step * batch_size : (step + 1) * batch_size]
                    local = index[dist_info.rank :: dist_info.world_size]
                    inputs = _augment(torch.from_numpy(train.inputs(local.numpy())), recipe, generator)
                    loss_value = _optimizer_step(
                        step_model, optimizer, scaler, objective,
                        Batch(inputs.to(device), targets_all[local].to(device), local),
                        config.accumulation_steps, device, amp_dtype, dist_info.world_size > 1,
                    )
                    schedule.step()
                    epoch_loss += loss_value
                    steps += 1
                    seen += len(index)
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{schedule.get_last_lr()[0]:.2e}")
                    if recipe.max_seconds is not None:
                        spent = float(time.perf_counter() - started >= recipe.max_seconds)
                        if _broadcast(spent, dist_info, device):
                            out_of_time = True
                            break
            accuracy = _broadcast(evaluate(model, val, device, amp_dtype=amp_dtype), dist_info, device)
            record = EpochRecord(
                epoch=epoch, train_loss=_broadcast(epoch_loss / steps, dist_info, device), val_accuracy=accuracy,
                learning_rate=float(schedule.get_last_lr()[0]), seconds=round(time.perf_counter() - started, 3),
                images_per_second=round(seen / max(time.perf_counter() - epoch_started, 1e-9), 2),
            )
            history.append(record)
            if accuracy > best_accuracy:
                best_accuracy, best_epoch, stale = accuracy, epoch, 0
                best_state = _cpu_state(model)
            else:
                stale += 1
            checkpoints.log(record)
            checkpoints.save(model, best_state, {
                "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else {},
                "generator": generator.get_state(), "torch_rng": torch.get_rng_state(), "epoch": epoch,
                "best_accuracy": best_accuracy, "best_epoch": best_epoch, "stale": stale,
                "history": json.dumps([asdict(item) for item in history]),
            })
            if on_epoch is not None and dist_info.is_main:
                on_epoch(record)
            if out_of_time:
                stopped = "time-budget"
                break
            if config.patience is not None and stale >= config.patience:
                stopped = "early-stopping"
                break
        model.load_state_dict(best_state)
        if config.gradient_checkpointing:
            model.gradient_checkpointing_disable()
        model.to("cpu").eval()

    return LoopResult(tuple(history), best_epoch, best_accuracy, stopped, resumed_from, dist_info.world_size,
                      round(time.perf_counter() - started, 3))


def _micro_batches(batch: Batch, count: int) -> Iterator[tuple[Batch, float]]:
    size = len(batch.labels)
    chunk = math.ceil(size / count)
    for start in range(0, size, chunk):
        part = slice(start, start + chunk)
        yield Batch(batch.inputs[part], batch.labels[part], batch.index[part]), min(chunk, size - start) / size


def _optimizer_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, scaler, objective: Objective, batch: Batch,
    accumulation_steps: int, device: torch.device, amp_dtype: torch.dtype | None, distributed: bool,
) -> float:
    """One optimizer step over ``batch`` in micro-batches; returns the batch's mean loss."""
    optimizer.zero_grad(set_to_none=True)
    parts = list(_micro_batches(batch, accumulation_steps))
    total = 0.0
    for number, (part, weight) in enumerate(parts):
        last = number == len(parts) - 1
        sync = contextlib.nullcontext() if last or not distributed else model.no_sync()
        with sync:
            with _autocast(device, amp_dtype):
                loss = objective(model(pixel_values=part.inputs).logits.float(), part) * weight
            (scaler.scale(loss) if scaler is not None else loss).backward()
        total += float(loss.detach())
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return total


def cross_entropy_objective(label_smoothing: float = 0.0) -> Objective:
    """The hard-label loss: cross-entropy with optional label smoothing."""
    loss = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    return lambda logits, batch: loss(logits, batch.labels)
