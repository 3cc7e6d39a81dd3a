"""Part 2 of the family study: latency, size and peak memory of edge-sized models of every family.

The presets have the published architectures with random weights (latency work; their top-1 means
nothing). Each is converted to the cells the registry claims for its family (fp32 and the format's
first int8 precision by default; every precision with ``every_precision``), cached under the work
folder, and timed with the benchmark harness at batch 1: a fresh process per artifact, rounds
interleaved, PyTorch eager fp32 of the same preset in the same run as the baseline.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vitedge.benchmarks.bench import BenchTarget, run_bench
from vitedge.benchmarks.results import BenchResult, BenchRun, BenchSettings
from vitedge.benchmarks.studies.families_matrix import (
    Cell,
    artifact_target,
    convert_cell,
    family_cells,
)
from vitedge.formats import FAMILIES

TORCH_ROW = "PyTorch eager fp32"


@dataclass(frozen=True)
class EdgeModel:
    """A model of part 2: a title for people and the preset it is built from."""

    title: str
    preset: str
    note: str = ""

    @property
    def family(self) -> str:
        from vitedge.converters.presets import get_preset

        return get_preset(self.preset).model_type


EDGE_MODELS: tuple[EdgeModel, ...] = (
    EdgeModel("DeiT-Tiny", "vit-tiny-patch16-224", "facebook/deit-tiny-patch16-224 is a ViT of this size"),
    EdgeModel("DeiT-Small", "vit-small-patch16-224", "facebook/deit-small-patch16-224 is a ViT of this size"),
    EdgeModel("MobileViT-S", "mobilevit-small"),
    EdgeModel("MobileViT V2 1.0", "mobilevitv2-1.0-256"),
    EdgeModel("Swin-T", "swin-tiny-patch4-window7-224"),
    EdgeModel("DINOv2-S", "dinov2-small", "preprocessed to 224x224 (its processor's crop)"),
    EdgeModel("BEiT-B", "beit-base-patch16-224"),
    EdgeModel("ViT-B", "vit-base-patch16-224"),
)


def quick_models(families: list[str]) -> tuple[EdgeModel, ...]:
    """The tiny test presets of ``families``: the smoke test's stand-ins."""
    return tuple(EdgeModel(f"{FAMILIES[family]} tiny", f"{family}-tiny-test", "a test preset") for family in families)


def latency_settings(threads: int, *, quick: bool) -> BenchSettings:
    """Batch 1 at ``threads`` pinned threads; 3 interleaved rounds of 20 timed calls (1 round of 3 when quick)."""
    return BenchSettings(threads=threads, batch_sizes=(1,), warmup=1 if quick else 5, runs=3 if quick else 60,
                         rounds=1 if quick else 3, timeout_s=3600)


def build_model(model: EdgeModel, work: Path, *, formats: list[str] | None, every_precision: bool, fresh: bool,
                say: Callable[[str], None]) -> tuple[list[Cell], list[BenchTarget | BenchResult]]:
    """The model's cells, and a target per converted artifact (a failed row where the conversion failed)."""
    from vitedge.converters import load_source

    cells = family_cells(model.family, formats, every_precision=every_precision)
    say(f"{model.title}: loading preset:{model.preset}")
    source = load_source(f"preset:{model.preset}")
    slots: list[BenchTarget | BenchResult] = []
    for item in (entry for entry in cells if entry.converts):
        built = convert_cell(source, item, work / model.preset / item.name, fresh=fresh, say=say)
        slots.append(artifact_target(item.name, built) if isinstance(built, Path) else BenchResult(
            name=item.name, target="-", status="failed", error=f"conversion failed: {built}",
            model=f"preset:{model.preset}", format=item.format, precision=item.precision))
    return cells, slots


def measure_model(model: EdgeModel, slots: list[BenchTarget | BenchResult], settings: BenchSettings, *,
                  command: str) -> BenchRun:
    """Time the model's artifacts and its PyTorch eager baseline in one run; failed conversions stay rows."""
    torch = BenchTarget(f"torch:preset:{model.preset}", name=TORCH_ROW, kind="peer", note="the baseline")
    targets = [torch, *(slot for slot in slots if isinstance(slot, BenchTarget))]
    run = run_bench(targets, settings=settings, data=None, command=command, title=model.title)
    measured = iter(run.results[1:])
    results = (run.results[0], *(next(measured) if isinstance(slot, BenchTarget) else slot for slot in slots))
    return dataclasses.replace(run, results=results)
