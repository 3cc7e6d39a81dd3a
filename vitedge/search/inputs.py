"""Vectors to index: job folders (``vitedge embed --out DIR``) or ``.npy`` files (``--out X.npy``), one artifact."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vitedge.errors import UsageError
from vitedge.runtime.manifest import read_manifest
from vitedge.scale import artifact_sha256, read_embeddings
from vitedge.search.artifacts import ArtifactMismatchError, describe_artifact


@dataclass(frozen=True)
class VectorTable:
    """Vectors with the path of each row, the artifact that made them, and where they came from."""

    paths: tuple[str, ...]
    vectors: np.ndarray
    artifact: dict[str, Any]
    normalized: bool
    sources: tuple[str, ...]


def read_vectors(inputs: str | os.PathLike | Sequence[str | os.PathLike]) -> VectorTable:
    """Read and concatenate the inputs, refusing a mix of artifacts or duplicate paths."""
    given = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    if not given:
        raise UsageError("no embeddings given", hint="pass the --out folder of vitedge embed")
    tables = [_read_one(Path(item)) for item in given]
    first = tables[0]
    for table in tables[1:]:
        if table.artifact["sha256"] != first.artifact["sha256"]:
            raise ArtifactMismatchError(
                f"{table.sources[0]} holds vectors of the {describe_artifact(table.artifact)}, {first.sources[0]} of the "
                f"{describe_artifact(first.artifact)}: one index takes one artifact's vectors",
                hint="embed every folder with the same artifact, or build one index per artifact")
    paths = tuple(path for table in tables for path in table.paths)
    if len(set(paths)) != len(paths):
        raise UsageError("the same image appears in several inputs", hint="index each job folder once")
    vectors = np.concatenate([table.vectors for table in tables]) if len(tables) > 1 else first.vectors
    return VectorTable(paths, vectors, first.artifact, all(t.normalized for t in tables),
                       tuple(source for table in tables for source in table.sources))


def _read_one(path: Path) -> VectorTable:
    if path.suffix == ".npy":
        return _read_npy(path)
    table = read_embeddings(path)
    return VectorTable(table.paths, table.vectors, table.artifact, table.normalized, (str(path),))


def _read_npy(path: Path) -> VectorTable:
    sidecar = path.with_suffix(".json")
    if not path.is_file() or not sidecar.is_file():
        raise UsageError(f"{path}: needs the .npy file and its {sidecar.name} beside it (what vitedge embed --out X.npy writes)")
    info = json.loads(sidecar.read_text(encoding="utf-8"))
    sha = info.get("artifact_sha256")
    artifact_path = info.get("artifact")
    if sha is None:
        if not artifact_path or not Path(artifact_path).is_dir():
            raise UsageError(f"{sidecar}: does not say which artifact made the vectors",
                             hint="embed again with this vitedge (it records the artifact's sha256)")
        sha = artifact_sha256(artifact_path)
    artifact = {"path": artifact_path, "sha256": sha}
    if artifact_path and Path(artifact_path).is_dir() and artifact_sha256(artifact_path) == sha:
        manifest = read_manifest(artifact_path)
        artifact.update(format=manifest.format, precision=manifest.precision, model=manifest.source.model,
                        embedding_size=manifest.outputs.embedding_size)
    vectors = np.load(path, allow_pickle=False)
    images = tuple(info.get("images", ()))
    if vectors.ndim != 2 or len(images) != len(vectors):
        raise UsageError(f"{path}: {vectors.shape} vectors but {len(images)} image names in {sidecar.name}")
    return VectorTable(images, vectors.astype(np.float32), artifact, bool(info.get("normalized", True)), (str(path),))


def read_query_vectors(path: str | os.PathLike) -> tuple[np.ndarray, str | None, list[str]]:
    """Query vectors from a .npy file ((D,) or (N, D)): the vectors, the sidecar's artifact sha256, row names."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such file", hint="--vector takes a .npy file of one vector or a matrix of rows")
    try:
        vectors = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as error:
        raise UsageError(f"{path}: not a .npy array ({error})", hint="save vectors with numpy.save") from error
    vectors = vectors[None] if vectors.ndim == 1 else vectors
    sidecar = path.with_suffix(".json")
    info = json.loads(sidecar.read_text(encoding="utf-8")) if sidecar.is_file() else {}
    names = list(info.get("images") or [f"{path}[{row}]" for row in range(len(vectors))])
    return vectors, info.get("artifact_sha256"), names
