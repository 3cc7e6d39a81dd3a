"""Which artifacts the family study makes: the (format, precision) cells the registry claims for each family.

The registry (:mod:`vitedge.formats`) is read when the study runs, so a family another change adds to a
format is measured without editing the study. A cell is ``convert`` (the format claims the family in
``Format.families`` and nothing in ``Format.unsupported`` refuses it, or a refusal's ``unless`` names
export options under which it converts: those are used), ``refused`` (the op, from ``unsupported``) or
``untested`` (the format does not claim the family, but nothing refuses it: the study converts and measures it
too, and marks it). Conversions are cached: an artifact in the cell's
folder made from the same weights is reused.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from vitedge.benchmarks.bench import BenchTarget
from vitedge.errors import VitedgeError
from vitedge.formats import FAMILIES, FORMATS, Format

CONVERT, REFUSED, UNTESTED = "convert", "refused", "untested"


@dataclass(frozen=True)
class Cell:
    """One (family, format, precision) and what the registry says about it.

    Attributes:
        status: ``convert``, ``refused`` or ``untested``.
        options: Export options the registry names for this family (a refusal's ``unless``), as pairs.
        reason: Why it is refused (the op and what to do instead) or untested.
    """

    family: str
    format: str
    precision: str
    status: str
    options: tuple[tuple[str, Any], ...] = ()
    reason: str = ""

    @property
    def name(self) -> str:
        return f"{self.format}-{self.precision}"

    @property
    def converts(self) -> bool:
        """Whether the study makes it: claimed, or not claimed and not refused (its own validation judges it)."""
        return self.status in (CONVERT, UNTESTED)

    @property
    def options_text(self) -> str:
        """The options as CLI flags, e.g. ``--exporter dynamo --opset 18``."""
        return " ".join(f"--{key} {value}" for key, value in self.options)


def cell(fmt: Format, family: str, precision: str) -> Cell:
    """What the registry says about converting ``family`` to ``fmt`` at ``precision``."""
    refusals = [entry for entry in fmt.unsupported if entry.applies(family, precision)]
    options = {key: value for entry in refusals for key, value in entry.unless}
    if refusals:
        still = next((entry for entry in fmt.unsupported
                      if entry.applies(family, precision, SimpleNamespace(**options))), None)
        if still is not None or not options:
            entry = still or refusals[0]
            return Cell(family, fmt.name, precision, REFUSED, reason=f"{entry.op}; {entry.alternative}")
    if family not in fmt.families:
        return Cell(family, fmt.name, precision, UNTESTED,
                    reason=f"{fmt.title} does not claim {FAMILIES.get(family, family)} (vitedge formats --families)")
    return Cell(family, fmt.name, precision, CONVERT, options=tuple(options.items()))


def default_precisions(fmt: Format) -> tuple[str, ...]:
    """fp32 and the format's first int8 precision (its CPU default), as tests/test_families.py converts them."""
    first_int8 = next((name for name in fmt.precision_names if name.startswith("int8")), None)
    return ("fp32",) + ((first_int8,) if first_int8 else ())


def family_cells(
    family: str, formats: Sequence[str] | None = None, *, every_precision: bool = True
) -> list[Cell]:
    """Every cell of ``family``: each format (all, or ``formats``) at every precision or the default two."""
    chosen = [FORMATS[name] for name in formats] if formats else list(FORMATS.values())
    return [cell(fmt, family, precision) for fmt in chosen
            for precision in (fmt.precision_names if every_precision else default_precisions(fmt))]


def _current(folder: Path, source: Any) -> bool:
    """Whether ``folder`` holds a readable artifact converted from these very weights."""
    from vitedge.runtime.manifest import read_manifest

    try:
        return read_manifest(folder).source.weights_sha256 == source.info.weights_sha256
    except VitedgeError:
        return False


def convert_cell(source: Any, cell: Cell, out: Path, *, fresh: bool, validation_images: str | None = None,
                 say: Callable[[str], None] = print) -> Path | str:
    """The cell's artifact at ``out`` (converted unless one made from the same weights is there), or why it could not
    be made.

    An artifact that misses its precision's tolerance is kept (``accept_failed_validation``): its manifest
    says so, and the study shows it beside the measured accuracy.
    """
    from vitedge.converters import convert
    from vitedge.converters.export_types import ExportOptions

    if not fresh and _current(out, source):
        return out
    started = time.perf_counter()
    say(f"  {cell.family}: {cell.name}" + (f" ({cell.options_text})" if cell.options else ""))
    try:
        convert(source, to=cell.format, precision=cell.precision, out=out, overwrite=True, validation_samples=16,
                validation_images=validation_images, options=ExportOptions(**dict(cell.options)) if cell.options else None,
                accept_failed_validation=True)
    except Exception as error:  # a failure is a row of the report, not the end of the study
        message = " ".join(str(error).split())[:300]
        say(f"    failed: {message}")
        return message
    say(f"    ready ({time.perf_counter() - started:.0f} s)")
    return out


def artifact_target(name: str, folder: Path) -> BenchTarget:
    """A benchmark target for the artifact; its note says when the artifact missed its validation tolerance."""
    from vitedge.runtime.manifest import read_manifest

    validation = read_manifest(folder).validation
    failed = validation is not None and not validation.passed
    return BenchTarget(str(folder), name=name, note="validation failed: " + "; ".join(validation.failures) if failed else "")
