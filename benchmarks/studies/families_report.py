"""The family study's Markdown: part 1 (accuracy per family, format and precision) and part 2 (latency, size and
memory per edge-sized model and format). Pure formatting of what the study measured; numpy-free."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vitedge.benchmarks.report_rows import ms, percent, size
from vitedge.benchmarks.results import BenchResult, BenchRun, BenchSettings
from vitedge.benchmarks.studies.families_matrix import CONVERT, REFUSED, Cell
from vitedge.formats import FAMILIES, FORMATS
from vitedge.render import markdown_table
from vitedge.runtime.preprocess_spec import PreprocessSpec


@dataclass(frozen=True)
class FamilyAccuracy:
    """Part 1 for one family: its model, how it trained, its cells and the measured run."""

    family: str
    preset: str
    preprocess: PreprocessSpec
    record: dict[str, Any]  # vitedge_training.json
    epochs: int  # epochs trained (metrics.jsonl)
    cells: list[Cell]
    run: BenchRun

    @property
    def parameters(self) -> int:
        return int(self.record.get("trainable_parameters", 0)) + int(self.record.get("frozen_parameters", 0))


@dataclass(frozen=True)
class ModelLatency:
    """Part 2 for one model: its title, preset, family, cells and the measured run."""

    title: str
    preset: str
    family: str
    note: str
    cells: list[Cell]
    run: BenchRun


def spec_text(spec: PreprocessSpec) -> str:
    """``shortest edge 96 bilinear, crop 64, 1/255, no mean/std, BGR``: a spec in one short line."""
    if spec.resize_mode == "exact":
        parts = [f"{spec.size[1]}x{spec.size[0]} {spec.resample}"]
    elif spec.resize_mode == "shortest_edge":
        parts = [f"shortest edge {spec.shortest_edge} {spec.resample}"]
    else:
        parts = ["no resize"]
    if spec.crop_size:
        parts.append(f"crop {spec.crop_size[1]}x{spec.crop_size[0]}")
    parts.append("1/255" if spec.rescale_factor and abs(spec.rescale_factor * 255 - 1) < 1e-9 else f"x{spec.rescale_factor}")
    if spec.mean is None:
        parts.append("no mean/std")
    elif set(spec.mean) == {0.5} and set(spec.std) == {0.5}:
        parts.append("mean = std = 0.5")
    else:
        parts.append("ImageNet mean/std" if spec.mean[0] == 0.485 else f"mean {spec.mean}, std {spec.std}")
    return ", ".join(parts + ([spec.channel_order] if spec.channel_order != "RGB" else []))


class _Notes:
    """Numbered footnotes of one table: the same text gets the same number."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def mark(self, text: str) -> str:
        if text not in self.texts:
            self.texts.append(text)
        return f"[{self.texts.index(text) + 1}]"

    def lines(self) -> list[str]:
        return [f"{number}. {text}" for number, text in enumerate(self.texts, 1)]


UNCLAIMED = ("not claimed by the registry (its tests' random-init models are too chaotic at this precision); "
             "`vitedge convert` converts it and its own validation judges it")


def _by_name(run: BenchRun) -> dict[str, BenchResult]:
    return {row.name: row for row in run.results}


def _accuracy_cell(item: Cell, row: BenchResult | None, notes: _Notes) -> str:
    if item.status == REFUSED:
        return "refused " + notes.mark(f"{FAMILIES[item.family]} at {item.precision}: {item.reason}")
    if not item.converts:
        return "-"
    if row is None or row.accuracy is None or row.accuracy.top1 is None:
        why = (row.error if row is not None else None) or "not measured"
        return "failed " + notes.mark(f"{FAMILIES[item.family]} {item.name}: {' '.join(why.split())[:300]}")
    accuracy = row.accuracy
    text = f"{accuracy.top1:.1%} ({percent(accuracy.top1_agreement)})"
    if accuracy.note.startswith("simulated"):
        text += " sim"
    if row.note.startswith("validation failed"):
        text += " ✗ " + notes.mark(f"{FAMILIES[item.family]} {item.name}: {row.note}")
    if item.status != CONVERT:
        text += " " + notes.mark(UNCLAIMED)
    return text + (f" {notes.mark(f'{FAMILIES[item.family]} {item.name} was converted with {item.options_text}')}"
                   if item.options else "")


def accuracy_models_table(families: Sequence[FamilyAccuracy]) -> list[str]:
    """Which model stands for each family, how it preprocesses, how its training went, its torch test top-1."""
    rows = []
    for entry in families:
        result = entry.record.get("result", {})
        torch_row = _by_name(entry.run).get("PyTorch fp32")
        top1 = torch_row.accuracy.top1 if torch_row is not None and torch_row.accuracy else None
        recipe = entry.record.get("recipe", {}).get("loop", {}).get("train", {})
        budget = recipe.get("max_seconds")
        rows.append([FAMILIES[entry.family], f"`{entry.preset}`", f"{entry.parameters / 1e6:.2f} M",
                     spec_text(entry.preprocess), f"{entry.epochs} of {recipe.get('epochs', '?')}",
                     str(result.get("stopped", "-")), f"{result.get('seconds', 0):.0f} of {budget:.0f}" if budget else
                     f"{result.get('seconds', 0):.0f}", str(recipe.get("num_threads", "-")),
                     percent(result.get("best_val_accuracy")), percent(top1)])
    header = ["family", "preset", "parameters", "preprocessing (the family's processor)", "epochs", "stopped",
              "training s (budget)", "threads", "best val top-1", "PyTorch fp32 test top-1"]
    return [markdown_table(rows, header), ""]


def accuracy_format_tables(families: Sequence[FamilyAccuracy]) -> list[str]:
    """One table per format: families down, the format's precisions across; top-1 (agreement with torch fp32)."""
    lines: list[str] = []
    for fmt in FORMATS.values():
        notes = _Notes()
        rows = []
        for entry in families:
            cells = {item.precision: item for item in entry.cells if item.format == fmt.name}
            if not cells:
                continue
            measured = _by_name(entry.run)
            torch_row = measured.get("PyTorch fp32")
            rows.append([FAMILIES[entry.family], percent(torch_row.accuracy.top1 if torch_row and torch_row.accuracy else None),
                         *(_accuracy_cell(cells[name], measured.get(cells[name].name), notes)
                           if name in cells else "-" for name in fmt.precision_names)])
        if rows:
            lines += [f"### {fmt.title}", "", markdown_table(rows, ["family", "PyTorch fp32", *fmt.precision_names]), ""]
            lines += notes.lines() + ([""] if notes.texts else [])
    return lines


def _row_latency(row: BenchResult) -> float | None:
    entry = row.at_batch(1)
    return entry.stats.p50_ms if row.ok and entry else None


def latency_matrix(models: Sequence[ModelLatency]) -> list[str]:
    """Models down, formats across: p50 ms at batch 1 of each measured precision (``-``: not measured)."""
    formats = [fmt for fmt in FORMATS.values() if any(item.format == fmt.name for m in models for item in m.cells)]
    rows = []
    for model in models:
        measured = _by_name(model.run)
        torch_row = measured.get("PyTorch eager fp32")
        row = [model.title, FAMILIES[model.family], ms(_row_latency(torch_row) if torch_row else None)]
        for fmt in formats:
            parts = [f"{item.precision} {ms(_row_latency(measured[item.name]))}"
                     + ("*" if item.status != CONVERT else "")
                     for item in model.cells if item.format == fmt.name and item.converts
                     and item.name in measured and _row_latency(measured[item.name]) is not None]
            refused = [item for item in model.cells if item.format == fmt.name and item.status == REFUSED]
            row.append(", ".join(parts) or ("refused" if refused else "-"))
        rows.append(row)
    return [markdown_table(rows, ["model", "family", "PyTorch eager fp32", *(f.title for f in formats)]), ""]


def latency_details(model: ModelLatency) -> list[str]:
    """One model's rows: latency, speed-up against PyTorch eager, size, peak memory, cold load; then what is missing."""
    measured = _by_name(model.run)
    base = _row_latency(measured["PyTorch eager fp32"]) if "PyTorch eager fp32" in measured else None
    rows = []
    for row in model.run.results:
        p50 = _row_latency(row)
        entry = row.at_batch(1)
        rows.append([row.name, ms(p50), ms(entry.stats.p90_ms if p50 is not None else None),
                     f"{base / p50:.2f}x" if base and p50 else "-", size(row.size_bytes),
                     size(row.memory.peak_rss_bytes) if row.memory else "-", ms(row.cold_load_ms),
                     "ok" if row.ok else f"{row.status}: {' '.join((row.error or '').split())[:160]}"])
    header = ["artifact", "p50 ms", "p90 ms", "speed-up vs eager", "size", "peak RSS", "cold load ms", "status"]
    missing = [f"- {item.name}: refused: {item.reason}" for item in model.cells if item.status == REFUSED]
    missing += [f"- {item.name}: measured, but {UNCLAIMED}" for item in model.cells if item.status not in (CONVERT, REFUSED)]
    note = f" ({model.note})" if model.note else ""
    return [f"### {model.title}: `preset:{model.preset}`{note}", "", markdown_table(rows, header), "", *missing,
            *([""] if missing else [])]


def settings_text(settings: BenchSettings) -> str:
    return (f"batch 1, {settings.threads} thread(s) pinned, {settings.warmup} warm-up call(s), {settings.runs} timed "
            f"call(s) in {settings.rounds} interleaved round(s) of fresh processes")
