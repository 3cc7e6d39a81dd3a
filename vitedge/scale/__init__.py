"""Bulk classification and embedding: Parquet shards from a local process or a Ray Data actor pool.

    >>> from vitedge.scale import run_job, read_embeddings
    >>> run_job("artifacts/vit-b16", "photos/", "embeddings/", engine="ray")   # resumable: rerun to finish
    >>> table = read_embeddings("embeddings/")                                  # paths, (N, D) vectors

Torch-free: the workers run the runtime's Classifier. Ray Data and pyarrow come with ``vitedge[scale]``.
"""

from vitedge.scale.engines import ENGINES, RayOptions
from vitedge.scale.job import JobResult, ShardWritten, run_job
from vitedge.scale.plan import DEFAULT_SHARD_SIZE
from vitedge.scale.results import EmbeddingTable, read_embeddings, read_job_table
from vitedge.scale.stages import artifact_sha256

__all__ = [
    "DEFAULT_SHARD_SIZE", "ENGINES", "EmbeddingTable", "JobResult", "RayOptions", "ShardWritten", "artifact_sha256",
    "read_embeddings", "read_job_table", "run_job",
]
