"""The training loop on in-memory data: config checks, learning on easy shapes, determinism, and what it leaves behind."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from transformers import ViTConfig, ViTForImageClassification

from vitedge.converters.training.images import PreprocessedImages
from vitedge.converters.training.loop import (
    EpochRecord,
    LoopConfig,
    LoopResult,
    cross_entropy_objective,
    evaluate,
    run_training,
)
from vitedge.converters.training.quickstart_recipe import (
    QUICKSTART_COUNTS,
    QUICKSTART_SHAPES,
    SplitCounts,
    build_quickstart_model,
    quickstart_preprocess_spec,
    quickstart_vit_config,
)
from vitedge.converters.training.recipe import TrainConfig, augment, warmup_cosine
from vitedge.data.shapes import ShapesConfig, shapes_arrays, shapes_class_names
from vitedge.errors import UsageError
from vitedge.runtime.preprocess_spec import PreprocessSpec

EASY = ShapesConfig(num_classes=3, difficulty=0.0, min_size=32, max_size=48)
FAST = TrainConfig(epochs=3, batch_size=8, learning_rate=1e-3, warmup_fraction=0.0, label_smoothing=0.0, num_threads=1)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def easy_data():
    spec = PreprocessSpec(size=(32, 32))
    return (*shapes_arrays("train", 16, EASY, spec), *shapes_arrays("val", 10, EASY, spec))


def tiny_vit(seed: int = 0) -> ViTForImageClassification:
    config = ViTConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        image_size=32, patch_size=8, num_labels=EASY.num_classes,
    )
    torch.manual_seed(seed)
    return ViTForImageClassification(config)


def train(model, train_inputs, train_labels, val_inputs, val_labels, recipe: TrainConfig, *, keep: str = "last",
          on_epoch=None) -> LoopResult:
    """The loop as the quickstart runs it: on CPU, fp32, no progress bar, cross-entropy."""
    loop = LoopConfig(train=recipe, device="cpu", amp="fp32", progress=False, keep=keep)
    return run_training(model, PreprocessedImages(train_inputs, train_labels), PreprocessedImages(val_inputs, val_labels),
                        loop, cross_entropy_objective(recipe.label_smoothing), on_epoch=on_epoch)


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"learning_rate": 0}, "learning_rate"),
        ({"learning_rate": float("inf")}, "learning_rate"),
        ({"weight_decay": -1}, "weight_decay"),
        ({"warmup_fraction": 1.0}, "warmup_fraction"),
        ({"label_smoothing": -0.1}, "label_smoothing"),
        ({"seed": -1}, "seed"),
        ({"num_threads": 0}, "num_threads"),
        ({"max_seconds": 0}, "max_seconds"),
        ({"max_shift": -2}, "max_shift"),
        ({"horizontal_flip": "yes"}, "horizontal_flip"),
    ],
)
def test_config_rejects_bad_values(changes, named):
    with pytest.raises(UsageError, match=named):
        TrainConfig(**changes)


def curves(result: LoopResult) -> tuple[list[float], list[float]]:
    """Training loss and validation accuracy per epoch (the history without its timings)."""
    return [record.train_loss for record in result.history], [record.val_accuracy for record in result.history]


def test_learns_easy_shapes_and_leaves_torch_as_it_was(easy_data):
    model = tiny_vit()
    seen: list[EpochRecord] = []
    torch.set_num_threads(2)
    rng_state = torch.random.get_rng_state()
    result = train(model, *easy_data, FAST, on_epoch=seen.append)
    assert len(result.history) == 3 and result.stopped == "completed"
    losses = [record.train_loss for record in result.history]
    assert losses[-1] < losses[0]
    final = result.history[-1].val_accuracy
    assert final > 0.5  # chance is 1/3
    assert final == evaluate(model, PreprocessedImages(*easy_data[2:]), CPU)  # keep="last": the last epoch's weights
    assert [record.epoch for record in seen] == [1, 2, 3]
    assert [record.train_loss for record in seen] == losses
    assert not model.training
    assert torch.get_num_threads() == 2
    assert torch.equal(torch.random.get_rng_state(), rng_state)


def test_keeps_the_best_or_the_last_epoch(easy_data):
    recipe = dataclasses.replace(FAST, epochs=4)
    last, best = tiny_vit(), tiny_vit()
    kept_last = train(last, *easy_data, recipe, keep="last")
    kept_best = train(best, *easy_data, recipe, keep="best")
    assert curves(kept_last) == curves(kept_best)  # the same run; only the weights kept at the end differ
    val = PreprocessedImages(*easy_data[2:])
    assert evaluate(last, val, CPU) == kept_last.history[-1].val_accuracy
    assert evaluate(best, val, CPU) == kept_best.best_val_accuracy == max(r.val_accuracy for r in kept_best.history)
    assert kept_best.history[kept_best.best_epoch - 1].val_accuracy == kept_best.best_val_accuracy
    assert kept_best.best_epoch < len(kept_best.history)  # here epoch 4 only ties epoch 3: the first best is kept
    assert not all(torch.equal(p, q) for p, q in zip(last.parameters(), best.parameters()))
    with pytest.raises(UsageError, match="keep"):
        LoopConfig(keep="first")


def test_same_seed_same_run(easy_data):
    config = dataclasses.replace(FAST, epochs=2, max_shift=2, horizontal_flip=True)
    first, second = tiny_vit(), tiny_vit()
    a = train(first, *easy_data, config)
    b = train(second, *easy_data, config)
    assert curves(a) == curves(b)
    assert all(torch.equal(p, q) for p, q in zip(first.parameters(), second.parameters()))
    c = train(tiny_vit(), *easy_data, dataclasses.replace(config, seed=1))
    assert curves(c)[0] != curves(a)[0]


def test_time_budget_stops_cleanly(easy_data):
    model = tiny_vit()
    result = train(model, *easy_data, dataclasses.replace(FAST, epochs=50, max_seconds=1e-6))
    assert result.stopped == "time-budget" and len(result.history) == 1
    assert 0.0 <= result.history[-1].val_accuracy <= 1.0
    assert not model.training


def test_bad_data_is_a_usage_error(easy_data):
    train_inputs, train_labels, val_inputs, val_labels = easy_data
    model = tiny_vit()
    with pytest.raises(UsageError, match="range"):
        train(model, train_inputs, train_labels + 3, val_inputs, val_labels, FAST)
    with pytest.raises(UsageError, match="labels"):
        train(model, train_inputs, train_labels[:-1], val_inputs, val_labels, FAST)
    with pytest.raises(UsageError, match="float32"):
        train(model, train_inputs.astype(np.float64), train_labels, val_inputs, val_labels, FAST)
    with pytest.raises(UsageError, match="empty"):
        train(model, train_inputs, train_labels, val_inputs[:0], val_labels[:0], FAST)


def test_evaluate_keeps_the_mode(easy_data):
    model = tiny_vit().train()
    val_inputs, val_labels = easy_data[2:]
    with torch.no_grad():
        predicted = model.eval()(pixel_values=torch.from_numpy(val_inputs)).logits.argmax(-1).numpy()
    model.train()
    accuracy = evaluate(model, PreprocessedImages(val_inputs, val_labels), CPU, batch_size=7)
    assert accuracy == pytest.approx((predicted == val_labels).mean())
    assert model.training


def test_schedule_warms_up_then_decays_to_zero_and_follows_a_binding_clock():
    factor = warmup_cosine(total_steps=100, warmup_fraction=0.1)
    factors = [factor(step) for step in range(101)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert factors[10] == pytest.approx(1.0) and factors[100] == pytest.approx(0.0)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))
    spent = [0.0]
    timed = warmup_cosine(total_steps=100, warmup_fraction=0.1, budget_spent=lambda: spent[0])
    assert timed(50) == pytest.approx(factor(50))  # the clock is behind the steps: no change
    spent[0] = 1.0
    assert timed(50) == pytest.approx(0.0) and timed(5) == pytest.approx(factor(5))  # warmup stays step-based
    spent[0] = 0.4  # 40% of the budget after 45% of the steps: on pace to finish in time, so the steps rule
    assert timed(45) == pytest.approx(factor(45))
    spent[0] = 0.6  # 60% of the budget after 45% of the steps: it would overrun, so the clock leads
    assert timed(45) == pytest.approx(factor(60)) and timed(45) < factor(45)


def test_augmentation_keeps_shapes_and_is_off_by_default():
    batch = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    generator = torch.Generator().manual_seed(0)
    assert torch.equal(augment(batch, TrainConfig(), generator), batch)
    shifted = augment(batch, TrainConfig(max_shift=2, horizontal_flip=True), generator)
    assert shifted.shape == batch.shape
    assert set(shifted.unique().tolist()) <= set(batch.unique().tolist())  # shifts repeat edges, add nothing


def test_quickstart_recipe_pieces_fit_together():
    names = shapes_class_names(QUICKSTART_SHAPES)
    config = quickstart_vit_config(names)
    spec = quickstart_preprocess_spec()
    assert spec.output_size == (config.image_size, config.image_size)
    assert spec.mean == spec.std == (0.5, 0.5, 0.5) and spec.resample == "bilinear"
    assert config.id2label == dict(enumerate(names)) and config.num_labels == len(names)
    first, second = build_quickstart_model(names), build_quickstart_model(names)
    assert all(torch.equal(p, q) for p, q in zip(first.parameters(), second.parameters()))
    assert QUICKSTART_COUNTS.train > QUICKSTART_COUNTS.val > 0
    with pytest.raises(UsageError, match="distinct"):
        quickstart_vit_config(["circle", "circle"])
    with pytest.raises(UsageError, match="train"):
        SplitCounts(train=0, val=1, test=1, calibration=1)
