"""The torch-free runtime: numpy + pillow + one backend.

    >>> from vitedge.runtime import Classifier
    >>> clf = Classifier.open("artifacts/vit-b16")
    >>> clf.predict(["cat.jpg", "dog.png"], top_k=5)

This package never imports torch, transformers or jax (a test proves it).
"""

from vitedge.runtime.classifier import Classification, Classifier, Embeddings, Prediction
from vitedge.runtime.manifest import Manifest, read_manifest
from vitedge.runtime.preprocess_spec import PreprocessSpec

__all__ = ["Classification", "Classifier", "Embeddings", "Manifest", "Prediction", "PreprocessSpec", "read_manifest"]
