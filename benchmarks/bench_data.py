"""The images a benchmark measures accuracy on (and takes its timing inputs from).

``--data builtin`` writes the built-in shapes dataset's test split (labelled); ``--data DIR`` takes an
ImageFolder (``DIR/<class>/<image>``: labelled) or any folder of images (no labels: agreement with
the reference only). Each artifact preprocesses the images itself, as its manifest says.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from vitedge.benchmarks.results import DataInfo
from vitedge.data.imagefolder import read_image_folder
from vitedge.data.shapes import (
    ShapesConfig,
    shapes_class_names,
    write_image_folder,
)
from vitedge.errors import UsageError

BUILTIN = "builtin"
DEFAULT_SAMPLES = 50


@dataclass(frozen=True)
class BenchData:
    """Image paths, with their class index when the data is labelled.

    Attributes:
        paths: Image files, in the order outputs are computed.
        labels: Class index of each image (into ``class_names``), or None when unlabelled.
        class_names: The classes, by folder name.
        description: Where the images came from, for the report.
    """

    paths: tuple[str, ...]
    labels: tuple[int, ...] | None
    class_names: tuple[str, ...]
    description: str

    @property
    def labelled(self) -> bool:
        return self.labels is not None

    def info(self) -> DataInfo:
        return DataInfo(self.description, len(self.paths), self.labelled, self.class_names)

    def write_list(self, path: Path) -> Path:
        """The image paths, one per line (what the worker reads)."""
        path.write_text("\n".join(self.paths) + ("\n" if self.paths else ""), encoding="utf-8")
        return path


def _balanced(samples: tuple[tuple[str, int], ...], limit: int) -> list[tuple[str, int]]:
    """At most ``limit`` samples, taken round-robin across classes (each class keeps its order)."""
    by_class: dict[int, list[tuple[str, int]]] = {}
    for sample in samples:
        by_class.setdefault(sample[1], []).append(sample)
    chosen: list[tuple[str, int]] = []
    for index in range(max((len(v) for v in by_class.values()), default=0)):
        chosen += [items[index] for _, items in sorted(by_class.items()) if index < len(items)]
    return chosen[:limit]


def _has_class_folders(folder: Path) -> bool:
    from vitedge.runtime.images import IMAGE_EXTENSIONS

    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    loose_images = [p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    return not loose_images and any(p.is_dir() for p in entries)


def folder_data(folder: str | os.PathLike, *, samples: int | None = None) -> BenchData:
    """An ImageFolder (labelled) or a plain folder of images (unlabelled), at most ``samples`` images.

    Raises:
        UsageError: The folder is missing or holds no images.
    """
    from vitedge.runtime.images import expand_image_paths

    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"--data {folder}: no such folder", hint="pass an image folder, or --data builtin")
    limit = samples if samples is not None else math.inf
    if _has_class_folders(folder):
        dataset = read_image_folder(folder)
        chosen = _balanced(dataset.samples, limit) if samples is not None else list(dataset.samples)
        return BenchData(
            paths=tuple(path for path, _ in chosen),
            labels=tuple(label for _, label in chosen),
            class_names=dataset.class_names,
            description=f"{len(chosen)} images in {len(dataset.class_names)} class folders of {folder}",
        )
    paths = expand_image_paths([str(folder)])
    if not paths:
        raise UsageError(f"--data {folder}: no images found", hint="pass a folder of images (one subfolder per class for accuracy)")
    paths = paths[: samples or len(paths)]
    return BenchData(tuple(paths), None, (), f"{len(paths)} unlabelled images from {folder}")


def builtin_data(workdir: str | os.PathLike, *, samples: int = DEFAULT_SAMPLES, config: ShapesConfig | None = None) -> BenchData:
    """The built-in shapes dataset's test split, written as an ImageFolder under ``workdir``."""
    config = config or ShapesConfig()
    per_class = max(1, math.ceil(samples / config.num_classes))
    root = Path(workdir) / "builtin-shapes"
    folder = root / "test"
    if not folder.is_dir():
        write_image_folder(root, "test", per_class, config)
    data = folder_data(folder, samples=samples)
    names = ", ".join(shapes_class_names(config)[:3])
    return BenchData(data.paths, data.labels, data.class_names,
                     f"{len(data.paths)} built-in shapes test images ({config.num_classes} classes: {names}, …; seed {config.seed})")


def resolve_data(spec: str | None, workdir: str | os.PathLike, *, samples: int | None = None) -> BenchData | None:
    """``builtin`` (the default), ``none`` (timing on noise, no accuracy), or a folder."""
    spec = BUILTIN if spec is None else spec
    if spec == "none":
        return None
    if spec == BUILTIN:
        return builtin_data(workdir, samples=samples or DEFAULT_SAMPLES)
    return folder_data(spec, samples=samples)
