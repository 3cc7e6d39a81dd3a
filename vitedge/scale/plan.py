"""A bulk job's plan: the sorted image list cut into fixed-size chunks, one Parquet shard each.

Chunk ``i`` holds images ``i * shard_size`` … of the sorted list and its shard is named after its position
and the sha256 of its own paths (``part-00003-1a2b3c4d5e6f.parquet``). The same sources and shard size
always give the same chunks, so a rerun knows which shards are already written: that and the atomic
write of each shard (:mod:`vitedge.scale.shards`) make a job resumable with exactly one row per image.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from vitedge.errors import UsageError

DEFAULT_SHARD_SIZE = 1000
"""Images per Parquet shard: the unit of work a resumed job can skip (embeddings of ViT-B: ~3 MB per shard)."""


@dataclass(frozen=True)
class Chunk:
    """One shard's worth of images: its position, its content id and its paths (sorted)."""

    index: int
    digest: str
    paths: tuple[str, ...]

    @property
    def shard_name(self) -> str:
        return f"part-{self.index:05d}-{self.digest[:12]}.parquet"

    def __len__(self) -> int:
        return len(self.paths)


@dataclass(frozen=True)
class Plan:
    """The chunks of a job and the fingerprint of its whole image list."""

    chunks: tuple[Chunk, ...]
    fingerprint: str
    shard_size: int

    @property
    def images(self) -> int:
        return sum(len(chunk) for chunk in self.chunks)


def _digest(paths: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.encode("utf-8", "surrogateescape") + b"\n")
    return digest.hexdigest()


def make_plan(paths: Sequence[str], shard_size: int = DEFAULT_SHARD_SIZE) -> Plan:
    """Cut a sorted, deduplicated image list (:func:`~vitedge.scale.sources.resolve_sources`) into chunks.

    Raises:
        UsageError: ``shard_size`` below 1, or a list that is not sorted and unique.
    """
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise UsageError(f"shard size must be a positive whole number of images, got {shard_size!r}")
    if any(a >= b for a, b in zip(paths, paths[1:])):
        raise UsageError("the image list must be sorted and without duplicates", hint="build it with resolve_sources()")
    chunks = tuple(
        Chunk(index=position // shard_size, digest=_digest(paths[position:position + shard_size]),
              paths=tuple(paths[position:position + shard_size]))
        for position in range(0, len(paths), shard_size)
    )
    return Plan(chunks=chunks, fingerprint=_digest(paths), shard_size=shard_size)
