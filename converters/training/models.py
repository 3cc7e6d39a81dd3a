"""The model a training run starts from, with a head for the dataset's classes and frozen layers.

A start is ``preset:NAME`` (that architecture, random init; its image and patch size may be
changed, as nothing pretrained depends on them), a ``config.json`` file (from scratch), a local
Hugging Face folder or a hub id (loaded as ``vitedge convert`` loads it; a pretrained ViT or DeiT may
change its input size: :mod:`.resize`). A random-init start takes
its family's preprocessing (:mod:`vitedge.converters.family_preprocess`: MobileViT's BGR without
normalization, DINOv2's shortest edge and crop, …), which the trained folder's processor config keeps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vitedge.converters.family_preprocess import family_spec, processor_config
from vitedge.converters.loading import load_source
from vitedge.converters.presets import PRESET_PREFIX, PRESETS, get_preset
from vitedge.errors import ModelLoadError, UsageError
from vitedge.runtime.preprocess_spec import PreprocessSpec


@dataclass
class StartingModel:
    """A model ready to train: labels set to the dataset's classes."""

    model: nn.Module
    preprocess: PreprocessSpec
    processor_config: dict[str, Any]
    origin: dict[str, Any] = field(default_factory=dict)

    @property
    def image_size(self) -> int:
        size = self.model.config.image_size
        return size if isinstance(size, int) else size[0]

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) of the training inputs: the preprocessing's output, else the config's size."""
        return self.preprocess.output_size or (self.image_size, self.image_size)


def _label_config(class_names: tuple[str, ...]) -> dict[str, Any]:
    return {"num_labels": len(class_names), "id2label": dict(enumerate(class_names)),
            "label2id": {name: index for index, name in enumerate(class_names)}}


def _from_config(config: Any, description: str, seed: int, spec: PreprocessSpec | None = None) -> StartingModel:
    """A random-init model; its preprocessing is ``spec``, or its family's at the config's image size."""
    from transformers import AutoModelForImageClassification

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForImageClassification.from_config(config)
    size = config.image_size if isinstance(config.image_size, int) else config.image_size[0]
    spec = spec or family_spec(config.model_type, size)
    return StartingModel(model, spec, processor_config(spec, config.model_type),
                         {"model": description, "init": "random", "seed": seed})


def build_starting_model(
    spec: str,
    class_names: tuple[str, ...],
    *,
    image_size: int | None = None,
    patch_size: int | None = None,
    seed: int = 0,
    allow_pickle: bool = False,
) -> StartingModel:
    """Load or build ``spec`` and give it a classifier head for ``class_names``.

    Args:
        spec: ``preset:NAME`` (or a bare preset name), a ``config.json`` file, a local Hugging Face
            folder, or a hub id.
        class_names: The dataset's classes, in label order.
        image_size: Input size for a preset or config file; for a pretrained ViT or DeiT, the size to
            fine-tune it at (its position embeddings resampled: :mod:`.resize`).
        patch_size: Patch size for a preset or config file (random init only).
        seed: Seeds random initialization (new heads included).
        allow_pickle: Accept a pickle checkpoint (only for sources you trust).

    Raises:
        UsageError: ``patch_size`` given for pretrained weights, ``image_size`` for a pretrained family
            other than ViT/DeiT, or sizes that do not fit.
        ModelLoadError: The model cannot be loaded.
    """
    from transformers import AutoConfig

    overrides = {name: value for name, value in (("image_size", image_size), ("patch_size", patch_size)) if value}
    path = Path(spec).expanduser()
    if spec.startswith(PRESET_PREFIX) or (spec in PRESETS and not path.exists()):
        preset = get_preset(spec)
        config = preset.build_config(**overrides, **_label_config(class_names))
        _check_sizes(config, spec)
        # the preset's own preprocessing (DINOv2's is not at its config's size), unless resized
        return _from_config(config, PRESET_PREFIX + preset.name, seed, None if image_size else preset.preprocess())
    if path.is_file() and path.suffix == ".json":
        try:
            config = AutoConfig.from_pretrained(path)
        except Exception as error:
            raise ModelLoadError(f"{path}: not a Hugging Face model config ({error})") from error
        for name, value in {**overrides, **_label_config(class_names)}.items():
            setattr(config, name, value)
        _check_sizes(config, str(path))
        return _from_config(config, str(path), seed)
    if patch_size:
        raise UsageError(f"{spec}: --patch-size applies to presets and config files (random init) only",
                         hint="pretrained patch embeddings keep their patch size; --image-size can change")
    source = load_source(str(spec), allow_pickle=allow_pickle)
    model = source.model
    head = fit_head(model, tuple(source.labels[i] for i in sorted(source.labels)), class_names, seed=seed)
    origin = {"model": source.info.model, "weights": source.info.weights, "revision": source.info.revision,
              "weights_sha256": source.info.weights_sha256, "head": head}
    if image_size and image_size != source.image_size:
        from vitedge.converters.training.resize import resize_input

        origin["image_size"] = {"from": source.image_size, "to": image_size, "positions": "resampled (bicubic)"}
        spec_at_size = resize_input(model, source.preprocess, image_size)
        return StartingModel(model, spec_at_size, processor_config(spec_at_size, model.config.model_type), origin)
    return StartingModel(model, source.preprocess, source.processor_config, origin)


def _check_sizes(config: Any, where: str) -> None:
    if config.image_size % config.patch_size:
        raise UsageError(f"{where}: image size {config.image_size} is not a multiple of patch size {config.patch_size}")


def fit_head(model: nn.Module, labels: tuple[str, ...], class_names: tuple[str, ...], *, seed: int = 0) -> str:
    """The model's head for ``class_names``: ``kept`` (same labels, same order), ``reordered`` (the same labels in
    another order: the rows follow their labels, as a folder's sorted classes rarely match a model's order) or
    ``new`` (:func:`replace_head`)."""
    if labels == class_names:
        return "kept"
    head = getattr(model, "classifier", None)
    if sorted(labels) != sorted(class_names) or len(set(labels)) != len(labels) or not isinstance(head, nn.Linear):
        replace_head(model, class_names, seed=seed)
        return "new"
    order = torch.tensor([labels.index(name) for name in class_names])
    with torch.no_grad():
        head.weight.copy_(head.weight[order])
        if head.bias is not None:
            head.bias.copy_(head.bias[order])
    for name, value in _label_config(class_names).items():
        setattr(model.config, name, value)
    return "reordered"


def replace_head(model: nn.Module, class_names: tuple[str, ...], *, seed: int = 0) -> None:
    """A freshly initialized linear classifier for ``class_names`` (labels in the config too)."""
    head = getattr(model, "classifier", None)
    if not isinstance(head, (nn.Linear, nn.Identity)):
        raise UsageError(f"{type(model).__name__}: no linear 'classifier' head to replace")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        new_head = nn.Linear(_head_inputs(model, head), len(class_names))
        nn.init.trunc_normal_(new_head.weight, std=0.02)
        nn.init.zeros_(new_head.bias)
    model.classifier = new_head
    for name, value in _label_config(class_names).items():
        setattr(model.config, name, value)


def _head_inputs(model: nn.Module, head: nn.Module) -> int:
    if isinstance(head, nn.Linear):
        return head.in_features
    # DINOv2-style heads read the [CLS] token and the mean patch token side by side.
    return model.config.hidden_size * (2 if model.config.model_type == "dinov2" else 1)


def encoder_layers(model: nn.Module) -> nn.ModuleList:
    base = getattr(model, "base_model", model)
    encoder = getattr(base, "encoder", None)
    # transformers 5 keeps ViT's blocks in ``vit.layers``; 4.x and other families in ``encoder.layer``.
    for layers in (getattr(base, "layers", None), getattr(encoder, "layer", None), getattr(encoder, "layers", None)):
        if isinstance(layers, nn.ModuleList):
            return layers
    raise UsageError(f"{type(model).__name__}: cannot find its encoder layers")


def freeze(model: nn.Module, *, freeze_layers: int = 0, head_only: bool = False) -> dict[str, int]:
    """Freeze the embeddings and the first ``freeze_layers`` encoder layers, or all but the head.

    Returns:
        Trainable and frozen parameter counts.
    """
    layers = encoder_layers(model)
    if freeze_layers > len(layers):
        raise UsageError(f"cannot freeze {freeze_layers} layers: the model has {len(layers)}",
                         hint=f"pass --freeze-layers 0 to {len(layers)}, or --head-only")
    if head_only:
        for name, parameter in model.named_parameters():
            parameter.requires_grad = name.startswith("classifier.")
    elif freeze_layers:
        base = getattr(model, "base_model", model)
        for module in (base.embeddings, *layers[:freeze_layers]):
            for parameter in module.parameters():
                parameter.requires_grad = False
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    return {"trainable_parameters": trainable, "frozen_parameters": frozen}
