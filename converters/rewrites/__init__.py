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
- :mod:`.patch_fold`: MobileViT V2's non-overlapping unfold/fold as reshapes (LiteRT, ONNX opset 17).
- :mod:`.window_attention`: Swin's and Swin V2's shifted-window masks and position bias tables, computed once.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

from torch import nn

from vitedge.converters.export_types import ExportedModel, ExportOptions
from vitedge.converters.loading import SourceModel
from vitedge.converters.rewrites import (
    broadcast_multiply,
    patch_fold,
    position_table,
    relative_position_index,
    window_attention,
)
from vitedge.converters.rewrites.patching import Patches

#: name -> apply(model, image_size, patches) -> how many modules it rewrote.
REWRITES: dict[str, Callable[[nn.Module, int, Patches], int]] = {
    position_table.NAME: position_table.apply,
    relative_position_index.NAME: relative_position_index.apply,
    broadcast_multiply.NAME: broadcast_multiply.apply,
    patch_fold.NAME: patch_fold.apply,
    window_attention.NAME: window_attention.apply,
}


def apply_rewrites(model: nn.Module, image_size: int, patches: Patches | None = None) -> tuple[str, ...]:
    """Apply every rewrite that finds something in ``model`` for ``image_size`` inputs, for good (a copy
    that is thrown away after export) or until ``patches.undo()``; returns the names of those applied.
    Modules already rewritten (e.g. copied from a rewritten model) are left as they are."""
    patches = patches if patches is not None else Patches()
    return tuple(name for name, rewrite in REWRITES.items() if rewrite(model, image_size, patches))


@contextlib.contextmanager
def export_rewrites(model: nn.Module, image_size: int) -> Iterator[tuple[str, ...]]:
    """Rewrite ``model`` for the block; yields the names of the rewrites applied."""
    patches = Patches()
    try:
        yield apply_rewrites(model, image_size, patches)
    finally:
        patches.undo()


def rewritten_export(exporter: Callable[[SourceModel, Path, ExportOptions], ExportedModel], source: SourceModel,
                     workdir: Path, options: ExportOptions) -> ExportedModel:
    """``exporter(source, workdir, options)`` with the rewrites on ``source.model``; the ExportedModel's
    recipe names them."""
    with export_rewrites(source.model, source.image_size) as applied:
        exported = exporter(source, workdir, options)
    if not applied:
        return exported
    return dataclasses.replace(exported, recipe={**exported.recipe, "rewrites": list(applied)})
