"""Similarity search over a job's embeddings with FAISS (``vitedge[search]``); torch-free.

    >>> from vitedge.search import build_index, open_index
    >>> build_index("embeddings/", "photos.index", kind="hnsw")
    >>> from vitedge.runtime import Classifier
    >>> hits = open_index("photos.index").search_images(["query.jpg"], Classifier.open("artifacts/vit-b16"), k=10)
    >>> [(hit.path, hit.score) for hit in hits[0]]

An index records the artifact that made its vectors and refuses queries (and inputs) of another one.
"""

from vitedge.search.faiss_index import KINDS, METRICS, IndexParams
from vitedge.search.index import ArtifactMismatchError, SearchHit, VectorIndex, build_index, open_index

__all__ = ["KINDS", "METRICS", "ArtifactMismatchError", "IndexParams", "SearchHit", "VectorIndex", "build_index", "open_index"]
