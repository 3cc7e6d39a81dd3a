"""Export-time rewrites: the same math, in a form every exporter lowers, applied for the length of an export.

Some families compute at run time what a fixed-size export makes constant, or spell an op in a way an
edge converter cannot lower. Each rewrite here changes one such spot on the model's own module
instances (never transformers' classes), keeps transformers' numerics, and is taken off again when
the export ends. :func:`vitedge.converters.pipeline.convert` applies them around every format's
exporter (:func:`rewritten_export`), and the manifest's recipe lists those applied under ``rewrites``.

- :mod:`.position_table`: DINOv2's position embeddings interpolated once, at the export size.
- :mod:`.relative_position_index`: BEiT's relative position bias without its in-place index building.
- :mod:`.broadcast_multiply`: MobileViT V2's attention multiply broadcast implicitly (litert-torch).
- :mod:`.patch_fold`: MobileViT V2's non-overlapping unfold/fold as reshapes (LiteRT, ONNX opset 17).
- :mod:`.window_attention`: Swin's and Swin V2's shifted-window masks and position bias tables, computed once.
"""

from __future__ import annotations

from typing import Any

#: The package imports without torch (a base install imports every package); the API lives in :mod:`.apply`.
_API = ("REWRITES", "apply_rewrites", "export_rewrites", "rewritten_export")


def __getattr__(name: str) -> Any:
    if name in _API:
        from vitedge.converters.rewrites import apply

        return getattr(apply, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
