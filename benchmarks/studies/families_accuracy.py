"""Part 1 of the family study: honest accuracy of every family after conversion.

Each family's ``<family>-mini`` preset (its ops at about the quickstart ViT's size) is trained with
``vitedge finetune`` on the built-in shapes dataset (train split; val split for the best epoch),
converted to every (format, precision) the registry claims for the family, and run on the held-out
test split with the benchmark harness (a fresh process per artifact; reference: the fine-tuned model
in PyTorch fp32). Core ML cannot run on Linux: its rows keep the harness's "skipped" and get the
top-1 of the torch simulation ``vitedge convert`` validates with (the package's own weights,
decompressed as Core ML does, in its compute precision), marked simulated.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vitedge.benchmarks.accuracy import ReferenceOutputs, measure_accuracy
from vitedge.benchmarks.bench import BenchTarget, run_bench
from vitedge.benchmarks.bench_data import BenchData, folder_data
from vitedge.benchmarks.results import BenchResult, BenchRun, BenchSettings
from vitedge.benchmarks.studies.families_matrix import (
    Cell,
    artifact_target,
    convert_cell,
    family_cells,
)
from vitedge.data.shapes import ShapesConfig, write_image_folder
from vitedge.formats import FAMILIES

TORCH_ROW = "PyTorch fp32"
SIMULATED_NOTE = "simulated in torch with the package's weights (Core ML cannot run here)"


@dataclass(frozen=True)
class AccuracyPlan:
    """The data, models and training of part 1 (the defaults: the quickstart's data and recipe)."""

    shapes: ShapesConfig = ShapesConfig(num_classes=10, difficulty=0.2, min_size=48, max_size=160, seed=0)
    train_per_class: int = 300
    val_per_class: int = 50
    test_per_class: int = 50
    preset_suffix: str = "mini"
    epochs: int = 8
    learning_rate: float = 1e-3
    #: A safety net per family on a slow or busy machine: the schedule anneals to the clock and stops.
    max_seconds: float = 300.0

    def preset(self, family: str) -> str:
        return f"preset:{family}-{self.preset_suffix}"


QUICK_ACCURACY = AccuracyPlan(shapes=ShapesConfig(num_classes=3, difficulty=0.0, min_size=32, max_size=48),
                              train_per_class=8, val_per_class=2, test_per_class=4, preset_suffix="tiny-test",
                              epochs=1, max_seconds=60.0)


def write_splits(plan: AccuracyPlan, work: Path) -> Path:
    """``work/data/{train,val,test}`` as ImageFolders (kept from an earlier run; written whole or not at all)."""
    data = work / "data"
    for split, count in (("train", plan.train_per_class), ("val", plan.val_per_class), ("test", plan.test_per_class)):
        if (data / split).is_dir():
            continue
        partial = data / f".partial-{split}"
        shutil.rmtree(partial, ignore_errors=True)
        write_image_folder(partial, split, count, plan.shapes)
        (partial / split).rename(data / split)
        partial.rmdir()
    return data


def train_family(family: str, plan: AccuracyPlan, data: Path, work: Path, *, threads: int, fresh: bool,
                 say: Callable[[str], None]) -> Path:
    """The family's mini preset fine-tuned with ``vitedge finetune`` (reused when done; resumed when interrupted)."""
    from vitedge.converters.training.finetune import finetune
    from vitedge.converters.training.loop import LoopConfig
    from vitedge.converters.training.recipe import TrainConfig
    from vitedge.converters.training.run import RunSetup, TrainingOptions

    out = work / "models" / family
    if not fresh and (out / "vitedge_training.json").is_file():
        return out
    say(f"{FAMILIES[family]}: fine-tuning {plan.preset(family)} on {data / 'train'}")
    recipe = TrainConfig(epochs=plan.epochs, batch_size=32, learning_rate=plan.learning_rate, weight_decay=0.05,
                         warmup_fraction=0.1, label_smoothing=0.1, seed=0, num_threads=threads,
                         max_seconds=plan.max_seconds)
    options = TrainingOptions(loop=LoopConfig(train=recipe, progress=False, device="cpu"))
    setup = RunSetup(val_data=data / "val", overwrite=True, resume=not fresh,
                     on_epoch=lambda record: say(f"  epoch {record.epoch}: loss {record.train_loss:.3f}, "
                                                 f"val {record.val_accuracy:.1%} ({record.seconds:.0f} s)"))
    finetune(plan.preset(family), data / "train", out, options, setup)
    return out


def training_record(model: Path) -> dict:
    """What ``vitedge finetune`` wrote about the run (``vitedge_training.json``)."""
    return json.loads((model / "vitedge_training.json").read_text(encoding="utf-8"))


def build_family(family: str, model: Path, work: Path, *, formats: list[str] | None, every_precision: bool = True,
                 fresh: bool, say: Callable[[str], None]) -> tuple[list[Cell], dict[str, Path | str]]:
    """The family's cells and, for each one to convert, its artifact folder or why it failed."""
    from vitedge.converters import load_source

    cells = family_cells(family, formats, every_precision=every_precision)
    source = load_source(str(model))
    built = {item.name: convert_cell(source, item, work / "artifacts" / family / item.name, fresh=fresh, say=say)
             for item in cells if item.converts}
    return cells, built


def measure_family(family: str, model: Path, built: dict[str, Path | str], data: Path, *, threads: int,
                   command: str) -> BenchRun:
    """Top-1 on the test split of the fine-tuned model (torch fp32) and of each artifact; failures are rows."""
    reference = f"torch:{model}"
    targets = [BenchTarget(reference, name=TORCH_ROW, kind="peer", note="the fine-tuned model; the reference")]
    targets += [artifact_target(name, folder) for name, folder in built.items() if isinstance(folder, Path)]
    test = folder_data(data / "test")
    settings = BenchSettings(threads=threads, batch_sizes=(1,), warmup=0, runs=1, rounds=1, timeout_s=3600)
    run = run_bench(targets, settings=settings, data=test, reference=reference, command=command,
                    title=f"{FAMILIES[family]} accuracy")
    failed = tuple(BenchResult(name=name, target="-", status="failed", error=f"conversion failed: {error}",
                               model=str(model), format=name.split("-")[0], precision=name.split("-", 1)[1])
                   for name, error in built.items() if isinstance(error, str))
    results = tuple(_with_simulation(row, model, test) for row in run.results) + failed
    return dataclasses.replace(run, results=results)


@functools.lru_cache(maxsize=1)
def _source(model: str):
    from vitedge.converters import load_source

    return load_source(model)


def _with_simulation(row: BenchResult, model: Path, data: BenchData) -> BenchResult:
    """A Core ML row the harness skipped (no Core ML here), with the simulated accuracy."""
    if row.status != "skipped" or row.format != "coreml":
        return row
    from vitedge.converters.coreml.simulate import simulated_outputs
    from vitedge.converters.validate import torch_outputs
    from vitedge.runtime.images import load_rgb
    from vitedge.runtime.manifest import read_manifest
    from vitedge.runtime.preprocess import preprocess_batch

    folder = Path(row.target)
    manifest = read_manifest(folder)
    source = _source(str(model))
    images = [load_rgb(path) for path in data.paths]
    logits = simulated_outputs(folder, manifest, source, preprocess_batch(images, manifest.preprocess))["logits"]
    reference = torch_outputs(source, preprocess_batch(images, source.preprocess))["logits"]
    labels = [manifest.labels.get(index, f"LABEL_{index}") for index in range(logits.shape[1])]
    stats = measure_accuracy(logits, labels, data, ReferenceOutputs(TORCH_ROW, reference))
    return dataclasses.replace(row, accuracy=dataclasses.replace(stats, note=SIMULATED_NOTE))
