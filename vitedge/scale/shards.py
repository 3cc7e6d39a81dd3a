"""A job's folder: Parquet shards written atomically, and ``_vitedge_job.json`` saying what made them.

Columns of every shard: ``path`` (string), then ``embedding`` (list<float32>; ``embed`` jobs), then with a
top-k ``labels`` (list<string>), ``label_indices`` (list<int32>) and ``scores`` (list<float32>, softmax,
best first), then ``artifact_sha256`` (string) and ``error`` (string: null, or why the image could not
be read; the outputs are then null). Rows are in path order. A shard is written to a hidden temporary
file and renamed into place, so a shard that exists is complete; readers (pyarrow, Ray Data, pandas,
DuckDB) skip the hidden temporary files and ``_``-prefixed metadata.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vitedge.errors import UsageError, VitedgeError

TASKS = ("embed", "predict")
JOB_FILE = "_vitedge_job.json"
JOB_SCHEMA = "vitedge.scale-job/1"
SHARD_GLOB = "part-*.parquet"
_TEMP_PREFIX = ".part-"
_SHARD_KEY = b"vitedge"


def output_schema(task: str, top_k: int, embedding_size: int | None = None, *, internal: bool = False):
    """The pyarrow schema of a shard (``internal`` adds the ``chunk`` column the engines carry)."""
    import pyarrow as pa

    fields = [pa.field("chunk", pa.int32())] if internal else []
    fields.append(pa.field("path", pa.string(), nullable=False))
    if task == "embed":
        fields.append(pa.field("embedding", pa.list_(pa.float32())))
    if top_k:
        fields += [pa.field("labels", pa.list_(pa.string())), pa.field("label_indices", pa.list_(pa.int32())),
                   pa.field("scores", pa.list_(pa.float32()))]
    fields += [pa.field("artifact_sha256", pa.string()), pa.field("error", pa.string())]
    metadata = {b"vitedge.embedding_size": str(embedding_size).encode()} if embedding_size else None
    return pa.schema(fields, metadata=metadata)


# -- the job file --------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobRecord:
    """``_vitedge_job.json``: what a job folder holds and what made it (compared on every rerun)."""

    task: str
    artifact: dict[str, Any]
    options: dict[str, Any]
    images: int
    shards: int
    source_fingerprint: str
    sources: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        from vitedge._version import __version__

        return {"schema": JOB_SCHEMA, "task": self.task, "artifact": self.artifact, "options": self.options,
                "images": self.images, "shards": self.shards, "source_fingerprint": self.source_fingerprint,
                "sources": list(self.sources), "vitedge": __version__}

    def differences(self, other: JobRecord) -> list[str]:
        """What differs from an earlier job in the same folder, as ``name: then -> now`` phrases."""
        found = []
        if self.artifact["sha256"] != other.artifact["sha256"]:
            found.append(f"another artifact ({_artifact_text(other.artifact)} then, {_artifact_text(self.artifact)} now)")
        if self.task != other.task:
            found.append(f"another task ({other.task} then, {self.task} now)")
        for name in sorted(set(self.options) | set(other.options)):
            if self.options.get(name) != other.options.get(name):
                found.append(f"{name} {other.options.get(name)} then, {self.options.get(name)} now")
        if self.source_fingerprint != other.source_fingerprint:
            found.append(f"other images ({other.images} then, {self.images} now)")
        return found


def _artifact_text(artifact: dict[str, Any]) -> str:
    return f"{artifact.get('format')} {artifact.get('precision')} of {artifact.get('model')}, sha256 {artifact['sha256'][:12]}"


def read_job(folder: Path) -> JobRecord | None:
    """The folder's job record, or None when it has none."""
    path = folder / JOB_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("schema") != JOB_SCHEMA:
            raise ValueError(f"schema {data.get('schema')!r}")
        return JobRecord(task=data["task"], artifact=data["artifact"], options=data["options"], images=data["images"],
                         shards=data["shards"], source_fingerprint=data["source_fingerprint"],
                         sources=tuple(data.get("sources", ())))
    except (ValueError, KeyError, TypeError, OSError) as error:
        raise VitedgeError(f"{path}: not a vitedge job record ({error})",
                           hint="pass --overwrite to start the job again in this folder, or choose another --out") from error


def write_job(folder: Path, record: JobRecord) -> None:
    _atomic_write(folder / JOB_FILE, (json.dumps(record.to_dict(), indent=2) + "\n").encode())


def prepare_folder(folder: Path, record: JobRecord, *, overwrite: bool) -> None:
    """Make ``folder`` ready for ``record``: new, the same job (resume), or replaced with ``overwrite``.

    Raises:
        UsageError: The folder holds another job's shards (another artifact, task, options or image
            list) and ``overwrite`` is off, or it holds files that are not a vitedge job's.
    """
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder}: exists and is not a folder", hint="--out is a folder for Parquet shards (or a .npy file)")
    folder.mkdir(parents=True, exist_ok=True)
    earlier = read_job(folder) if not overwrite else None
    if earlier is not None:
        differences = record.differences(earlier)
        if differences:
            raise UsageError(f"{folder}: holds the shards of another job: {'; '.join(differences)}",
                             hint="pass --overwrite to replace them, or choose another --out")
    elif not overwrite and _foreign_entries(folder, with_job=False):
        raise UsageError(f"{folder}: is not empty and holds no vitedge job",
                         hint="choose a new or empty --out folder (or --overwrite to replace a job's shards)")
    if overwrite:
        others = _foreign_entries(folder, with_job=True)
        if others:
            raise UsageError(f"{folder}: holds files that are not a vitedge job's ({', '.join(sorted(others)[:3])})",
                             hint="--overwrite only replaces a job's shards; choose a new or empty --out folder")
        for shard in folder.glob(SHARD_GLOB):
            shard.unlink()
    _remove_stale_temporaries(folder)
    write_job(folder, record)


def _foreign_entries(folder: Path, *, with_job: bool) -> list[str]:
    ours = {JOB_FILE} if with_job else set()
    return [entry.name for entry in folder.iterdir()
            if entry.name not in ours and not entry.name.startswith(_TEMP_PREFIX)
            and not (with_job and entry.match(SHARD_GLOB))]


# -- shards ---------------------------------------------------------------------------------------


def _atomic_write(path: Path, data: bytes) -> None:
    temporary = path.with_name(f"{_TEMP_PREFIX}{path.name}.{socket.gethostname()}-{os.getpid()}.tmp")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _remove_stale_temporaries(folder: Path) -> None:
    """Temporary files of this host's processes that no longer run (a job killed mid-write)."""
    host = socket.gethostname()
    for temporary in folder.glob(f"{_TEMP_PREFIX}*.tmp"):
        owner = temporary.name.rsplit(".", 2)[-2]
        owner_host, _, pid = owner.rpartition("-")
        if owner_host == host and pid.isdigit() and not _alive(int(pid)):
            temporary.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_shard(folder: Path, name: str, table, *, chunk_digest: str) -> Path:
    """Write one shard atomically (a temporary file renamed into place), its chunk recorded in the footer."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    meta = {**(table.schema.metadata or {}), _SHARD_KEY: json.dumps({"chunk": chunk_digest, "rows": table.num_rows}).encode()}
    sink = pa.BufferOutputStream()
    pq.write_table(table.replace_schema_metadata(meta), sink, compression="zstd")
    path = folder / name
    _atomic_write(path, sink.getvalue().to_pybytes())
    return path


def shard_is_complete(path: Path, *, chunk_digest: str, rows: int, artifact_sha256: str) -> bool:
    """Whether the shard at ``path`` is this chunk's, whole, and made by this artifact."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        metadata = pq.read_metadata(path)
        record = json.loads((metadata.metadata or {}).get(_SHARD_KEY, b"{}"))
        if record.get("chunk") != chunk_digest or record.get("rows") != rows or metadata.num_rows != rows:
            return False
        shas = pq.read_table(path, columns=["artifact_sha256"]).column("artifact_sha256").unique().to_pylist()
    except (OSError, ValueError, pa.ArrowException):
        return False
    return shas == [artifact_sha256]

