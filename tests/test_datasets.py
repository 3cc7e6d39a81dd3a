"""The built-in shapes dataset: config checks, determinism, splits, and image folders."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

from vitedge.data.imagefolder import read_image_folder
from vitedge.data.shapes import (
    SHAPE_CLASSES,
    ShapesConfig,
    generate_image,
    shapes_arrays,
    shapes_class_names,
    shapes_samples,
    write_image_folder,
)
from vitedge.errors import UsageError
from vitedge.runtime.preprocess_spec import PreprocessSpec

SMALL = ShapesConfig(num_classes=4, difficulty=0.5, min_size=24, max_size=61, seed=3)


def pixels(samples):
    return [np.asarray(image) for image, _ in samples]


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"num_classes": 1}, "num_classes"),
        ({"num_classes": len(SHAPE_CLASSES) + 1}, "num_classes"),
        ({"num_classes": 3.0}, "num_classes"),
        ({"difficulty": -0.1}, "difficulty"),
        ({"difficulty": 1.5}, "difficulty"),
        ({"difficulty": float("nan")}, "difficulty"),
        ({"difficulty": "hard"}, "difficulty"),
        ({"difficulty": True}, "difficulty"),
        ({"min_size": 8}, "min_size"),
        ({"min_size": 64, "max_size": 32}, "max_size"),
        ({"seed": -1}, "seed"),
    ],
)
def test_config_rejects_bad_values(changes, named):
    with pytest.raises(UsageError, match=named):
        ShapesConfig(**changes)


def test_class_names_are_readable_and_distinct():
    assert shapes_class_names(ShapesConfig(num_classes=3)) == ("circle", "square", "triangle")
    names = shapes_class_names(ShapesConfig())
    assert len(names) == ShapesConfig().num_classes == 10
    assert len(set(names)) == len(names)
    assert all(name.isalpha() and name.islower() for name in SHAPE_CLASSES)


def test_same_config_same_pixels_and_counts():
    first, second = shapes_samples("train", 3, SMALL), shapes_samples("train", 3, SMALL)
    assert [label for _, label in first] == [0, 1, 2, 3] * 3  # interleaved: every prefix is balanced
    assert all(np.array_equal(a, b) for a, b in zip(pixels(first), pixels(second)))


def test_a_larger_split_extends_a_smaller_one():
    small, large = shapes_samples("val", 2, SMALL), shapes_samples("val", 3, SMALL)
    assert all(np.array_equal(a, b) for a, b in zip(pixels(small), pixels(large)))


@pytest.mark.parametrize(
    ("split", "config"),
    [("val", SMALL), ("test", SMALL), ("calibration", SMALL), ("train", dataclasses.replace(SMALL, seed=4))],
)
def test_splits_and_seeds_give_different_images(split, config):
    reference = pixels(shapes_samples("train", 2, SMALL))
    other = pixels(shapes_samples(split, 2, config))
    assert not any(np.array_equal(a, b) for a in reference for b in other)


def test_images_are_rgb_of_varied_sizes_within_range():
    images = [image for image, _ in shapes_samples("train", 6, SMALL)]
    assert all(image.mode == "RGB" for image in images)
    assert all(SMALL.min_size <= side <= SMALL.max_size for image in images for side in image.size)
    assert len({image.size for image in images}) > 5
    assert any(image.width != image.height for image in images)


def test_difficulty_changes_the_images():
    easy = pixels(shapes_samples("train", 1, dataclasses.replace(SMALL, difficulty=0.0)))
    hard = pixels(shapes_samples("train", 1, dataclasses.replace(SMALL, difficulty=1.0)))
    assert not any(a.shape == b.shape and np.array_equal(a, b) for a, b in zip(easy, hard))


def test_every_class_can_be_drawn_at_both_ends_of_difficulty():
    for difficulty in (0.0, 1.0):
        config = ShapesConfig(num_classes=len(SHAPE_CLASSES), difficulty=difficulty, min_size=16, max_size=40)
        for label in range(config.num_classes):
            image = generate_image(label, np.random.default_rng(label), config)
            assert image.mode == "RGB" and np.asarray(image).std() > 0


def test_bad_class_index_split_and_count():
    with pytest.raises(UsageError, match="class_index"):
        generate_image(SMALL.num_classes, np.random.default_rng(0), SMALL)
    with pytest.raises(UsageError, match="unknown split 'training'"):
        shapes_samples("training", 1, SMALL)
    with pytest.raises(UsageError, match="n_per_class"):
        shapes_samples("train", -1, SMALL)
    assert shapes_samples("train", 0, SMALL) == []


def test_arrays_match_the_samples():
    spec = PreprocessSpec(size=(16, 16))
    inputs, labels = shapes_arrays("test", 2, SMALL, spec)
    assert inputs.shape == (8, 3, 16, 16) and inputs.dtype == np.float32
    assert labels.tolist() == [label for _, label in shapes_samples("test", 2, SMALL)]
    assert labels.dtype == np.int64
    with pytest.raises(UsageError, match="at least 1"):
        shapes_arrays("test", 0, SMALL, spec)


def test_image_folder_round_trip(tmp_path):
    folder = write_image_folder(tmp_path / "shapes", "val", 2, SMALL)
    assert folder == tmp_path / "shapes" / "val"
    dataset = read_image_folder(folder)
    assert dataset.class_names == tuple(sorted(shapes_class_names(SMALL)))  # folder order, not label order
    assert len(dataset.samples) == 2 * SMALL.num_classes
    generated = {
        (shapes_class_names(SMALL)[label], index // SMALL.num_classes): image
        for index, (image, label) in enumerate(shapes_samples("val", 2, SMALL))
    }
    for path, label in dataset.samples:
        name = dataset.class_names[label]
        with Image.open(path) as image:
            stored = np.asarray(image.convert("RGB"))
        assert np.array_equal(stored, np.asarray(generated[name, int(path[-8:-4])]))


def test_image_folder_as_jpeg_and_refusing_to_overwrite(tmp_path):
    folder = write_image_folder(tmp_path, "test", 1, SMALL, image_format="jpeg")
    assert sorted(p.suffix for p in folder.rglob("*.*")) == [".jpg"] * SMALL.num_classes
    with pytest.raises(UsageError, match="not empty"):
        write_image_folder(tmp_path, "test", 1, SMALL)
    with pytest.raises(UsageError, match="image_format"):
        write_image_folder(tmp_path, "train", 1, SMALL, image_format="gif")


def test_read_image_folder_skips_hidden_and_non_image_files(tmp_path):
    for name in ("b", "a", ".cache"):
        (tmp_path / name).mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "a" / "x.PNG")
    Image.new("RGB", (4, 4)).save(tmp_path / "b" / "y.jpg")
    Image.new("RGB", (4, 4)).save(tmp_path / "b" / ".hidden.png")
    (tmp_path / "b" / "notes.txt").write_text("not an image")
    dataset = read_image_folder(tmp_path)
    assert dataset.class_names == ("a", "b")
    assert [(path.rsplit("/", 2)[-2:], label) for path, label in dataset.samples] == [
        (["a", "x.PNG"], 0),
        (["b", "y.jpg"], 1),
    ]


def test_read_image_folder_errors_name_the_folder(tmp_path):
    with pytest.raises(UsageError, match="missing.*not found"):
        read_image_folder(tmp_path / "missing")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "stray.png").write_bytes(b"")
    with pytest.raises(UsageError, match="no class folders"):
        read_image_folder(tmp_path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    with pytest.raises(UsageError, match="empty: class folder has no images"):
        read_image_folder(tmp_path)
