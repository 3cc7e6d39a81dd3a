"""Knowledge distillation: a small student learns from a fine-tuned teacher's logits.

    >>> from vitedge.converters.training.distill import distill
    >>> distill("models/teacher", "preset:vit-tiny-patch16-224", "photos/", "models/student")

Two objectives (:class:`DistillConfig`):

- ``soft`` (Hinton et al.): ``alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))
  + (1 - alpha) * cross_entropy(student, label)``;
- ``hard`` (DeiT's hard distillation): ``0.5 * CE(student, label) + 0.5 * CE(student,
  argmax teacher)``. DeiT adds a distillation token; a plain ViT student learns both targets
  through its one head.

The student starts from scratch (a preset or a ``config.json``) or from a smaller checkpoint, and
sees the teacher's input tensors, so both must preprocess alike; a preset student takes the
teacher's preprocessing and image size. Teacher logits are computed once, before training, and
cached in a safetensors file keyed by the teacher's weights and the data, so each epoch (and a
resumed run) costs only the student. Caching needs fixed inputs: with augmentation on, pass
``cache_teacher_logits=False`` and the teacher runs on every batch.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional

from vitedge.converters.loading import SourceModel, load_source
from vitedge.converters.training.loop import Batch, Objective, evaluate, resolve_device
from vitedge.converters.training.models import StartingModel, build_starting_model
from vitedge.converters.training.output import check_output
from vitedge.converters.training.run import RunSetup, TrainingOptions, TrainingRun, train_and_save
from vitedge.data.imagefolder import LabeledImages, load_training_data, read_class_names
from vitedge.errors import UsageError

DISTILL_MODES = ("soft", "hard")
TEACHER_CACHE = "teacher_logits.safetensors"


@dataclass(frozen=True)
class DistillConfig:
    """How the student learns from the teacher.

    Attributes:
        mode: ``soft`` (KL at temperature T mixed with the label loss by alpha) or ``hard`` (DeiT).
        temperature: Softens both distributions in ``soft`` mode (T > 0; 1 leaves them as they are).
        alpha: Weight of the distillation term in ``soft`` mode, in [0, 1]; 1 - alpha goes to the labels.
        cache_teacher_logits: Compute the teacher's logits once (needs augmentation off).
    """

    mode: str = "soft"
    temperature: float = 2.0
    alpha: float = 0.5
    cache_teacher_logits: bool = True

    def __post_init__(self) -> None:
        problems = []
        if self.mode not in DISTILL_MODES:
            problems.append(f"mode must be one of {', '.join(DISTILL_MODES)}, got {self.mode!r}")
        if not isinstance(self.temperature, (int, float)) or not math.isfinite(self.temperature) or self.temperature <= 0:
            problems.append(f"temperature must be positive, got {self.temperature!r}")
        if not isinstance(self.alpha, (int, float)) or not 0 <= self.alpha <= 1:
            problems.append(f"alpha must be in [0, 1], got {self.alpha!r}")
        if problems:
            raise UsageError("invalid distillation config: " + "; ".join(problems))


def soft_distillation_loss(student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, *,
                           temperature: float, alpha: float, label_smoothing: float = 0.0) -> torch.Tensor:
    """``alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(student, labels)``, batch mean."""
    distill = functional.kl_div(
        functional.log_softmax(student / temperature, dim=-1), functional.log_softmax(teacher / temperature, dim=-1),
        reduction="batchmean", log_target=True,
    ) * temperature**2
    hard = functional.cross_entropy(student, labels, label_smoothing=label_smoothing)
    return alpha * distill + (1 - alpha) * hard


def hard_distillation_loss(student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, *,
                           label_smoothing: float = 0.0) -> torch.Tensor:
    """DeiT's hard distillation: half the labels' loss, half the loss against the teacher's top-1."""
    return 0.5 * functional.cross_entropy(student, labels, label_smoothing=label_smoothing) + \
        0.5 * functional.cross_entropy(student, teacher.argmax(dim=-1))


def label_permutation(teacher_labels: dict[int, str], class_names: tuple[str, ...], teacher: str) -> list[int]:
    """For each dataset class, the index of the teacher's logit with that label.

    Raises:
        UsageError: The teacher's labels and the dataset's class folders differ.
    """
    by_name = {name: index for index, name in teacher_labels.items()}
    missing = [name for name in class_names if name not in by_name]
    extra = sorted(set(by_name) - set(class_names))
    if missing or extra:
        raise UsageError(
            f"teacher {teacher} and the data disagree on the classes: "
            + "; ".join(part for part in (
                f"class folders the teacher has no label for: {', '.join(missing)}" if missing else "",
                f"teacher labels with no class folder: {', '.join(extra[:10])}" if extra else "") if part),
            hint="distill from a teacher fine-tuned on these class folders (vitedge finetune TEACHER --data DIR)",
        )
    return [by_name[name] for name in class_names]


def teacher_logits(
    teacher: nn.Module, images: LabeledImages, permutation: list[int], *, device: torch.device,
    cache_file: Path | None = None, teacher_sha256: str = "", batch_size: int = 64,
) -> torch.Tensor:
    """The teacher's logits for ``images`` in dataset class order, from ``cache_file`` when it fits."""
    from safetensors.torch import load_file, save_file

    key = hashlib.sha256(f"{teacher_sha256}|{images.sha256()}|{permutation}".encode()).hexdigest()
    if cache_file is not None and cache_file.is_file():
        from safetensors import safe_open

        with safe_open(str(cache_file), framework="pt") as cached:
            if (cached.metadata() or {}).get("key") == key:
                return load_file(str(cache_file))["logits"]
    teacher.to(device).eval()
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            batch = torch.from_numpy(images.inputs(slice(start, start + batch_size))).to(device)
            chunks.append(teacher(pixel_values=batch).logits.float().cpu())
    logits = torch.cat(chunks)[:, permutation].contiguous()
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        save_file({"logits": logits}, str(cache_file) + ".tmp", metadata={"key": key})
        os.replace(str(cache_file) + ".tmp", cache_file)
    return logits


def distillation_objective(
    config: DistillConfig, label_smoothing: float, *, cached: torch.Tensor | None = None,
    teacher: nn.Module | None = None, permutation: list[int] | None = None,
) -> Objective:
    """The loss for :func:`~vitedge.converters.training.loop.run_training`, from cached or live teacher logits."""
    if (cached is None) == (teacher is None):
        raise ValueError("pass either cached logits or a teacher")

    def targets(batch: Batch) -> torch.Tensor:
        if cached is not None:
            return cached[batch.index].to(batch.inputs.device)
        with torch.no_grad():
            return teacher(pixel_values=batch.inputs).logits.float()[:, permutation]

    def objective(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        if config.mode == "hard":
            return hard_distillation_loss(logits, targets(batch), batch.labels, label_smoothing=label_smoothing)
        return soft_distillation_loss(logits, targets(batch), batch.labels, temperature=config.temperature,
                                      alpha=config.alpha, label_smoothing=label_smoothing)

    return objective


def _load_teacher(teacher: str | SourceModel, allow_pickle: bool) -> SourceModel:
    source = teacher if isinstance(teacher, SourceModel) else load_source(str(teacher), allow_pickle=allow_pickle)
    if source.info.weights == "random-init":
        raise UsageError(f"teacher {source.info.model} has random-init weights: there is nothing to learn from it",
                         hint="fine-tune a teacher first (vitedge finetune MODEL --data DIR --out TEACHER)")
    return source


def distill(
    teacher: str | SourceModel,
    student: str,
    data: str | os.PathLike,
    out: str | os.PathLike,
    options: TrainingOptions | None = None,
    config: DistillConfig | None = None,
    setup: RunSetup | None = None,
    *,
    teacher_cache: str | os.PathLike | None = None,
) -> TrainingRun:
    """Distill ``teacher`` into ``student`` on an ImageFolder; write the student as a Hugging Face folder.

    Args:
        teacher: A fine-tuned classifier (local folder or hub id) whose labels are the data's classes.
        student: ``preset:NAME`` or a ``config.json`` (from scratch), or a smaller checkpoint folder.
        data: ``DIR/<class name>/<image>``.
        out: The folder to write; its manifests will say ``weights: distilled``.
        options: Recipe, freezing, validation split, QAT.
        config: The distillation objective.
        setup: Validation folder, a from-scratch student's sizes (default: the teacher's input
            size), checkpoints and resuming, overwriting, progress callbacks.
        teacher_cache: Where to cache the teacher's logits (default: in the checkpoint folder).

    Raises:
        UsageError: Bad data, a teacher whose labels differ from the class folders, a student that
            preprocesses differently from the teacher, caching with augmentation; all before training.
    """
    options = options or TrainingOptions()
    config = config or DistillConfig()
    setup = setup or RunSetup()
    out_path = Path(out)
    check_output(out_path, overwrite=setup.overwrite or setup.resume)
    recipe = options.loop.train
    if config.cache_teacher_logits and (recipe.max_shift or recipe.horizontal_flip):
        raise UsageError("cached teacher logits need fixed inputs, but augmentation (shifts/flips) is on",
                         hint="turn augmentation off, or the cache off (--no-teacher-cache: the teacher runs every step)")
    class_names = read_class_names(data)
    source = _load_teacher(teacher, setup.allow_pickle)
    permutation = label_permutation(source.labels, class_names, source.info.model)
    start = build_starting_model(student, class_names, image_size=setup.image_size or _preset_size(student, source),
                                 patch_size=setup.patch_size, seed=recipe.seed, allow_pickle=setup.allow_pickle)
    _match_teacher(start, source, student)
    setup.say(f"reading {data} ({len(class_names)} classes) at {start.image_size}x{start.image_size}")
    training_data = load_training_data(data, source.preprocess, val_dir=setup.val_data, val_fraction=options.val_fraction,
                                       seed=recipe.seed, skip_unreadable=options.skip_unreadable)
    device = resolve_device(options.loop.device, int(os.environ.get("LOCAL_RANK", "0")))
    teacher_accuracy = _teacher_accuracy(source.model, training_data.val, permutation, device)
    setup.say(f"teacher {source.info.model}: validation accuracy {teacher_accuracy:.1%}")
    cache = Path(teacher_cache) if teacher_cache else setup.checkpoints(out_path) / TEACHER_CACHE
    objective = _teacher_objective(source, training_data.train, permutation, config, recipe.label_smoothing,
                                   device=device, cache=cache, say=setup.say)
    details = {"task": "distill", "distillation": asdict(config),
               "teacher": {"model": source.info.model, "weights": source.info.weights,
                           "weights_sha256": source.info.weights_sha256, "val_accuracy": teacher_accuracy}}
    return train_and_save(start, training_data, objective, options, out=out_path, weights="distilled", details=details,
                          setup=setup)


def _match_teacher(start: StartingModel, source: SourceModel, student: str) -> None:
    """A from-scratch student takes the teacher's preprocessing; any student must take the teacher's inputs."""
    if start.origin.get("init") == "random":
        start.preprocess, start.processor_config = source.preprocess, source.processor_config
    elif start.preprocess != source.preprocess:
        raise UsageError(
            f"student {student} preprocesses images differently from teacher {source.info.model} "
            f"({start.preprocess.to_dict()} vs {source.preprocess.to_dict()}); distillation feeds both the same tensors",
            hint="use a student with the teacher's input size and normalization, or a preset (it takes the teacher's)",
        )
    if start.image_size != source.image_size:
        raise UsageError(f"student input size {start.image_size} differs from the teacher's {source.image_size}",
                         hint="drop --image-size, or give both the same size")


def _teacher_objective(
    source: SourceModel, train: LabeledImages, permutation: list[int], config: DistillConfig, label_smoothing: float,
    *, device: torch.device, cache: Path, say: Callable[[str], None],
) -> Objective:
    """The distillation loss: from the teacher's logits computed once (and cached by rank 0), or live."""
    if not config.cache_teacher_logits:
        source.model.to(device).eval()
        return distillation_objective(config, label_smoothing, teacher=source.model, permutation=permutation)
    is_main = int(os.environ.get("RANK", "0")) == 0
    say(f"teacher logits for {len(train)} training images (cached in {cache})")
    logits = teacher_logits(source.model, train, permutation, device=device, cache_file=cache if is_main else None,
                            teacher_sha256=source.info.weights_sha256 or "")
    source.model.to("cpu")
    return distillation_objective(config, label_smoothing, cached=logits)


def _preset_size(student: str, source: SourceModel) -> int | None:
    """A from-scratch student takes the teacher's input size unless told otherwise."""
    path = Path(student).expanduser()
    from_scratch = student.startswith("preset:") or (path.is_file() and path.suffix == ".json") or \
        (not path.exists() and "/" not in student)
    return source.image_size if from_scratch else None


def _teacher_accuracy(teacher: nn.Module, images: LabeledImages, permutation: list[int], device: torch.device) -> float:
    class Reordered(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.teacher = teacher

        def forward(self, pixel_values: torch.Tensor):
            output = self.teacher(pixel_values=pixel_values)
            output.logits = output.logits[:, permutation]
            return output

    accuracy = evaluate(Reordered().to(device), images, device)
    teacher.to("cpu")
    return accuracy
