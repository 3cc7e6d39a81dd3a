"""An index folder: the faiss index, the path of each row, and ``index.json`` naming the artifact.

``index.json`` records which artifact made the vectors (its sha256, format, precision, model): a query
embedded by another artifact (another model, or the same model at another precision) lives in another
vector space, so searching with it is refused, as is building one index from two artifacts' vectors.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vitedge.errors import UsageError, VitedgeError
from vitedge.scale import artifact_sha256
from vitedge.search.artifacts import ArtifactMismatchError, describe_artifact
from vitedge.search.faiss_index import (
    IndexParams,
    build_faiss_index,
    import_faiss,
    prepare_vectors,
    set_search_parameters,
)
from vitedge.search.inputs import read_vectors

__all__ = ["ArtifactMismatchError", "SearchHit", "VectorIndex", "build_index", "open_index"]
INDEX_SCHEMA = "vitedge.index/1"
META_FILE = "index.json"
FAISS_FILE = "index.faiss"
PATHS_FILE = "paths.parquet"


@dataclass(frozen=True)
class SearchHit:
    """One neighbour: its path, its score (cosine similarity, or squared L2 distance), its rank from 1."""

    path: str
    score: float
    rank: int

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "path": self.path, "score": self.score}


class VectorIndex:
    """A built index, opened from its folder. Search it with vectors or with images."""

    def __init__(self, folder: Path, meta: dict[str, Any], paths: tuple[str, ...], index) -> None:
        self.folder = folder
        self.meta = meta
        self.paths = paths
        self.index = index
        self.params = IndexParams(**meta["params"])

    @classmethod
    def open(cls, folder: str | os.PathLike) -> VectorIndex:
        """Open an index folder written by :func:`build_index` (``vitedge index build``)."""
        import pyarrow.parquet as pq

        folder = Path(folder)
        meta_path = folder / META_FILE
        if not meta_path.is_file():
            raise UsageError(f"{folder}: not a vitedge index (no {META_FILE})", hint="build one with vitedge index build")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            if meta.get("schema") != INDEX_SCHEMA:
                raise ValueError(f"schema {meta.get('schema')!r}, expected {INDEX_SCHEMA}")
            paths = tuple(pq.read_table(folder / PATHS_FILE).column("path").to_pylist())
            index = import_faiss().read_index(str(folder / FAISS_FILE))
        except (ValueError, KeyError, OSError, RuntimeError) as error:
            raise VitedgeError(f"{folder}: unreadable index ({' '.join(str(error).split())[:200]})",
                               hint="rebuild it with vitedge index build") from error
        if index.ntotal != len(paths):
            raise VitedgeError(f"{folder}: {index.ntotal} vectors but {len(paths)} paths", hint="rebuild it with vitedge index build")
        return cls(folder, meta, paths, index)

    @property
    def artifact(self) -> dict[str, Any]:
        return self.meta["artifact"]

    @property
    def dimension(self) -> int:
        return int(self.index.d)

    def __len__(self) -> int:
        return len(self.paths)

    def check_artifact(self, sha256: str | None, *, what: str, described: str | None = None) -> None:
        """Refuse vectors made by another artifact than the index's."""
        if sha256 is not None and sha256 != self.artifact["sha256"]:
            raise ArtifactMismatchError(
                f"{self.folder}: holds vectors of the {describe_artifact(self.artifact)}, but {what} comes from "
                f"{described or 'another artifact'} (sha256 {sha256[:12]}); embeddings of different models or precisions "
                "are not comparable",
                hint=f"search with {self.artifact.get('path') or 'the artifact that made the index'}, or build an index "
                     "from this artifact's embeddings",
            )

    def search(self, vectors: np.ndarray, k: int = 10, *, nprobe: int | None = None,
               ef_search: int | None = None) -> list[list[SearchHit]]:
        """The ``k`` nearest rows of each query vector ((D,) or (N, D)), best first.

        ``nprobe`` (ivf-pq) and ``ef_search`` (hnsw) override the index's search parameters.
        """
        queries = np.asarray(vectors, dtype=np.float32)
        queries = queries[None] if queries.ndim == 1 else queries
        if queries.ndim != 2 or queries.shape[1] != self.dimension:
            raise UsageError(f"query vectors of shape {tuple(np.shape(vectors))} do not fit this index of "
                             f"{self.dimension}-dimensional vectors ({self.folder})")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise UsageError(f"k must be 1 or more, got {k!r}")
        params = IndexParams(**{**self.params.to_dict(), **({"nprobe": nprobe} if nprobe else {}),
                                **({"ef_search": ef_search} if ef_search else {})})
        set_search_parameters(self.index, params)
        scores, rows = self.index.search(prepare_vectors(queries, params.metric), min(k, len(self.paths)))
        return [[SearchHit(self.paths[row], float(score), rank + 1)
                 for rank, (row, score) in enumerate((r, s) for r, s in zip(found, values) if r >= 0)]
                for found, values in zip(rows, scores)]

    def search_images(self, images: Sequence, classifier, k: int = 10, **search_options) -> list[list[SearchHit]]:
        """Embed ``images`` with ``classifier`` (the artifact that made the index) and search.

        Raises:
            ArtifactMismatchError: The classifier's artifact is not the index's.
            ImageLoadError: An image cannot be read.
        """
        manifest = classifier.manifest
        described = f"the {manifest.format} {manifest.precision} artifact of {manifest.source.model} at {classifier.path}"
        self.check_artifact(artifact_sha256(classifier.path), what="the query", described=described)
        vectors = np.stack([classifier.embed(image, normalize=self.meta.get("normalized", True)) for image in images])
        return self.search(vectors, k, **search_options)


def build_index(
    embeddings: str | os.PathLike | Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    kind: str = "flat",
    metric: str = "cosine",
    params: IndexParams | None = None,
    overwrite: bool = False,
) -> VectorIndex:
    """Build a faiss index of the embeddings in one or more job folders (``vitedge embed --out DIR``).

    Args:
        embeddings: Job folder(s) of one artifact, or ``.npy`` files written by ``vitedge embed --out X.npy``.
        out: The index folder to write (atomically).
        kind: ``flat``, ``hnsw`` or ``ivf-pq`` (see :mod:`vitedge.search.faiss_index`).
        metric: ``cosine`` or ``l2``.
        params: Finer parameters (their kind and metric win over ``kind`` and ``metric``).
        overwrite: Replace an existing index at ``out``.

    Raises:
        ArtifactMismatchError: The inputs come from different artifacts.
        UsageError: No vectors, an unfinished job, an existing ``out``.
    """
    params = params or IndexParams(kind=kind, metric=metric)
    out = Path(out)
    _check_out(out, overwrite=overwrite)
    table = read_vectors(embeddings)
    if not len(table.paths):
        raise UsageError(f"{', '.join(map(str, table.sources))}: no embeddings to index (every image failed?)")
    params = params.resolved(len(table.paths), table.vectors.shape[1])
    started = time.perf_counter()
    index = build_faiss_index(prepare_vectors(table.vectors, params.metric), params)
    meta = {
        "schema": INDEX_SCHEMA, "artifact": table.artifact, "params": params.to_dict(), "count": len(table.paths),
        "dimension": int(table.vectors.shape[1]), "normalized": table.normalized, "sources": list(map(str, table.sources)),
        "build_seconds": round(time.perf_counter() - started, 3),
    }
    _write_folder(out, index, table.paths, meta, overwrite=overwrite)
    return VectorIndex.open(out)


def open_index(folder: str | os.PathLike) -> VectorIndex:
    """Open an index folder (:meth:`VectorIndex.open`)."""
    return VectorIndex.open(folder)


def _check_out(out: Path, *, overwrite: bool) -> None:
    if not out.exists():
        return
    if not overwrite:
        raise UsageError(f"{out}: already exists", hint="pass --overwrite to replace it, or choose another --out")
    if not (out / META_FILE).is_file() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{out}: exists and is not a vitedge index; --overwrite only replaces indexes",
                         hint="choose a new or empty --out folder")


def _write_folder(out: Path, index, paths: Sequence[str], meta: dict[str, Any], *, overwrite: bool) -> None:
    """Write into a hidden sibling folder, then rename it into place (replacing an old index only at the end)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out.parent.mkdir(parents=True, exist_ok=True)
    work = out.with_name(f".{out.name}.partial-{socket.gethostname()}-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        import_faiss().write_index(index, str(work / FAISS_FILE))
        pq.write_table(pa.table({"path": pa.array(list(paths), pa.string())}), work / PATHS_FILE)
        (work / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            _check_out(out, overwrite=overwrite)
            old = work.with_name(work.name + ".old")
            out.rename(old)
            work.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            work.rename(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
