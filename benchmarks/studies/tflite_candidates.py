"""One TFLite artifact per candidate quantization recipe, for the recipe benchmarks to compare.

Each candidate is exported with :func:`vitedge.converters.tflite.export.export_with_recipe` into a
folder of its own with its manifest (no validation: the benchmarks measure instead), and opened
with the runtime's :class:`~vitedge.runtime.backends.tflite.TFLiteBackend`.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vitedge.benchmarks.results_file import emit
from vitedge.converters.export_types import ExportOptions
from vitedge.converters.loading import SourceModel
from vitedge.converters.stages import describe
from vitedge.converters.tflite.export import export_with_recipe
from vitedge.converters.tflite.quantize import CHOSEN, RECIPES, TFLiteRecipe
from vitedge.errors import VitedgeError
from vitedge.formats import get_format
from vitedge.runtime.backends.tflite import TFLiteBackend
from vitedge.runtime.manifest import Manifest


@dataclass(frozen=True)
class Candidate:
    """A candidate recipe's artifact, or why it could not be built."""

    recipe: TFLiteRecipe
    folder: Path
    manifest: Manifest | None
    export_seconds: float
    error: str | None = None

    @property
    def chosen(self) -> bool:
        return CHOSEN[self.recipe.precision].recipe == self.recipe.name

    @property
    def used_for(self) -> str:
        """A report cell: the precision in bold when this recipe is the one its precision uses, else '-'."""
        return f"**{self.recipe.precision}**" if self.chosen else "-"

    @property
    def size_bytes(self) -> int:
        return sum(entry.bytes for entry in self.manifest.files) if self.manifest else 0

    def open(self, num_threads: int) -> TFLiteBackend:
        return TFLiteBackend(self.folder / self.manifest.model_file, self.manifest, num_threads=num_threads)

    def sample_input(self, seed: int = 0) -> np.ndarray:
        """A random batch of one in the artifact's input layout (pixels 0..255 for a uint8 input)."""
        rng = np.random.default_rng(seed)
        shape = self.manifest.input.shape
        if self.manifest.preprocess.normalization_in_model:
            return rng.integers(0, 256, shape).astype(np.float32)
        return rng.uniform(-1, 1, shape).astype(np.float32)


def build_candidates(
    source: SourceModel,
    workdir: Path,
    recipes: Iterable[TFLiteRecipe],
    options: ExportOptions | None = None,
    echo: Callable[[str], None] = print,
) -> list[Candidate]:
    """Export ``source`` once per recipe into ``workdir/<recipe name>``; a failed export is a row, not a crash."""
    fmt = get_format("tflite")
    candidates = []
    for recipe in recipes:
        folder = workdir / recipe.name
        folder.mkdir(parents=True, exist_ok=True)
        export_options = dataclasses.replace(options or ExportOptions(), precision=recipe.precision)
        echo(f"exporting {recipe.name} ({recipe.precision}) …")
        started = time.perf_counter()
        try:
            exported = export_with_recipe(source, folder, export_options, recipe)
        except VitedgeError as error:
            candidates.append(Candidate(recipe, folder, None, time.perf_counter() - started, str(error)))
            echo(f"    failed: {error}")
            continue
        seconds = time.perf_counter() - started
        manifest = describe(fmt, recipe.precision, folder, exported, source)
        manifest.write(folder)
        candidates.append(Candidate(recipe, folder, manifest, seconds))
        echo(f"    {seconds:.0f} s, {manifest.files[0].bytes / 1e6:.1f} MB")
    return candidates


def candidates_parser(description: str) -> argparse.ArgumentParser:
    """The options both recipe benchmarks take: ``--recipes``, ``--threads``, ``--out``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated recipe names (default: all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="write the Markdown report here (default: print it)")
    return parser


def publish(lines: list[str], out: Path | None, module: str) -> None:
    """Print the report, with the command that reproduces it, and write it to ``out`` when given."""
    emit("\n".join([*lines, f"Reproduce: `python -m {module} " + " ".join(sys.argv[1:]) + "`", ""]), out)
