"""The one training loop: behind ``vitedge finetune``, ``vitedge distill`` (QAT included) and the quickstart.

It carries out the recipe of :mod:`vitedge.converters.training.recipe` (AdamW parameter groups, warmup +
cosine schedule, augmentation, time budget; seeded and deterministic on CPU) and adds what fine-tuning
on users' data needs: mixed precision (bf16 autocast on CPU, fp16 with loss scaling on GPU), gradient
checkpointing, gradient accumulation, early stopping on validation accuracy (the best epoch's weights
are kept, or the last epoch's on request), resumable checkpoints, a progress bar and a metrics log
(JSON lines). It reads any :class:`~vitedge.converters.training.images.ImageSet`: an ImageFolder's
pixels or arrays preprocessed already.

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

from vitedge.converters.training.images import ImageSet
from vitedge.converters.training.recipe import (
    TrainConfig,
    augment,
    budget_clock,
    is_int,
    parameter_groups,
    torch_threads,
    warmup_cosine,
)
from vitedge.errors import UsageError

AMP_MODES = ("auto", "fp32", "bf16", "fp16")
KEEP_CHOICES = ("best", "last")
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
        keep: The weights the model holds at the end: ``best`` (the best validation epoch's) or
            ``last`` (the last epoch's, e.g. for a fixed recipe measured as it ends).
    """

    train: TrainConfig = field(default_factory=TrainConfig)
    accumulation_steps: int = 1
    amp: str = "auto"
    gradient_checkpointing: bool = False
    patience: int | None = None
    device: str = "auto"
    progress: bool = True
    keep: str = "best"

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.train, TrainConfig):
            problems.append(f"train must be a TrainConfig, got {type(self.train).__name__}")
        if not is_int(self.accumulation_steps) or self.accumulation_steps < 1:
            problems.append(f"accumulation_steps must be a positive integer, got {self.accumulation_steps!r}")
        if self.amp not in AMP_MODES:
            problems.append(f"amp must be one of {', '.join(AMP_MODES)}, got {self.amp!r}")
        if self.patience is not None and (not is_int(self.patience) or self.patience < 1):
            problems.append(f"patience must be a positive integer or None, got {self.patience!r}")
        if not isinstance(self.device, str) or not (self.device in ("auto", "cpu") or self.device.startswith("cuda")):
            problems.append(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if self.keep not in KEEP_CHOICES:
            problems.append(f"keep must be one of {', '.join(KEEP_CHOICES)}, got {self.keep!r}")
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
    """What the loop did. The model holds the best epoch's weights (the last epoch's with ``keep="last"``)."""

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
    model: nn.Module, images: ImageSet, device: torch.device, *, batch_size: int = 128,
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
            ) from error

    def start_log(self) -> None:
        """A fresh run starts a fresh metrics log."""
        if self.enabled:
            (self.folder / METRICS_LOG).unlink(missing_ok=True)

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


@dataclass(frozen=True)
class _Run:
    """What stays fixed while the loop runs: the model, the data, where and how it trains."""

    model: nn.Module
    step_model: nn.Module  # the model, or its DDP wrapper
    train: ImageSet
    val: ImageSet
    targets: torch.Tensor  # every training label, int64
    config: LoopConfig
    objective: Objective
    dist: Distributed
    device: torch.device
    amp_dtype: torch.dtype | None
    steps_per_epoch: int
    checkpoints: _Checkpoints
    started: float
    on_epoch: Callable[[EpochRecord], None] | None

    @property
    def recipe(self) -> TrainConfig:
        return self.config.train


@dataclass
class _State:
    """What changes from epoch to epoch: what a checkpoint saves and a resume restores."""

    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler | None
    generator: torch.Generator
    best_state: dict[str, torch.Tensor]
    history: list[EpochRecord] = field(default_factory=list)
    best_accuracy: float = -1.0
    best_epoch: int = 0
    stale: int = 0
    epoch: int = 0  # the last epoch that ran

    def add(self, record: EpochRecord, model: nn.Module) -> None:
        """Count an epoch: the history, the best epoch (and its weights), epochs without progress."""
        self.history.append(record)
        self.epoch = record.epoch
        if record.val_accuracy > self.best_accuracy:
            self.best_accuracy, self.best_epoch, self.stale = record.val_accuracy, record.epoch, 0
            self.best_state = _cpu_state(model)
        else:
            self.stale += 1

    def trainer_state(self) -> dict:
        return {
            "optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else {},
            "generator": self.generator.get_state(), "torch_rng": torch.get_rng_state(), "epoch": self.epoch,
            "best_accuracy": self.best_accuracy, "best_epoch": self.best_epoch, "stale": self.stale,
            "history": json.dumps([asdict(item) for item in self.history]),
        }

    def restore(self, trainer: dict) -> None:
        self.optimizer.load_state_dict(trainer["optimizer"])
        self.schedule.load_state_dict(trainer["schedule"])
        if self.scaler is not None and trainer.get("scaler"):
            self.scaler.load_state_dict(trainer["scaler"])
        self.generator.set_state(trainer["generator"])
        torch.set_rng_state(trainer["torch_rng"])
        self.best_accuracy, self.best_epoch, self.stale = trainer["best_accuracy"], trainer["best_epoch"], trainer["stale"]
        self.history = [EpochRecord(**record) for record in json.loads(trainer["history"])]
        self.epoch = trainer["epoch"]


def run_training(
    model: nn.Module,
    train: ImageSet,
    val: ImageSet,
    config: LoopConfig,
    objective: Objective,
    *,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    on_epoch: Callable[[EpochRecord], None] | None = None,
) -> LoopResult:
    """Train ``model`` in place; on return it holds the weights of the best validation epoch
    (of the last epoch with ``config.keep == "last"``), on CPU, in eval mode.

    The global torch random state and thread count are left as they were.

    Args:
        model: A classifier called as ``model(pixel_values=...)`` returning ``.logits``.
        train: Training images and labels (e.g. :class:`~vitedge.data.imagefolder.LabeledImages`).
        val: Validation images and labels (early stopping and the best epoch).
        config: The loop and its recipe.
        objective: The loss (cross-entropy, distillation, ...): ``objective(logits, batch)``.
        checkpoint_dir: Where to keep resumable state and the metrics log (rank 0 writes); None: nowhere.
        resume: Continue from ``checkpoint_dir`` when it holds a checkpoint (fresh start otherwise).
        on_epoch: Called after each epoch (rank 0 only), e.g. to print a line.

    Raises:
        UsageError: Empty sets or labels outside the model's classes, an unusable device or
            precision, a model without gradient checkpointing, a checkpoint that cannot be read
            or does not fit the model.
    """
    _check_sets(model, train, val)
    run = _prepare(model, train, val, config, objective, checkpoint_dir, on_epoch)
    with torch_threads(config.train.num_threads), torch.random.fork_rng(devices=[]):
        state = _start(run)
        if resume and run.checkpoints.exists():
            _resume(run, state)
        resumed_from = state.epoch
        if resumed_from == 0:
            run.checkpoints.start_log()
        stopped = "completed"
        for epoch in range(resumed_from + 1, config.train.epochs + 1):
            out_of_time = _run_epoch(run, state, epoch)
            stopped = _why_stop(run, state, out_of_time)
            if stopped != "completed":
                break
        _finish(run, state)
    return LoopResult(tuple(state.history), state.best_epoch, state.best_accuracy, stopped, resumed_from,
                      run.dist.world_size, round(time.perf_counter() - run.started, 3))


def _check_sets(model: nn.Module, train: ImageSet, val: ImageSet) -> None:
    if len(train) == 0 or len(val) == 0:
        raise UsageError("training and validation sets must not be empty")
    num_labels = getattr(getattr(model, "config", None), "num_labels", None)
    if num_labels is None:
        return
    for name, images in (("training", train), ("validation", val)):
        if images.labels.min() < 0 or images.labels.max() >= num_labels:
            raise UsageError(f"{name} labels must be in range(0, {num_labels}) (the model's num_labels)")


def _prepare(
    model: nn.Module, train: ImageSet, val: ImageSet, config: LoopConfig, objective: Objective,
    checkpoint_dir: Path | None, on_epoch: Callable[[EpochRecord], None] | None,
) -> _Run:
    """Join the process group, place the model on its device (wrapped in DDP when distributed)."""
    started = time.perf_counter()
    # Join the process group first: the device of a GPU process depends on its local rank.
    dist_info = distributed_from_env(torch.device("cuda") if config.device.startswith("cuda") or
                                     (config.device == "auto" and torch.cuda.is_available()) else None)
    device = resolve_device(config.device, dist_info.local_rank)
    amp_dtype = _amp_dtype(config.amp, device)
    if config.gradient_checkpointing:
        if not getattr(model, "supports_gradient_checkpointing", False):
            raise UsageError(f"{type(model).__name__} does not support gradient checkpointing")
        model.gradient_checkpointing_enable()
    model.to(device)
    step_model: nn.Module = model
    if dist_info.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        step_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return _Run(
        model, step_model, train, val, torch.from_numpy(train.labels.astype(np.int64)), config, objective,
        dist_info, device, amp_dtype, _steps_per_epoch(len(train), config.train.batch_size, dist_info.world_size),
        _Checkpoints(checkpoint_dir, enabled=dist_info.is_main), started, on_epoch,
    )


def _steps_per_epoch(train_images: int, batch_size: int, world_size: int) -> int:
    if batch_size < world_size:
        raise UsageError(f"batch size {batch_size} is smaller than the {world_size} processes")
    if train_images < world_size:
        raise UsageError(f"{train_images} training images cannot be shared by {world_size} processes")
    steps = math.ceil(train_images / batch_size)
    if 0 < train_images % batch_size < world_size:
        steps -= 1  # a last batch too small to give every process an image
    return steps


def _start(run: _Run) -> _State:
    """Seed, and build the optimizer, its schedule and the loss scaler (fp16)."""
    recipe = run.recipe
    torch.manual_seed(recipe.seed)  # dropout and stochastic depth, if the model has them
    generator = torch.Generator().manual_seed(recipe.seed)
    optimizer = torch.optim.AdamW(parameter_groups(run.model, recipe.weight_decay), lr=recipe.learning_rate)
    budget = None if recipe.max_seconds is None else budget_clock(run.started, recipe.max_seconds)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(run.steps_per_epoch * recipe.epochs, recipe.warmup_fraction, budget)
    )
    scaler = torch.amp.GradScaler(run.device.type) if run.amp_dtype == torch.float16 else None
    return _State(optimizer, schedule, scaler, generator, _cpu_state(run.model))


def _resume(run: _Run, state: _State) -> None:
    folder = run.checkpoints.folder
    weights, state.best_state, trainer = _Checkpoints(folder, True).load()
    try:
        run.model.load_state_dict(weights)
    except RuntimeError as error:
        raise UsageError(f"{folder}: the checkpoint does not fit this model ({str(error)[:200]})",
                         hint="delete the checkpoint folder or resume with the same model") from error
    state.restore(trainer)


def _run_epoch(run: _Run, state: _State, epoch: int) -> bool:
    """Train one epoch, evaluate, record, checkpoint and report it; True when the time budget ran out."""
    run.step_model.train()
    order = torch.randperm(len(run.train), generator=state.generator)
    epoch_started, epoch_loss, steps, seen = time.perf_counter(), 0.0, 0, 0
    out_of_time = False
    batch_size = run.recipe.batch_size
    with _progress(run.steps_per_epoch, epoch, run.config.progress and run.dist.is_main) as bar:
        for step in range(run.steps_per_epoch):
            index = order[step * batch_size : (step + 1) * batch_size]
            loss_value = _train_step(run, state, index)
            epoch_loss += loss_value
            steps += 1
            seen += len(index)
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{state.schedule.get_last_lr()[0]:.2e}")
            if _out_of_time(run):
                out_of_time = True
                break
    accuracy = _broadcast(evaluate(run.model, run.val, run.device, amp_dtype=run.amp_dtype), run.dist, run.device)
    record = EpochRecord(
        epoch=epoch, train_loss=_broadcast(epoch_loss / steps, run.dist, run.device), val_accuracy=accuracy,
        learning_rate=float(state.schedule.get_last_lr()[0]), seconds=round(time.perf_counter() - run.started, 3),
        images_per_second=round(seen / max(time.perf_counter() - epoch_started, 1e-9), 2),
    )
    _record(run, state, record)
    return out_of_time


def _train_step(run: _Run, state: _State, index: torch.Tensor) -> float:
    """One optimizer step on this process's share of the batch ``index``; returns its mean loss."""
    local = index[run.dist.rank :: run.dist.world_size]
    inputs = augment(torch.from_numpy(run.train.inputs(local.numpy())), run.recipe, state.generator)
    loss_value = _optimizer_step(run, state, Batch(inputs.to(run.device), run.targets[local].to(run.device), local))
    state.schedule.step()
    return loss_value


def _out_of_time(run: _Run) -> bool:
    if run.recipe.max_seconds is None:
        return False
    spent = float(time.perf_counter() - run.started >= run.recipe.max_seconds)
    return bool(_broadcast(spent, run.dist, run.device))


def _record(run: _Run, state: _State, record: EpochRecord) -> None:
    state.add(record, run.model)
    run.checkpoints.log(record)
    run.checkpoints.save(run.model, state.best_state, state.trainer_state())
    if run.on_epoch is not None and run.dist.is_main:
        run.on_epoch(record)


def _why_stop(run: _Run, state: _State, out_of_time: bool) -> str:
    """``time-budget``, ``early-stopping``, or ``completed`` (go on while epochs remain)."""
    if out_of_time:
        return "time-budget"
    if run.config.patience is not None and state.stale >= run.config.patience:
        return "early-stopping"
    return "completed"


def _finish(run: _Run, state: _State) -> None:
    """The weights to keep, gradient checkpointing off, on CPU in eval mode."""
    if run.config.keep == "best":
        run.model.load_state_dict(state.best_state)
    if run.config.gradient_checkpointing:
        run.model.gradient_checkpointing_disable()
    run.model.to("cpu").eval()


def _micro_batches(batch: Batch, count: int) -> Iterator[tuple[Batch, float]]:
    size = len(batch.labels)
    chunk = math.ceil(size / count)
    for start in range(0, size, chunk):
        part = slice(start, start + chunk)
        yield Batch(batch.inputs[part], batch.labels[part], batch.index[part]), min(chunk, size - start) / size


def _optimizer_step(run: _Run, state: _State, batch: Batch) -> float:
    """One optimizer step over ``batch`` in micro-batches; returns the batch's mean loss."""
    state.optimizer.zero_grad(set_to_none=True)
    parts = list(_micro_batches(batch, run.config.accumulation_steps))
    distributed = run.dist.world_size > 1
    total = 0.0
    for number, (part, weight) in enumerate(parts):
        last = number == len(parts) - 1
        sync = contextlib.nullcontext() if last or not distributed else run.step_model.no_sync()
        with sync:
            with _autocast(run.device, run.amp_dtype):
                loss = run.objective(run.step_model(pixel_values=part.inputs).logits.float(), part) * weight
            (state.scaler.scale(loss) if state.scaler is not None else loss).backward()
        total += float(loss.detach())
    if state.scaler is not None:
        state.scaler.step(state.optimizer)
        state.scaler.update()
    else:
        state.optimizer.step()
    return total


def cross_entropy_objective(label_smoothing: float = 0.0) -> Objective:
    """The hard-label loss: cross-entropy with optional label smoothing."""
    loss = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    return lambda logits, batch: loss(logits, batch.labels)
