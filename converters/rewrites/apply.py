"""Applying the rewrites: for an export (:func:`rewritten_export`), a block, or for good."""

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
