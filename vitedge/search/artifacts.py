"""Which artifact made a set of vectors, and the error for vectors of two different artifacts."""

from __future__ import annotations

from typing import Any

from vitedge.errors import VitedgeError


class ArtifactMismatchError(VitedgeError):
    """Vectors from another artifact than the index's (another model or precision)."""


def describe_artifact(artifact: dict[str, Any]) -> str:
    """``onnx fp32 artifact of MODEL (sha256 0123456789ab)``."""
    return (f"{artifact.get('format')} {artifact.get('precision')} artifact of {artifact.get('model')} "
            f"(sha256 {str(artifact.get('sha256'))[:12]})")
