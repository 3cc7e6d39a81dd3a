"""Read a job folder back: all its rows as one table, or the embeddings as a matrix."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vitedge.errors import UsageError, VitedgeError
from vitedge.scale.shards import JOB_FILE, SHARD_GLOB, read_job


@dataclass(frozen=True)
class EmbeddingTable:
    """A job's embeddings: row ``i`` of ``vectors`` is ``paths[i]``; unreadable images are in ``errors``."""

    paths: tuple[str, ...]
    vectors: np.ndarray
    artifact: dict[str, Any]
    normalized: bool
    errors: tuple[tuple[str, str], ...] = ()

    def __len__(self) -> int:
        return len(self.paths)


def _job_folder(folder: str | os.PathLike):
    path = Path(folder)
    record = read_job(path) if path.is_dir() else None
    if record is None:
        raise UsageError(f"{path}: not a vitedge job folder (no {JOB_FILE})",
                         hint="pass the --out folder of vitedge embed or vitedge predict")
    shards = sorted(path.glob(SHARD_GLOB))
    if len(shards) != record.shards:
        raise UsageError(f"{path}: the job is not finished ({len(shards)} of {record.shards} shards)",
                         hint="run the same vitedge embed command again: it resumes")
    return record, shards


def read_job_table(folder: str | os.PathLike):
    """All rows of a finished job, in path order, as one pyarrow table."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    _, shards = _job_folder(folder)
    return pa.concat_tables([pq.read_table(shard) for shard in shards])


def read_embeddings(folder: str | os.PathLike) -> EmbeddingTable:
    """A finished ``embed`` job's embeddings as an (N, D) float32 matrix, with paths and errors.

    Raises:
        UsageError: Not a job folder, an unfinished job, or a ``predict`` job (no embeddings).
    """
    record, _ = _job_folder(folder)
    if record.task != "embed":
        raise UsageError(f"{folder}: holds a {record.task} job, without embeddings", hint="run vitedge embed into a folder")
    table = read_job_table(folder)
    made_by = table.column("artifact_sha256").unique().to_pylist()
    if made_by not in ([], [record.artifact["sha256"]]):
        raise VitedgeError(f"{folder}: rows of several artifacts ({', '.join(sha[:12] for sha in made_by)})",
                           hint="embed the folder again with --overwrite")
    ok = table.filter(table.column("error").is_null())
    bad = table.filter(table.column("error").is_valid())
    size = record.artifact.get("embedding_size") or 0
    vectors = (np.asarray(ok.column("embedding").combine_chunks().flatten().to_numpy(zero_copy_only=False),
                          dtype=np.float32).reshape(ok.num_rows, -1) if ok.num_rows else np.zeros((0, size), np.float32))
    errors = tuple(zip(bad.column("path").to_pylist(), bad.column("error").to_pylist()))
    return EmbeddingTable(paths=tuple(ok.column("path").to_pylist()), vectors=vectors, artifact=record.artifact,
                          normalized=bool(record.options.get("normalize", True)), errors=errors)
