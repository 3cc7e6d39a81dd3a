"""The runtime's face: open an artifact, classify images, embed images. Torch free."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vitedge.errors import ImageLoadError, UsageError, VitedgeError
from vitedge.runtime.backends import Backend, open_backend
from vitedge.runtime.images import DEFAULT_MAX_PIXELS, describe, load_rgb
from vitedge.runtime.manifest import RANDOM_INIT_WARNING, Manifest, read_manifest, verify_files
from vitedge.runtime.preprocess import preprocess

ImageInput = str | os.PathLike | Image.Image | np.ndarray | bytes
DEFAULT_BATCH_SIZE = 8  # images per inference: Classifier.open's and the CLI's default


@dataclass(frozen=True)
class Prediction:
    """One class of the top-k: its label, its index in the model's outputs, its softmax score."""

    label: str
    index: int
    score: float


@dataclass(frozen=True)
class Classification:
    """The result for one image: the top-k predictions, or the error that stopped it."""

    image: str
    predictions: tuple[Prediction, ...] = ()
    error: str | None = None
    warning: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def top(self) -> Prediction | None:
        return self.predictions[0] if self.predictions else None

    def to_dict(self) -> dict[str, Any]:
        """The CLI's ``--json`` shape: ``{"image", "predictions": [{"label", "index", "score"}]}`` or ``{"image", "error"}``."""
        if self.error is not None:
            return {"image": self.image, "error": self.error}
        data: dict[str, Any] = {
            "image": self.image,
            "predictions": [{"label": p.label, "index": p.index, "score": p.score} for p in self.predictions],
        }
        if self.warning:
            data["warning"] = self.warning
        return data


@dataclass(frozen=True)
class Embeddings:
    """Embeddings of the images that could be read, in input order, plus the errors of the others.

    ``np.asarray(embeddings)`` gives the (N, D) float32 matrix; ``images[i]`` names row i.
    """

    vectors: np.ndarray
    images: tuple[str, ...]
    errors: tuple[tuple[str, str], ...] = ()

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return self.vectors if dtype is None else self.vectors.astype(dtype)

    def __len__(self) -> int:
        return len(self.images)


@dataclass(frozen=True)
class _Item:
    """One input on its way through: its name, and its tensor or its error."""

    name: str
    tensor: np.ndarray | None = None
    exception: ImageLoadError | None = None

    @property
    def error(self) -> str | None:
        return None if self.exception is None else str(self.exception)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, numerically stable."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted.astype(np.float64))
    return (exp / exp.sum(axis=-1, keepdims=True)).astype(np.float32)


def _is_single(images: Any) -> bool:
    if isinstance(images, (str, os.PathLike, Image.Image, bytes)):
        return True
    return isinstance(images, np.ndarray) and images.ndim in (2, 3)


class Classifier:
    """A converted ViT classifier, ready to classify and embed images.

    Open one with :meth:`open`; it holds one backend session for its lifetime and is safe to call
    from several threads.

    Example:
        >>> clf = Classifier.open("artifacts/vit-b16")
        >>> clf.predict("cat.jpg", top_k=3).top.label
    """

    def __init__(
        self,
        path: Path,
        manifest: Manifest,
        backend: Backend,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        if batch_size < 1:
            raise UsageError(f"batch_size must be at least 1, got {batch_size}")
        self.path = path
        self.manifest = manifest
        self.backend = backend
        self.batch_size = batch_size if backend.max_batch_size is None else min(batch_size, backend.max_batch_size)
        self.max_pixels = max_pixels
        self._lock = None if backend.thread_safe else threading.Lock()
        self._labels = [manifest.labels.get(i, f"LABEL_{i}") for i in range(max(manifest.labels, default=-1) + 1)]

    @classmethod
    def open(
        cls,
        path: str | os.PathLike,
        *,
        num_threads: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        verify: bool = True,
        device: str | None = None,
    ) -> Classifier:
        """Open an artifact folder.

        Args:
            path: The artifact folder (model file(s) + manifest.json).
            num_threads: Threads the backend may use for one inference (None: its default).
            batch_size: How many images go through the model at once.
            max_pixels: Images with more pixels are refused (decompression-bomb guard).
            verify: Check the model files' sha256 against the manifest before loading.
            device: Where to run, for formats that offer a choice (:attr:`vitedge.formats.Format.devices`;
                OpenVINO: CPU, GPU, NPU or AUTO); None: the backend's default.

        Raises:
            ArtifactError: The folder, manifest or model file is missing, malformed or tampered with.
            BackendUnavailableError: The format's runtime library is not installed.
            UsageError: ``device`` is not one the format offers, or not present here.
        """
        folder = Path(path)
        manifest = read_manifest(folder)
        verify_files(folder, manifest, checksums=verify)
        backend = open_backend(folder, manifest, num_threads=num_threads, device=device)
        return cls(folder, manifest, backend, batch_size=batch_size, max_pixels=max_pixels)

    @property
    def labels(self) -> list[str]:
        return list(self._labels)

    @property
    def is_random_init(self) -> bool:
        return self.manifest.is_random_init

    # -- the core: images -> tensors -> outputs, batch by batch ------------------------------

    def _prepare(self, image: ImageInput) -> _Item:
        name = describe(image)
        try:
            return _Item(name, tensor=preprocess(load_rgb(image, max_pixels=self.max_pixels), self.manifest.preprocess))
        except ImageLoadError as error:
            return _Item(name, exception=error)

    def _chunks(self, images: Iterable[ImageInput]) -> Iterator[list[_Item]]:
        chunk: list[_Item] = []
        for image in images:
            chunk.append(self._prepare(image))
            if len(chunk) == self.batch_size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Run a preprocessed batch (N, …) through the model; splits it if the backend needs to."""
        step = self.backend.max_batch_size or len(batch)
        parts = []
        for start in range(0, len(batch), max(step, 1)):
            piece = batch[start : start + step]
            if self._lock is None:
                parts.append(self.backend.run(piece))
            else:
                with self._lock:
                    parts.append(self.backend.run(piece))
        return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}

    def _outputs(self, images: Iterable[ImageInput]) -> Iterator[tuple[_Item, dict[str, np.ndarray] | None]]:
        """Yield each input with its own outputs (one row per key), in input order."""
        for chunk in self._chunks(images):
            outputs: dict[int, dict[str, np.ndarray]] = {}
            by_shape: dict[tuple[int, ...], list[int]] = {}
            for position, item in enumerate(chunk):
                if item.tensor is not None:
                    by_shape.setdefault(item.tensor.shape, []).append(position)
            for positions in by_shape.values():
                result = self.run(np.stack([chunk[p].tensor for p in positions]))
                for row, position in enumerate(positions):
                    outputs[position] = {key: value[row] for key, value in result.items()}
            for position, item in enumerate(chunk):
                yield item, outputs.get(position)

    # -- public API ---------------------------------------------------------------------------

    def predict(self, images: ImageInput | Iterable[ImageInput], top_k: int = 5):
        """Classify one image or many.

        Args:
            images: A path, PIL image, numpy array (HxW or HxWxC) or encoded bytes; or a sequence
                (or a 4-D array) of them. Any size and mode.
            top_k: How many classes to return per image, best first.

        Returns:
            For one image, its :class:`Classification` (raises ImageLoadError when unreadable).
            For several, a list of :class:`Classification` in input order; an unreadable image
            gets its ``error`` set and the others are classified all the same.
        """
        if top_k < 1:
            raise UsageError(f"top_k must be at least 1, got {top_k}")
        single = _is_single(images)
        results = []
        for item, outputs in self._outputs([images] if single else images):
            if single and item.exception is not None:
                raise item.exception
            results.append(self._classify(item, outputs, top_k))
        return results[0] if single else results

    def _classify(self, item: _Item, outputs: dict[str, np.ndarray] | None, top_k: int) -> Classification:
        if outputs is None:
            return Classification(image=item.name, error=item.error)
        scores = softmax(outputs["logits"][None])[0]
        best = np.argsort(-scores, kind="stable")[:top_k]
        predictions = tuple(
            Prediction(label=self._label(int(i)), index=int(i), score=float(scores[i])) for i in best
        )
        warning = RANDOM_INIT_WARNING if self.is_random_init else None
        return Classification(image=item.name, predictions=predictions, warning=warning)

    def _label(self, index: int) -> str:
        return self._labels[index] if index < len(self._labels) else f"LABEL_{index}"

    def embed(self, images: ImageInput | Iterable[ImageInput], *, normalize: bool = True):
        """Embed one image or many: the final-LayerNorm [CLS] hidden state.

        Args:
            images: As for :meth:`predict`.
            normalize: L2-normalize each embedding (the default; cosine similarity is then a dot product).

        Returns:
            For one image, a (D,) float32 vector (raises ImageLoadError when unreadable). For
            several, :class:`Embeddings`: the rows of the readable images in input order, their
            names, and the errors of the others.
        """
        if self.manifest.outputs.embedding is None:
            raise VitedgeError(f"{self.path}: this artifact has no embedding output", hint="re-convert it with vitedge convert")
        single = _is_single(images)
        rows, names, errors = [], [], []
        for item, outputs in self._outputs([images] if single else images):
            if single and item.exception is not None:
                raise item.exception
            if outputs is None:
                errors.append((item.name, item.error or "unreadable"))
                continue
            vector = outputs["embedding"].astype(np.float32)
            if normalize:
                vector = vector / max(float(np.linalg.norm(vector)), 1e-12)
            rows.append(vector)
            names.append(item.name)
        if single:
            return rows[0]
        size = self.manifest.outputs.embedding_size or 0
        vectors = np.stack(rows) if rows else np.zeros((0, size), np.float32)
        return Embeddings(vectors=vectors, images=tuple(names), errors=tuple(errors))

