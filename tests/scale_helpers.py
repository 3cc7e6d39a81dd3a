"""Test doubles for the bulk-job tests: image folders with bad files among good ones, a worker that dies."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from tests.conftest import DATA
from vitedge.scale.stages import ModelStage

BAD_NAMES = ("bad_empty.png", "bad_text.jpg", "sub/bad_truncated.jpg")


def write_images(folder: Path, count: int = 20, *, seed: int = 0) -> Path:
    """``count`` good images of several sizes and modes (in a subfolder too) plus three unreadable files."""
    rng = np.random.default_rng(seed)
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    photo = Image.open(DATA / "astronaut.jpg").convert("RGB")
    for i in range(count):
        height, width = int(rng.integers(20, 90)), int(rng.integers(20, 90))
        image = photo.resize((width, height)) if i % 4 == 0 else Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))
        image = image.convert("L") if i % 5 == 1 else image
        image.save(folder / ("sub" if i % 3 else ".") / f"img{i:03d}.{'jpg' if i % 2 else 'png'}")
    (folder / BAD_NAMES[0]).write_bytes(b"")
    (folder / BAD_NAMES[1]).write_text("not an image at all")
    (folder / BAD_NAMES[2]).write_bytes((folder / "sub" / "img001.jpg").read_bytes()[:200])  # a cut-off JPEG
    return folder


def crashing_stage(marker: Path) -> type:
    """A ModelStage whose worker process dies (os._exit) on its first batch while ``marker`` exists, once.

    Defined in a function, so Ray pickles the class by value: the workers need not import the tests.
    """

    class CrashingStage(ModelStage):
        def __call__(self, batch):
            if marker.exists():
                marker.unlink(missing_ok=True)
                os._exit(1)  # a killed worker: no exception, no cleanup
            return super().__call__(batch)

    return CrashingStage


def failing_stage(message: str) -> type:
    """A ModelStage that cannot start on a worker (as with a backend missing there)."""
    from vitedge.errors import BackendUnavailableError

    class FailingStage(ModelStage):
        def __init__(self, *args) -> None:
            raise BackendUnavailableError(message, hint="pip install 'vitedge[onnx]' on every node")

    return FailingStage
