"""Classify camera frames: a Raspberry Pi camera through picamera2, or any source of RGB frames. Torch free.

picamera2 comes with Raspberry Pi OS as a Debian package (``python3-picamera2``), built against the
system's libcamera, not from PyPI; a virtual environment sees it only when it was created with
``--system-site-packages``. :func:`open_picamera2` says so in one line when it is missing.

Frames are asked for as ``XBGR8888``, which picamera2 hands over as an (H, W, 4) uint8 array in
R, G, B, X order; the fourth channel is dropped. (``RGB888`` would give B, G, R.)
"""

from __future__ import annotations

import contextlib
import importlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from vitedge.errors import UsageError, VitedgeError

PICAMERA2_MISSING = (
    "picamera2 is not available in this Python: on Raspberry Pi OS run `sudo apt install python3-picamera2` "
    "and create your virtual environment with `python3 -m venv --system-site-packages` (pip's picamera2 "
    "cannot find the system's libcamera)"
)
DEFAULT_SIZE = (640, 480)


class CameraUnavailableError(VitedgeError):
    """No camera library, or no camera."""


@dataclass(frozen=True)
class FrameResult:
    """One classified frame: its number, the classification, and the model's time on it (ms)."""

    frame: int
    classification: Any  # vitedge.runtime.Classification
    latency_ms: float

    def to_dict(self) -> dict[str, Any]:
        """The predict ``--json`` object of the frame, plus ``frame`` and ``latency_ms``."""
        return {**self.classification.to_dict(), "frame": self.frame, "latency_ms": round(self.latency_ms, 2)}


def parse_size(text: str) -> tuple[int, int]:
    """``"640x480"`` -> (640, 480)."""
    width, sep, height = text.lower().partition("x")
    if not (sep and width.isdigit() and height.isdigit() and int(width) > 0 and int(height) > 0):
        raise UsageError(f"camera size must be WIDTHxHEIGHT, e.g. 640x480; got {text!r}")
    return int(width), int(height)


def open_picamera2(size: tuple[int, int] = DEFAULT_SIZE, *, camera: int = 0) -> Any:
    """Start a Raspberry Pi camera streaming ``size`` frames in XBGR8888 (R, G, B, X bytes).

    Returns:
        The started ``Picamera2``; call ``capture_array()`` for a frame, ``close()`` at the end.

    Raises:
        CameraUnavailableError: picamera2 is not importable here, or no camera answers.
    """
    try:
        picamera2 = importlib.import_module("picamera2")
    except ImportError:
        raise CameraUnavailableError(PICAMERA2_MISSING) from None
    try:
        picam = picamera2.Picamera2(camera)
    except Exception as error:  # picamera2 raises IndexError/RuntimeError when libcamera finds no camera
        reason = " ".join(str(error).split()) or type(error).__name__
        raise CameraUnavailableError(
            f"no camera {camera} ({reason})",
            hint="check the ribbon cable and that `rpicam-hello --list-cameras` lists it",
        ) from error
    try:
        picam.configure(picam.create_preview_configuration(main={"size": tuple(size), "format": "XBGR8888"}))
        picam.start()
    except Exception:
        with contextlib.suppress(Exception):
            picam.close()
        raise
    return picam


def picamera2_frames(picam: Any) -> Iterator[np.ndarray]:
    """Endless (H, W, 3) uint8 RGB frames from a started Picamera2."""
    while True:
        frame = np.asarray(picam.capture_array())
        yield frame[..., :3] if frame.ndim == 3 and frame.shape[2] == 4 else frame


def classify_frames(
    classifier: Any,
    frames: Iterable[np.ndarray],
    *,
    top_k: int = 5,
    limit: int | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> Iterator[FrameResult]:
    """Classify frames one by one, timing each (preprocessing included, capture not).

    Args:
        classifier: An open :class:`~vitedge.runtime.Classifier`.
        frames: RGB frames, (H, W, 3) uint8 arrays (any size: the artifact's preprocessing resizes).
        top_k: Classes per frame.
        limit: Stop after this many frames (None: when ``frames`` ends).
        clock: A clock in seconds (tests pass a fake one).
    """
    for number, frame in enumerate(frames, start=1):
        started = clock()
        classification = classifier.predict(frame, top_k=top_k)
        yield FrameResult(number, classification, (clock() - started) * 1000)
        if limit is not None and number >= limit:
            return


def frame_line(result: FrameResult) -> str:
    """``frame 12  48.3 ms  cherry 87.1%  banana 12.7%``: one line per frame, for a terminal."""
    predictions = "  ".join(f"{p.label} {p.score:.1%}" for p in result.classification.predictions)
    return f"frame {result.frame}  {result.latency_ms:.1f} ms  {predictions}"
