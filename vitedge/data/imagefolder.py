"""ImageFolder trees (``root/<class name>/<image>``): indexing, per-class splits, and training data.

Images are read with the runtime's loader and preprocessed with the model's
:class:`~vitedge.runtime.preprocess_spec.PreprocessSpec`, so training sees what the runtime feeds.
They are kept in memory as uint8 pixels (resized and cropped, 4x smaller than float32) and
normalized per batch with the runtime's own value table: :meth:`LabeledImages.inputs` equals
:func:`vitedge.runtime.preprocess.preprocess_batch` bit for bit.

Bad data fails here, before the slow part, with the file and the fix: a missing or empty class
folder, a single class, unreadable images (or ``skip_unreadable``), a validation split that
would leave a class without training images.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vitedge.errors import ImageLoadError, UsageError
from vitedge.runtime.images import IMAGE_EXTENSIONS, load_rgb
from vitedge.runtime.preprocess import _value_table, preprocess
from vitedge.runtime.preprocess_spec import PreprocessSpec

_SHOW_FILES = 5


@dataclass(frozen=True)
class ImageFolder:
    """An image classification folder: ``root/<class name>/<image file>``.

    Attributes:
        root: The folder.
        class_names: Class folder names, sorted; a label is an index into this tuple.
        samples: (image path, label index) pairs, sorted by class then file name.
    """

    root: Path
    class_names: tuple[str, ...]
    samples: tuple[tuple[str, int], ...]



def read_image_folder(root: str | os.PathLike[str]) -> ImageFolder:
    """Index an image classification folder ``root/<class name>/<image file>``.

    Hidden files and folders (a leading dot) and files without an image extension are skipped.

    Args:
        root: The folder holding one subfolder per class.

    Returns:
        The class names (sorted folder names) and the (path, label) samples.

    Raises:
        UsageError: The folder is missing, has no class folders, or a class folder has no images.
    """
    folder = Path(root)
    if not folder.is_dir():
        raise UsageError(f"{folder}: image folder not found", hint="pass a folder with one subfolder per class")
    class_dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise UsageError(f"{folder}: no class folders", hint="put each class's images in a subfolder named after it")
    samples = []
    for label, class_dir in enumerate(class_dirs):
        files = sorted(
            p
            for p in class_dir.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
        )
        if not files:
            raise UsageError(
                f"{class_dir}: class folder has no images",
                hint=f"add images ({', '.join(sorted(IMAGE_EXTENSIONS))}) or remove the folder",
            )
        samples.extend((str(path), label) for path in files)
    return ImageFolder(root=folder, class_names=tuple(p.name for p in class_dirs), samples=tuple(samples))


@dataclass(frozen=True)
class LabeledImages:
    """Preprocessed images kept as uint8 pixels (N, 3, H, W), their labels, and how to normalize them."""

    pixels: np.ndarray
    labels: np.ndarray
    spec: PreprocessSpec

    def __len__(self) -> int:
        return len(self.labels)

    def inputs(self, index: np.ndarray | slice | None = None) -> np.ndarray:
        """Model inputs, float32 NCHW, exactly as the runtime's preprocessing makes them."""
        pixels = self.pixels if index is None else self.pixels[index]
        if self.spec.normalization_in_model:
            return pixels.astype(np.float32)
        table = _value_table(self.spec.rescale_factor, self.spec.mean, self.spec.std)
        out = np.stack([table[pixels[:, channel], channel] for channel in range(3)], axis=1)
        if self.spec.channel_order == "BGR":
            out = out[:, ::-1]
        return np.ascontiguousarray(out)

    def sha256(self) -> str:
        """Identifies the images and labels (a cache key for teacher logits)."""
        digest = hashlib.sha256(self.pixels.tobytes())
        digest.update(self.labels.astype(np.int64).tobytes())
        digest.update(repr(self.spec.to_dict()).encode())
        return digest.hexdigest()


@dataclass(frozen=True)
class TrainingData:
    """A dataset ready to train on: class names, a training split and a validation split."""

    class_names: tuple[str, ...]
    train: LabeledImages
    val: LabeledImages
    source: str
    skipped: tuple[str, ...] = ()

    def describe(self) -> dict:
        """For the training record."""
        return {
            "source": self.source,
            "classes": list(self.class_names),
            "train_images": len(self.train),
            "val_images": len(self.val),
            "skipped_unreadable": list(self.skipped),
        }


def _pixel_spec(spec: PreprocessSpec) -> PreprocessSpec:
    if spec.layout != "NCHW":
        raise UsageError(f"training needs an NCHW preprocessing spec, got {spec.layout}")
    if spec.output_size is None:
        raise UsageError(
            "training needs a fixed input size, but the model's preprocessing keeps the aspect ratio (no crop)",
            hint="add a center crop or an exact resize to the model's preprocessor_config.json",
        )
    return dataclasses.replace(spec, normalization_in_model=True, channel_order="RGB")


def _read_pixels(
    samples: list[tuple[str, int]], spec: PreprocessSpec, skip_unreadable: bool, on_image: Callable[[], None] | None
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    pixel_spec = _pixel_spec(spec)
    pixels, labels, unreadable = [], [], []
    for path, label in samples:
        try:
            image = load_rgb(path)
        except ImageLoadError as error:
            unreadable.append(f"{path} ({error.reason})")
            continue
        pixels.append(preprocess(image, pixel_spec).astype(np.uint8))
        labels.append(label)
        if on_image is not None:
            on_image()
    if unreadable and not skip_unreadable:
        shown = "; ".join(unreadable[:_SHOW_FILES]) + (f"; and {len(unreadable) - _SHOW_FILES} more" if len(unreadable) > _SHOW_FILES else "")
        raise UsageError(
            f"{len(unreadable)} image(s) cannot be read: {shown}",
            hint="fix or delete them, or pass --skip-unreadable to train without them",
        )
    height, width = spec.output_size
    stacked = np.stack(pixels) if pixels else np.zeros((0, 3, height, width), np.uint8)
    return stacked, np.asarray(labels, dtype=np.int64), tuple(unreadable)


def _check_classes(root: Path, class_names: tuple[str, ...]) -> None:
    if len(class_names) < 2:
        raise UsageError(
            f"{root}: only one class folder ({class_names[0]!r}); a classifier needs at least two",
            hint="put each class's images in its own subfolder of --data",
        )


def read_class_names(data_dir: str | Path) -> tuple[str, ...]:
    """The class names of an ImageFolder, checked (no empty class folder, two classes or more)."""
    folder = read_image_folder(data_dir)
    _check_classes(folder.root, folder.class_names)
    return folder.class_names


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, val indices): about ``val_fraction`` of each class in val, at least one
    image of each class in train, and one in val when the class has two or more. Seeded."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        count = min(max(round(len(members) * val_fraction), 1), len(members) - 1) if val_fraction > 0 else 0
        val.extend(members[:count])
        train.extend(members[count:])
    return np.sort(np.asarray(train, dtype=np.int64)), np.sort(np.asarray(val, dtype=np.int64))


def load_training_data(
    data_dir: str | Path,
    spec: PreprocessSpec,
    *,
    val_dir: str | Path | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    skip_unreadable: bool = False,
    on_image: Callable[[], None] | None = None,
) -> TrainingData:
    """Read an ImageFolder, check it, preprocess it and split off validation images.

    Args:
        data_dir: ``root/<class name>/<image>``; class names are the sorted folder names.
        spec: The model's preprocessing.
        val_dir: A separate validation ImageFolder with the same class folders; when None,
            ``val_fraction`` of each class of ``data_dir`` is held out (stratified, seeded).
        val_fraction: Share of each class held out for validation, in (0, 0.5].
        seed: Seeds the split.
        skip_unreadable: Train without unreadable images instead of refusing to start.
        on_image: Called after each image is read (progress).

    Raises:
        UsageError: Missing or empty class folders, a single class, unreadable images, class
            folders that differ between ``data_dir`` and ``val_dir``, or too few images to split.
    """
    if not isinstance(val_fraction, (int, float)) or not 0 < val_fraction <= 0.5 or math.isnan(val_fraction):
        raise UsageError(f"val_fraction must be in (0, 0.5], got {val_fraction!r}")
    folder = read_image_folder(data_dir)
    _check_classes(folder.root, folder.class_names)
    pixels, labels, skipped = _read_pixels(list(folder.samples), spec, skip_unreadable, on_image)
    missing = sorted(set(range(len(folder.class_names))) - set(labels.tolist()))
    if missing:
        names = ", ".join(folder.class_names[i] for i in missing)
        raise UsageError(f"{folder.root}: no readable images in class folder(s) {names}", hint="add readable images")
    if val_dir is not None:
        val_folder = read_image_folder(val_dir)
        if val_folder.class_names != folder.class_names:
            raise UsageError(
                f"{val_folder.root}: class folders {list(val_folder.class_names)} differ from {folder.root}'s "
                f"{list(folder.class_names)}",
                hint="the validation folder needs the same class subfolders as --data",
            )
        val_pixels, val_labels, val_skipped = _read_pixels(list(val_folder.samples), spec, skip_unreadable, on_image)
        train = LabeledImages(pixels, labels, spec)
        val = LabeledImages(val_pixels, val_labels, spec)
        skipped = skipped + val_skipped
    else:
        counts = np.bincount(labels, minlength=len(folder.class_names))
        if counts.sum() < 2 * len(folder.class_names) or counts.min() < 1:
            raise UsageError(
                f"{folder.root}: {int(counts.sum())} images for {len(folder.class_names)} classes are too few to "
                "split off validation images",
                hint="add images (two or more per class) or pass a separate --val folder",
            )
        train_index, val_index = stratified_split(labels, val_fraction, seed)
        train = LabeledImages(pixels[train_index], labels[train_index], spec)
        val = LabeledImages(pixels[val_index], labels[val_index], spec)
    if len(val) == 0:
        raise UsageError(f"{val_dir or folder.root}: no validation images", hint="add images or lower the bar")
    return TrainingData(folder.class_names, train, val, str(folder.root), skipped)
