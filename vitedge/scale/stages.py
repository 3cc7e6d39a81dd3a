"""The two stages of a bulk job, the same for both engines: decode+preprocess, then the model.

:func:`decode_batch` turns a batch of paths (a pyarrow table) into input tensors with the runtime's own
loading and preprocessing (what ``Classifier.predict`` does); an unreadable image becomes a row with its
error. :class:`ModelStage` holds one torch-free :class:`~vitedge.runtime.Classifier` (opened once, in its
constructor: an actor of Ray Data's actor pool, or the local engine's one instance) and turns decoded
batches into output rows (:mod:`vitedge.scale.shards` has their schema).
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vitedge.errors import ImageLoadError, VitedgeError
from vitedge.runtime.classifier import Classifier, softmax
from vitedge.runtime.images import load_rgb
from vitedge.runtime.manifest import MANIFEST_NAME, read_manifest, sha256_file
from vitedge.runtime.preprocess import preprocess
from vitedge.runtime.preprocess_spec import PreprocessSpec
from vitedge.scale.shards import TASKS, output_schema
from vitedge.scale.sources import is_uri, read_bytes

CHUNK, PATH, PIXELS, ERROR = "chunk", "path", "pixels", "error"


def artifact_sha256(folder: str | os.PathLike) -> str:
    """An artifact's identity: the sha256 of its manifest (which holds every model file's sha256)."""
    return sha256_file(Path(folder) / MANIFEST_NAME)


# -- stage 1: read, decode, preprocess -----------------------------------------------------------


def _load(path: str, max_pixels: int):
    if is_uri(path):
        try:
            return load_rgb(read_bytes(path), max_pixels=max_pixels)
        except ImageLoadError as error:  # name the URI, not "<bytes: N>"
            raise ImageLoadError(path, error.reason, hint=error.hint) from error
    return load_rgb(path, max_pixels=max_pixels)


def _encoded_tensor(path: str, spec: PreprocessSpec, max_pixels: int) -> tuple[bytes | None, str | None]:
    """The preprocessed tensor as .npy bytes, or the one-line error that stopped it."""
    try:
        tensor = preprocess(_load(path, max_pixels), spec)
    except VitedgeError as error:
        return None, str(error)
    except Exception as error:  # noqa: BLE001 - one bad image is a row with an error, never a failed job
        return None, f"{path}: cannot be read ({type(error).__name__}: {' '.join(str(error).split())[:200]})"
    buffer = io.BytesIO()
    np.save(buffer, tensor, allow_pickle=False)
    return buffer.getvalue(), None


def decode_batch(batch, *, spec: PreprocessSpec, max_pixels: int):
    """Stage 1: ``{chunk, path}`` rows -> ``{chunk, path, pixels (.npy bytes or null), error}`` rows (pyarrow)."""
    import pyarrow as pa

    paths = batch.column(PATH).to_pylist()
    encoded = [_encoded_tensor(path, spec, max_pixels) for path in paths]
    return pa.table({
        CHUNK: batch.column(CHUNK),
        PATH: pa.array(paths, pa.string()),
        PIXELS: pa.array([pixels for pixels, _ in encoded], pa.binary()),
        ERROR: pa.array([error for _, error in encoded], pa.string()),
    })


# -- stage 2: the model ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ArtifactHandle:
    """How a worker finds the artifact: the driver's path, its sha256, and (for a cluster) its files.

    ``files`` is ``[ObjectRef]`` of ``{relative path: bytes}`` in Ray's object store, wrapped in a list
    so that Ray hands the reference over instead of the bytes. A worker that sees the artifact at
    ``path`` with the same sha256 (one machine, shared storage) opens it there; else it writes the
    files into its temporary folder once per node and opens that copy.
    """

    path: str
    sha256: str
    files: list | None = None

    def local_folder(self) -> Path:
        folder = Path(self.path)
        if (folder / MANIFEST_NAME).is_file() and artifact_sha256(folder) == self.sha256:
            return folder
        if not self.files:
            raise VitedgeError(f"{self.path}: artifact not found on worker {socket.gethostname()}",
                               hint="put it on storage every node sees, or run through vitedge with --address")
        return self._materialize()

    def _materialize(self) -> Path:
        import ray

        target = Path(tempfile.gettempdir()) / "vitedge-artifacts" / self.sha256[:16]
        if (target / MANIFEST_NAME).is_file() and artifact_sha256(target) == self.sha256:
            return target
        work = target.with_name(f".{target.name}.partial-{socket.gethostname()}-{os.getpid()}")
        shutil.rmtree(work, ignore_errors=True)
        for relative, data in ray.get(self.files[0]).items():
            (work / relative).parent.mkdir(parents=True, exist_ok=True)
            (work / relative).write_bytes(data)
        try:
            work.rename(target)
        except OSError:  # another worker on this node was first
            shutil.rmtree(work, ignore_errors=True)
        return target


def artifact_files(folder: str | os.PathLike) -> dict[str, bytes]:
    """The manifest and the model files it lists, by relative path (what a cluster's workers receive)."""
    folder = Path(folder)
    names = [MANIFEST_NAME, *(entry.path for entry in read_manifest(folder).files)]
    return {name: (folder / name).read_bytes() for name in names}


@dataclass(frozen=True)
class StageOptions:
    """What stage 2 computes: the task, how many classes per image, raw or L2-normalized embeddings."""

    task: str = "embed"
    top_k: int = 0
    normalize: bool = True
    threads: int | None = None
    batch_size: int = 8
    verify: bool = True
    device: str | None = None  # for formats that offer a choice (Classifier.open's device)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise VitedgeError(f"unknown task {self.task!r}; choose one of {', '.join(TASKS)}")


class ModelStage:
    """Stage 2: decoded rows -> output rows; holds one Classifier, loaded once (per Ray actor)."""

    def __init__(self, artifact: ArtifactHandle, options: StageOptions) -> None:
        self.options = options
        self.sha256 = artifact.sha256
        device = {"device": options.device} if options.device else {}
        self.classifier = Classifier.open(artifact.local_folder(), num_threads=options.threads,
                                          batch_size=options.batch_size, verify=options.verify, **device)
        self.labels = self.classifier.labels
        embedding_size = self.classifier.manifest.outputs.embedding_size
        if options.task == "embed" and self.classifier.manifest.outputs.embedding is None:
            raise VitedgeError(f"{artifact.path}: this artifact has no embedding output", hint="re-convert it with vitedge convert")
        self.schema = output_schema(options.task, options.top_k, embedding_size, internal=True)

    def __call__(self, batch):
        import pyarrow as pa

        chunks, paths = batch.column(CHUNK).to_pylist(), batch.column(PATH).to_pylist()
        errors, pixels = batch.column(ERROR).to_pylist(), batch.column(PIXELS).to_pylist()
        outputs = self._run([None if data is None else np.load(io.BytesIO(data)) for data in pixels])
        columns: dict[str, list[Any]] = {CHUNK: chunks, PATH: paths}
        if self.options.task == "embed":
            columns["embedding"] = [self._embedding(out) for out in outputs]
        if self.options.top_k:
            top = [self._top(out) for out in outputs]
            columns["labels"] = [None if t is None else [self._label(i) for i in t[0]] for t in top]
            columns["label_indices"] = [None if t is None else t[0] for t in top]
            columns["scores"] = [None if t is None else t[1] for t in top]
        columns["artifact_sha256"] = [self.sha256] * len(paths)
        columns[ERROR] = errors
        return pa.table(columns, schema=self.schema)

    def _run(self, tensors: list[np.ndarray | None]) -> list[dict[str, np.ndarray] | None]:
        """Each row's outputs, batching rows of the same shape (as Classifier.predict does)."""
        outputs: list[dict[str, np.ndarray] | None] = [None] * len(tensors)
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for row, tensor in enumerate(tensors):
            if tensor is not None:
                by_shape.setdefault(tensor.shape, []).append(row)
        step = self.options.batch_size
        for rows in by_shape.values():
            for start in range(0, len(rows), step):
                part = rows[start:start + step]
                result = self.classifier.run(np.stack([tensors[row] for row in part]))
                for position, row in enumerate(part):
                    outputs[row] = {key: value[position] for key, value in result.items()}
        return outputs

    def _embedding(self, outputs: dict[str, np.ndarray] | None) -> list[float] | None:
        if outputs is None:
            return None
        vector = outputs["embedding"].astype(np.float32)
        if self.options.normalize:
            vector = vector / max(float(np.linalg.norm(vector)), 1e-12)
        return vector

    def _top(self, outputs: dict[str, np.ndarray] | None) -> tuple[list[int], list[float]] | None:
        if outputs is None:
            return None
        scores = softmax(outputs["logits"][None])[0]
        best = np.argsort(-scores, kind="stable")[: self.options.top_k]
        return [int(i) for i in best], [float(scores[i]) for i in best]

    def _label(self, index: int) -> str:
        return self.labels[index] if index < len(self.labels) else f"LABEL_{index}"
