"""A bulk job end to end: plan, skip what is written, run an engine, write each chunk's shard once.

The engines yield rows in any order (Ray Data does not keep order, and retries a dead worker's batch);
the driver gathers each chunk's rows, keeps one row per path, and writes the chunk's shard atomically
the moment it is whole. Interrupted anywhere (Ctrl-C, a lost node, a crash), the folder holds whole
shards only; the same command again skips them and does the rest.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vitedge.errors import UsageError, VitedgeError
from vitedge.runtime.images import DEFAULT_MAX_PIXELS
from vitedge.runtime.manifest import read_manifest
from vitedge.scale.engines import ENGINES, RayOptions, run_local, run_ray
from vitedge.scale.plan import DEFAULT_SHARD_SIZE, Chunk, make_plan
from vitedge.scale.shards import JobRecord, output_schema, prepare_folder, shard_is_complete, write_shard
from vitedge.scale.sources import resolve_sources
from vitedge.scale.stages import CHUNK, ERROR, PATH, ArtifactHandle, ModelStage, StageOptions, artifact_sha256


@dataclass(frozen=True)
class ShardWritten:
    """Passed to ``on_shard`` after each shard is written."""

    path: Path
    rows: int
    errors: int
    done_images: int
    total_images: int


@dataclass
class JobResult:
    """What a job did: where, how many images and shards, how many skipped (already written), errors."""

    out: Path
    images: int
    shards: int
    shards_skipped: int = 0
    shards_written: int = 0
    errors: int = 0
    seconds: float = 0.0
    engine: str = "local"
    error_lines: list[str] = field(default_factory=list)  # this run's unreadable images


def run_job(
    artifact: str | os.PathLike,
    sources: Sequence[str] | str,
    out: str | os.PathLike,
    *,
    task: str = "embed",
    engine: str = "local",
    top_k: int = 0,
    normalize: bool = True,
    batch_size: int = 8,
    threads: int | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    verify: bool = True,
    device: str | None = None,
    overwrite: bool = False,
    ray: RayOptions | None = None,
    on_shard: Callable[[ShardWritten], None] | None = None,
    stage_class: type = ModelStage,
) -> JobResult:
    """Embed or classify every image of ``sources`` into Parquet shards in ``out``; resumable.

    Args:
        artifact: The artifact folder.
        sources: Folders, globs, list files, Parquet files of paths (see :mod:`vitedge.scale.sources`).
        out: The job folder. Rerunning the same job there skips the shards already written.
        task: ``embed`` (embeddings, plus ``top_k`` labels when asked) or ``predict`` (top-k labels).
        engine: ``local`` (this process) or ``ray`` (Ray Data; see ``ray``).
        top_k: Labels and scores per image (``predict`` needs at least 1).
        normalize: L2-normalize embeddings.
        batch_size: Images per inference.
        threads: Threads per inference (local: None is the backend's default; Ray: per actor, default 1).
        shard_size: Images per shard.
        max_pixels: Decompression-bomb guard per image.
        verify: Check the model files' sha256 when each worker opens the artifact.
        device: Where the model runs, for formats that offer a choice (see ``Classifier.open``).
        overwrite: Replace another job's shards in ``out`` (else that is refused).
        ray: Where and how wide the Ray engine runs.
        on_shard: Called after each shard is written (progress).
        stage_class: The model stage (a subclass for tests).

    Returns:
        A :class:`JobResult`. Unreadable images are rows with an ``error``, counted in ``errors``.

    Raises:
        UsageError: Bad options, no images, an ``out`` holding another job.
        VitedgeError: The artifact cannot be opened, Ray is missing or unreachable.
    """
    started = time.perf_counter()
    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if task == "predict" and top_k < 1:
        raise UsageError(f"predict needs top_k of 1 or more, got {top_k}")
    if top_k < 0:
        raise UsageError(f"top_k must be 0 or more, got {top_k}")
    options = StageOptions(task=task, top_k=top_k, normalize=normalize, threads=threads, batch_size=batch_size, verify=verify,
                           device=device)
    manifest = read_manifest(artifact)
    handle = ArtifactHandle(str(Path(artifact).resolve()), artifact_sha256(artifact))
    plan = make_plan(resolve_sources([sources] if isinstance(sources, (str, os.PathLike)) else sources), shard_size)
    record = _record(task, manifest, handle, options, plan, sources)
    folder = Path(out)
    prepare_folder(folder, record, overwrite=overwrite)
    pending = [chunk for chunk in plan.chunks if not shard_is_complete(
        folder / chunk.shard_name, chunk_digest=chunk.digest, rows=len(chunk), artifact_sha256=handle.sha256)]
    result = JobResult(out=folder, images=plan.images, shards=len(plan.chunks), engine=engine,
                       shards_skipped=len(plan.chunks) - len(pending))
    if pending:
        schema = output_schema(task, top_k, manifest.outputs.embedding_size)
        assembler = _Assembler(folder, pending, schema, result, on_shard)
        if engine == "local":
            tables = run_local(pending, handle, options, manifest.preprocess, max_pixels, stage_class=stage_class)
        else:
            tables = run_ray(pending, handle, options, manifest.preprocess, max_pixels, ray or RayOptions(),
                             stage_class=stage_class)
        assembler.consume(tables)
    result.errors += _errors_in_skipped(folder, plan.chunks, pending)
    result.seconds = time.perf_counter() - started
    return result


def _record(task, manifest, handle: ArtifactHandle, options: StageOptions, plan, sources) -> JobRecord:
    artifact = {"path": handle.path, "sha256": handle.sha256, "format": manifest.format, "precision": manifest.precision,
                "model": manifest.source.model, "weights": manifest.source.weights,
                "embedding_size": manifest.outputs.embedding_size}
    given = [os.fsdecode(sources)] if isinstance(sources, (str, os.PathLike)) else [os.fsdecode(s) for s in sources]
    return JobRecord(task=task, artifact=artifact,
                     options={"top_k": options.top_k, "normalize": options.normalize, "shard_size": plan.shard_size},
                     images=plan.images, shards=len(plan.chunks), source_fingerprint=plan.fingerprint, sources=tuple(given))


class _Assembler:
    """Gathers each chunk's rows (one per path) and writes its shard when it is whole."""

    def __init__(self, folder: Path, pending: Sequence[Chunk], schema, result: JobResult, on_shard) -> None:
        self.folder, self.schema, self.result, self.on_shard = folder, schema, result, on_shard
        self.chunks = {chunk.index: chunk for chunk in pending}
        self.parts: dict[int, list] = {index: [] for index in self.chunks}
        self.seen: dict[int, set[str]] = {index: set() for index in self.chunks}
        self.done_images = result.images - sum(len(chunk) for chunk in pending)

    def consume(self, tables: Iterable) -> None:
        for table in tables:
            self.add(table)
        if self.chunks:
            missing = ", ".join(self.chunks[index].shard_name for index in sorted(self.chunks)[:3])
            raise VitedgeError(f"{self.folder}: the engine ended without all rows of {len(self.chunks)} shard(s) ({missing})",
                               hint="run the same command again: it resumes where this one stopped")

    def add(self, table) -> None:
        import pyarrow.compute as pc

        for index in pc.unique(table.column(CHUNK)).to_pylist():
            if index not in self.chunks:
                continue  # a retried batch of a chunk already written
            rows = table.filter(pc.equal(table.column(CHUNK), index))
            rows = rows.filter(pc.invert(pc.is_in(rows.column(PATH), value_set=_strings(self.seen[index]))))
            paths = rows.column(PATH).to_pylist()
            if len(set(paths)) != len(paths):  # one batch twice in one table
                rows = rows.take([paths.index(path) for path in dict.fromkeys(paths)])
                paths = list(dict.fromkeys(paths))
            self.seen[index].update(paths)
            self.parts[index].append(rows)
            if len(self.seen[index]) >= len(self.chunks[index]):
                self._write(index)

    def _write(self, index: int) -> None:
        import pyarrow as pa

        chunk = self.chunks.pop(index)
        table = pa.concat_tables(self.parts.pop(index)).drop_columns([CHUNK]).sort_by(PATH).cast(self.schema)
        path = write_shard(self.folder, chunk.shard_name, table, chunk_digest=chunk.digest)
        self.seen.pop(index)
        errors = table.column(ERROR).drop_null().to_pylist()
        self.result.shards_written += 1
        self.result.errors += len(errors)
        self.result.error_lines.extend(errors)
        self.done_images += len(chunk)
        if self.on_shard is not None:
            self.on_shard(ShardWritten(path, table.num_rows, len(errors), self.done_images, self.result.images))


def _strings(values: set[str]):
    import pyarrow as pa

    return pa.array(sorted(values), pa.string())


def _errors_in_skipped(folder: Path, chunks: Sequence[Chunk], pending: Sequence[Chunk]) -> int:
    import pyarrow.parquet as pq

    done = {chunk.index for chunk in pending}
    errors = 0
    for chunk in chunks:
        if chunk.index not in done:
            column = pq.read_table(folder / chunk.shard_name, columns=[ERROR]).column(ERROR)
            errors += len(column) - column.null_count
    return errors
