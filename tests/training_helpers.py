"""Tiny data and models for the fine-tuning, distillation and QAT tests (no network, seconds each)."""

from __future__ import annotations

from pathlib import Path

from vitedge.data.shapes import ShapesConfig, write_image_folder

EASY = ShapesConfig(num_classes=3, difficulty=0.0, min_size=32, max_size=40)
CLASS_NAMES = ("circle", "square", "triangle")  # sorted folder names of EASY


def write_data(root: Path, per_class: int = 8) -> Path:
    """An ImageFolder of easy shapes: root/train/<class>/NNNN.png."""
    return write_image_folder(root, "train", per_class, EASY)


def write_tiny_config(path: Path, *, hidden: int = 32, layers: int = 2, image_size: int = 32) -> Path:
    """A tiny ViT config.json (a from-scratch start), no dropout so runs are comparable."""
    from transformers import ViTConfig

    ViTConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=2 * hidden,
              image_size=image_size, patch_size=8, hidden_dropout_prob=0.0,
              attention_probs_dropout_prob=0.0).to_json_file(path)
    return path


def fast_options(*, epochs: int = 2, learning_rate: float = 2e-3, **changes):
    """Training options for tests: small batches, one thread, no progress bar."""
    from vitedge.converters.training.loop import LoopConfig
    from vitedge.converters.training.recipe import TrainConfig
    from vitedge.converters.training.run import TrainingOptions

    loop_fields = {key: changes.pop(key) for key in ("accumulation_steps", "amp", "gradient_checkpointing", "patience")
                   if key in changes}
    recipe = TrainConfig(epochs=epochs, batch_size=8, learning_rate=learning_rate, warmup_fraction=0.0,
                         label_smoothing=0.0, seed=0, num_threads=1)
    return TrainingOptions(loop=LoopConfig(train=recipe, progress=False, device="cpu", **loop_fields), **changes)
