"""The self-check an artifact carries, as files: ``selfcheck/`` beside the model. Torch free.

Schema ``vitedge.selfcheck/1``, read by the Python runtime, the Android demo's Kotlin core and the iOS
demo's Swift core with nothing but their standard libraries:

- ``index.json``: the preprocess spec the references were made with, the tolerances, and per image
  its file, what it covers and its reference tensor's shape, sha256 and sample grid.
- ``<name>.png`` / ``<name>.jpg``: the input images as encoded files (decoding is part of the check).
- ``samples.f32``: per image, the reference input tensor (what the conversion fed the model) at a grid
  of positions: ``tensor[c, rows[i], cols[j]]`` (NCHW; ``tensor[rows[i], cols[j], c]`` for NHWC) in the
  order c, i, j, little-endian float32, the images one after the other (``offset`` in floats). The
  whole tensor is pinned by the sha256 of its little-endian float32 bytes, in the manifest's layout
  without the batch dimension; the samples say by how much and where a differing tensor differs.
- ``logits.f32`` (N x classes), ``embedding.f32`` (N x size, when the model has one): the torch fp32
  reference outputs for the N images, little-endian float32, row-major.

A model-size tensor per image would not fit the budget (a 384 x 384 input is 1.7 MB as float32, even
a PNG of its pixels ~100 KB): the hash and the samples take a few KB.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vitedge.errors import ArtifactError
from vitedge.runtime.manifest import FileEntry, Manifest, SelfCheckFiles
from vitedge.runtime.preprocess_spec import PreprocessSpec

SELFCHECK_SCHEMA = "vitedge.selfcheck/1"
SELFCHECK_DIR = "selfcheck"
INDEX_NAME = "index.json"
SAMPLES_NAME = "samples.f32"
LOGITS_NAME = "logits.f32"
EMBEDDING_NAME = "embedding.f32"
SAMPLE_GRID = 32
"""At most this many rows and columns of each tensor are sampled (32 x 32 x 3 values per image)."""
TENSOR_TOLERANCE = 1e-5
"""Preprocessing parity: the largest difference allowed between a runtime's tensor and the reference
(every reader does the same float32 arithmetic, so they match bit for bit in practice)."""
ENCODINGS = {"PNG": ".png", "JPEG": ".jpg"}
_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")
REGENERATE = "re-create the artifact with vitedge convert to write a fresh self-check"


@dataclass(frozen=True)
class EncodedImage:
    """One self-check input: encoded bytes (PNG or JPEG), a file-name stem, and what it covers."""

    name: str
    what: str
    data: bytes
    encoded_as: str

    def __post_init__(self) -> None:
        if not _NAME.match(self.name) or self.encoded_as not in ENCODINGS:
            raise ValueError(f"self-check image {self.name!r} ({self.encoded_as}): name [a-z0-9_], PNG or JPEG")

    @property
    def file(self) -> str:
        return self.name + ENCODINGS[self.encoded_as]


@dataclass(frozen=True)
class ReferenceImage:
    """An image of a self-check: its file, what it covers, and its reference tensor (shape, sha256, sample grid)."""

    name: str
    file: str
    what: str
    encoded_as: str
    mode: str
    width: int
    height: int
    shape: tuple[int, ...]
    sha256: str
    rows: tuple[int, ...]
    cols: tuple[int, ...]
    offset: int

    @property
    def sample_count(self) -> int:
        return 3 * len(self.rows) * len(self.cols)


@dataclass(frozen=True)
class SelfCheckData:
    """A self-check as read from an artifact: see the module docstring for each part."""

    folder: Path
    preprocess: PreprocessSpec
    layout: str
    images: tuple[ReferenceImage, ...]
    samples: np.ndarray
    logits: np.ndarray
    embedding: np.ndarray | None
    reference: str
    tensor_tolerance: float
    model_tolerance: dict[str, float | None]
    made_with: dict[str, Any]

    def image_bytes(self, image: ReferenceImage) -> bytes:
        return (self.folder / image.file).read_bytes()

    def samples_of(self, image: ReferenceImage) -> np.ndarray:
        """The image's reference samples, (3, len(rows), len(cols))."""
        flat = self.samples[image.offset : image.offset + image.sample_count]
        return flat.reshape(3, len(image.rows), len(image.cols))


def tensor_sha256(tensor: np.ndarray) -> str:
    """sha256 of a tensor's little-endian float32 bytes (C order), as every reader computes it."""
    return hashlib.sha256(np.ascontiguousarray(tensor, dtype="<f4").tobytes()).hexdigest()


def sample_grid(length: int, count: int = SAMPLE_GRID) -> tuple[int, ...]:
    """``count`` (at most ``length``) evenly spread indices into an axis of ``length``: centres of equal bins."""
    count = min(count, length)
    return tuple((2 * i + 1) * length // (2 * count) for i in range(count))


def spatial_size(shape: Sequence[int], layout: str) -> tuple[int, int]:
    """(height, width) of a (3, H, W) or (H, W, 3) tensor."""
    return (shape[1], shape[2]) if layout == "NCHW" else (shape[0], shape[1])


def sample_tensor(tensor: np.ndarray, layout: str, rows: Sequence[int], cols: Sequence[int]) -> np.ndarray:
    """The tensor's values at the grid, (3, len(rows), len(cols)) float32."""
    chw = tensor if layout == "NCHW" else np.moveaxis(tensor, -1, 0)
    return np.ascontiguousarray(chw[:, list(rows)][:, :, list(cols)], dtype=np.float32)


def write_selfcheck(
    folder: Path,
    *,
    images: Sequence[EncodedImage],
    spec: PreprocessSpec,
    tensors: Sequence[np.ndarray],
    logits: np.ndarray,
    embedding: np.ndarray | None,
    reference: str,
    model_tolerance: dict[str, float | None],
    made_with: dict[str, Any],
) -> SelfCheckFiles:
    """Write ``folder/selfcheck/`` and return the manifest's ``selfcheck`` block (index + files with checksums).

    Args:
        folder: The artifact folder (a conversion's work folder).
        images: The inputs, encoded.
        spec: The preprocessing the tensors were made with (the manifest's).
        tensors: Per image, the input tensor the reference outputs belong to (no batch dimension).
        logits: (N, classes) reference logits.
        embedding: (N, size) reference embeddings, or None.
        reference: What made the outputs (``"torch fp32"``).
        model_tolerance: The thresholds a runtime's outputs must meet (:mod:`vitedge.runtime.selfcheck`).
        made_with: How the self-check was made (vitedge version, validation tolerance, notes…): recorded as is.
    """
    out = folder / SELFCHECK_DIR
    out.mkdir(parents=True, exist_ok=True)
    entries, samples, offset = [], [], 0
    for image, tensor in zip(images, tensors, strict=True):
        (out / image.file).write_bytes(image.data)
        decoded = Image.open(io.BytesIO(image.data))
        height, width = spatial_size(tensor.shape, spec.layout)
        rows, cols = sample_grid(height), sample_grid(width)
        samples.append(sample_tensor(tensor, spec.layout, rows, cols).ravel())
        entries.append({
            "name": image.name, "file": image.file, "what": image.what, "encoded_as": image.encoded_as,
            "mode": decoded.mode, "width": decoded.width, "height": decoded.height,
            "tensor": {"shape": list(tensor.shape), "sha256": tensor_sha256(tensor), "rows": list(rows),
                       "cols": list(cols), "offset": offset},
        })
        offset += samples[-1].size
    _write_f32(out / SAMPLES_NAME, np.concatenate(samples))
    _write_f32(out / LOGITS_NAME, logits)
    if embedding is not None:
        _write_f32(out / EMBEDDING_NAME, embedding)
    index = {
        "schema": SELFCHECK_SCHEMA,
        "about": "vitedge verify ARTIFACT decodes these images, preprocesses them and runs the model, and compares "
                 "both with what the conversion computed; see vitedge.runtime.selfcheck_files",
        "preprocess": spec.to_dict(),
        "layout": spec.layout,
        "reference": reference,
        "tolerance": {"preprocessing": {"max_abs_diff": TENSOR_TOLERANCE}, "model": model_tolerance},
        "samples": {"file": SAMPLES_NAME, "count": offset},
        "logits": {"file": LOGITS_NAME, "shape": list(logits.shape)},
        "embedding": None if embedding is None else {"file": EMBEDDING_NAME, "shape": list(embedding.shape)},
        "images": entries,
        "made_with": made_with,
    }
    (out / INDEX_NAME).write_text(json.dumps(index, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    names = [INDEX_NAME, *(image.file for image in images), SAMPLES_NAME, LOGITS_NAME]
    names += [EMBEDDING_NAME] if embedding is not None else []
    return SelfCheckFiles(index=f"{SELFCHECK_DIR}/{INDEX_NAME}",
                          files=tuple(FileEntry.of(folder, f"{SELFCHECK_DIR}/{name}") for name in names))


def _write_f32(path: Path, values: np.ndarray) -> None:
    path.write_bytes(np.ascontiguousarray(values, dtype="<f4").tobytes())


def read_selfcheck(folder: str | Path, manifest: Manifest) -> SelfCheckData | None:
    """The artifact's self-check, or None when it has none (made before vitedge wrote them).

    Checksums are :func:`vitedge.runtime.manifest.verify_files`' job; this reads and checks the shape.

    Raises:
        ArtifactError: the index or a file is missing or malformed (the message names it).
    """
    if manifest.selfcheck is None:
        return None
    folder = Path(folder)
    index_path = folder / manifest.selfcheck.index
    where = str(index_path)
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
        if not isinstance(index, dict) or index.get("schema") != SELFCHECK_SCHEMA:
            raise ArtifactError(f"{where}: not a {SELFCHECK_SCHEMA} index", hint=REGENERATE)
        base = index_path.parent
        listed = {entry.path for entry in manifest.selfcheck.files}
        listed_name = _listed(base.relative_to(folder).as_posix(), listed)
        samples = _read_f32(base / listed_name(index["samples"]["file"]), (index["samples"]["count"],))
        logits = _read_f32(base / listed_name(index["logits"]["file"]), tuple(index["logits"]["shape"]))
        embedding_entry = index.get("embedding")
        embedding = None if embedding_entry is None else _read_f32(base / listed_name(embedding_entry["file"]),
                                                                   tuple(embedding_entry["shape"]))
        images = tuple(_reference_image(entry, listed_name) for entry in index["images"])
        data = SelfCheckData(
            folder=base, preprocess=PreprocessSpec.from_dict(index["preprocess"]), layout=index["layout"],
            images=images, samples=samples, logits=logits, embedding=embedding, reference=str(index["reference"]),
            tensor_tolerance=float(index["tolerance"]["preprocessing"]["max_abs_diff"]),
            model_tolerance=dict(index["tolerance"]["model"]), made_with=dict(index.get("made_with") or {}),
        )
    except ArtifactError:
        raise
    except OSError as error:
        raise ArtifactError(f"{where}: cannot read the self-check ({error.strerror or error})", hint=REGENERATE) from error
    except (ValueError, KeyError, TypeError, IndexError) as error:
        raise ArtifactError(f"{where}: malformed self-check ({type(error).__name__}: {error})", hint=REGENERATE) from error
    _check_consistent(data, where)
    return data


def _listed(prefix: str, listed: set[str]):
    """A check that a file the index names is one the manifest lists (so its checksum was verified)."""

    def check(name: Any) -> str:
        if not isinstance(name, str) or f"{prefix}/{name}" not in listed:
            raise ValueError(f"{name!r} is not one of the self-check files the manifest lists")
        return name

    return check


def _reference_image(entry: dict[str, Any], listed_name) -> ReferenceImage:
    tensor = entry["tensor"]
    return ReferenceImage(
        name=str(entry["name"]), file=listed_name(entry["file"]), what=str(entry.get("what", "")), encoded_as=str(entry["encoded_as"]),
        mode=str(entry.get("mode", "")), width=int(entry["width"]), height=int(entry["height"]),
        shape=tuple(int(n) for n in tensor["shape"]), sha256=str(tensor["sha256"]),
        rows=tuple(int(n) for n in tensor["rows"]), cols=tuple(int(n) for n in tensor["cols"]), offset=int(tensor["offset"]),
    )


def _read_f32(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    values = np.frombuffer(path.read_bytes(), dtype="<f4")
    if values.size != int(np.prod(shape)):
        raise ValueError(f"{path.name} holds {values.size} floats, the index says {shape}")
    return values.astype(np.float32).reshape(shape)


def _check_consistent(data: SelfCheckData, where: str) -> None:
    problems = []
    if not data.images:
        problems.append("no images")
    if len(data.logits) != len(data.images):
        problems.append(f"{len(data.logits)} logits rows for {len(data.images)} images")
    if data.embedding is not None and len(data.embedding) != len(data.images):
        problems.append(f"{len(data.embedding)} embedding rows for {len(data.images)} images")
    for image in data.images:
        if len(image.shape) != 3 or image.offset + image.sample_count > data.samples.size:
            problems.append(f"{image.name}: tensor shape {image.shape} or samples out of range")
    if problems:
        raise ArtifactError(f"{where}: inconsistent self-check ({'; '.join(problems)})", hint=REGENERATE)
