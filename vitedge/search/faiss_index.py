"""FAISS index kinds and their parameters: what each kind is, how it is built, searched, and tuned.

- ``flat``: exact search (every vector compared); the reference the others are measured against.
- ``hnsw``: a graph (HNSW, ``M`` links per node); fast and close to exact, the whole vectors in memory.
- ``ivf-pq``: an inverted file of ``nlist`` clusters, vectors compressed by product quantization
  (``pq_m`` sub-vectors of ``pq_bits`` bits); for collections that do not fit in memory uncompressed.

With ``cosine`` the vectors are L2-normalized and compared by inner product (score: cosine similarity,
higher is closer); with ``l2`` the score is the squared Euclidean distance (lower is closer).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from vitedge.errors import BackendUnavailableError, UsageError, did_you_mean

KINDS = ("flat", "hnsw", "ivf-pq")
METRICS = ("cosine", "l2")
SEARCH_INSTALL = "pip install 'vitedge[search]'"
#: k-means wants ~39 training points per centroid (faiss's own rule); fewer and it warns.
_POINTS_PER_CENTROID = 39
#: PQ codebooks are trained on the vectors themselves: at least this many per code. 8-bit codes on fewer than
#: 39 points each still found more true neighbours than 5-bit codes on 2,000 clustered 128-d vectors
#: (recall@10 0.43 vs 0.26 at pq_m 16; 0.66 vs 0.43 at pq_m 32), hence 4 rather than faiss's 39.
_MIN_POINTS_PER_CODE = 4
_KIND_PARAMETERS = {"flat": (), "hnsw": ("hnsw_m", "ef_construction", "ef_search"),
                    "ivf-pq": ("nlist", "nprobe", "pq_m", "pq_bits")}


def import_faiss():
    """faiss, or one line saying how to install it."""
    try:
        import faiss
    except ImportError as error:
        raise BackendUnavailableError("similarity search needs faiss, which is not installed", hint=SEARCH_INSTALL) from error
    return faiss


@dataclass(frozen=True)
class IndexParams:
    """How an index is built and searched; None fields are chosen from the data by :meth:`resolved`.

    Args:
        kind: ``flat``, ``hnsw`` or ``ivf-pq``.
        metric: ``cosine`` or ``l2``.
        hnsw_m: HNSW links per node.
        ef_construction: HNSW candidate list while building.
        ef_search: HNSW candidate list while searching (more: better recall, slower).
        nlist: IVF clusters (default ``4 * sqrt(N)``, at most N / 39).
        nprobe: IVF clusters searched per query (default min(nlist, 16)).
        pq_m: PQ sub-vectors (default: dimension / 4, or the largest divisor giving >= 4 dimensions each:
            a vector in pq_m bytes, 16x smaller than float32).
        pq_bits: bits per sub-vector code (default 8; fewer below ~1000 vectors, >= 4 training points per code).
    """

    kind: str = "flat"
    metric: str = "cosine"
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 64
    nlist: int | None = None
    nprobe: int | None = None
    pq_m: int | None = None
    pq_bits: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UsageError(f"unknown index kind {self.kind!r}{did_you_mean(self.kind, KINDS)}; choose one of {', '.join(KINDS)}")
        if self.metric not in METRICS:
            raise UsageError(f"unknown metric {self.metric!r}{did_you_mean(self.metric, METRICS)}; choose one of {', '.join(METRICS)}")
        for name in ("hnsw_m", "ef_construction", "ef_search", "nlist", "nprobe", "pq_m", "pq_bits"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise UsageError(f"{name} must be a positive whole number, got {value!r}")

    def resolved(self, count: int, dimension: int) -> IndexParams:
        """These parameters with the data-dependent ones chosen for ``count`` vectors of ``dimension``."""
        if self.kind != "ivf-pq":
            return self
        nlist = self.nlist or max(1, min(round(4 * math.sqrt(count)), count // _POINTS_PER_CENTROID))
        pq_m = self.pq_m or max([m for m in range(1, dimension + 1) if dimension % m == 0 and dimension // m >= 4] or [1])
        if dimension % pq_m:
            raise UsageError(f"pq_m {pq_m} must divide the vectors' dimension {dimension}")
        bits = self.pq_bits or min(8, max(4, int(math.log2(max(count / _MIN_POINTS_PER_CODE, 1)))))
        if count < max(nlist, 2 ** bits):
            raise UsageError(f"ivf-pq trains on the vectors and needs at least {max(nlist, 2 ** bits)} of them, got {count}",
                             hint="use --kind flat or hnsw for small collections")
        return replace(self, nlist=nlist, pq_m=pq_m, pq_bits=bits, nprobe=min(self.nprobe or 16, nlist))

    def to_dict(self) -> dict[str, Any]:
        """The kind, the metric and the kind's own parameters (what ``index.json`` records)."""
        values = asdict(self)
        return {key: values[key] for key in ("kind", "metric", *_KIND_PARAMETERS[self.kind]) if values[key] is not None}


def faiss_metric(faiss, metric: str) -> int:
    return faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2


def build_faiss_index(vectors: np.ndarray, params: IndexParams):
    """A trained, filled faiss index of ``vectors`` (already normalized for cosine)."""
    faiss = import_faiss()
    dimension = vectors.shape[1]
    factory = {"flat": "Flat", "hnsw": f"HNSW{params.hnsw_m}", "ivf-pq": f"IVF{params.nlist},PQ{params.pq_m}x{params.pq_bits}"}
    index = faiss.index_factory(dimension, factory[params.kind], faiss_metric(faiss, params.metric))
    inner = faiss.downcast_index(index)
    if params.kind == "hnsw":
        inner.hnsw.efConstruction = params.ef_construction
    if params.kind == "ivf-pq":  # quiet faiss's "please provide at least N training points" on small collections
        inner.cp.min_points_per_centroid = 1
        inner.pq.cp.min_points_per_centroid = 1
        # polysemous training orders the codes for Hamming-distance filtering, which search here does not use;
        # it took 90% of the build (50 of 56 s for 2,000 vectors of 128 dimensions)
        inner.do_polysemous_training = False
    if not index.is_trained:
        index.train(vectors)
    index.add(vectors)
    return index


def set_search_parameters(index, params: IndexParams) -> None:
    """nprobe (ivf-pq) or efSearch (hnsw), as the parameters say."""
    faiss = import_faiss()
    space = faiss.ParameterSpace()
    if params.kind == "ivf-pq" and params.nprobe:
        space.set_index_parameter(index, "nprobe", params.nprobe)
    if params.kind == "hnsw":
        space.set_index_parameter(index, "efSearch", params.ef_search)


def prepare_vectors(vectors: np.ndarray, metric: str) -> np.ndarray:
    """float32, C-contiguous, L2-normalized for cosine."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if metric == "cosine":
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.maximum(norms, 1e-12)
    return np.ascontiguousarray(vectors, dtype=np.float32)
