"""The report's charts, per source model: accuracy vs latency (Pareto front), size, latency distributions.

Rows of several devices (merged runs) share a chart, coloured by device. Each function returns an
SVG string (see :mod:`vitedge.benchmarks.svg`), or None when there is nothing to draw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath

import numpy as np

from vitedge.benchmarks.results import BenchResult, BenchRun
from vitedge.benchmarks.svg import Axis, Chart, color


@dataclass(frozen=True)
class Entry:
    """A row of a run, with the index of its device (its colour)."""

    device: int
    run: BenchRun
    row: BenchResult

    @property
    def label(self) -> str:
        return self.row.name


def by_model(runs: Sequence[BenchRun]) -> dict[str, list[Entry]]:
    """Rows grouped by their run's title, else by the model they were converted from; first-seen order."""
    groups: dict[str, list[Entry]] = {}
    for device, run in enumerate(runs):
        for row in run.results:
            groups.setdefault(run.title or short_model_name(row.model), []).append(Entry(device, run, row))
    return groups


def short_model_name(model: str | None) -> str:
    """A heading for a model: a hub id or preset as it is; a local path by its last two folders."""
    if not model:
        return "unknown model"
    parts = PurePath(model).parts
    if model.startswith(("/", ".", "~")) or len(parts) > 2:
        return "/".join(parts[-2:]) if len(parts) > 1 else model
    return model


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both counts (lower x, higher y), by increasing x."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or y > front[-1][1]:
            front.append((x, y))
    return front


def _accuracy_metric(entries: Sequence[Entry]) -> tuple[str, str] | None:
    def has(name: str) -> bool:
        return any(e.row.accuracy and getattr(e.row.accuracy, name) is not None for e in entries)

    if has("top1"):
        return "top1", "top-1 accuracy (%)"
    if has("top1_agreement"):
        return "top1_agreement", "top-1 agreement with the reference (%)"
    return None


def _devices(entries: Sequence[Entry]) -> list[tuple[str, str]]:
    seen = {e.device: e.run.device for e in entries}
    return [(name, color(index)) for index, name in sorted(seen.items())]


def pareto_chart(model: str, entries: Sequence[Entry], batch_size: int = 1) -> str | None:
    """Accuracy (or agreement) against p50 latency, with each device's Pareto front."""
    metric = _accuracy_metric(entries)
    if metric is None:
        return None
    name, axis_label = metric
    points = [(e, e.row.at_batch(batch_size).stats.p50_ms, 100 * getattr(e.row.accuracy, name))
              for e in entries if e.row.ok and e.row.at_batch(batch_size) and e.row.accuracy
              and getattr(e.row.accuracy, name) is not None]
    if not points:
        return None
    chart = Chart(x=Axis.fit([p[1] for p in points], label=f"p50 latency at batch {batch_size} (ms)"),
                  y=Axis.fit([p[2] for p in points], label=axis_label),
                  title=f"{model}: accuracy vs latency", css_class="plot plot-pareto")
    for device in dict.fromkeys(e.device for e, _, _ in points):
        front = pareto_front([(x, y) for e, x, y in points if e.device == device])
        steps = [pair for (x0, y0), (x1, _) in zip(front, front[1:]) for pair in ((x0, y0), (x1, y0))] + front[-1:]
        chart.polyline(steps, color(device), dash="5 4")
    for e, x, y in points:
        chart.point(x, y, color(e.device), f"{e.label} @ {e.run.device}: {x:.2f} ms, {y:.1f}%")
        chart.label(x, y, e.label, size=10)
    if len(_devices(entries)) > 1:
        chart.legend(_devices(entries))
    return chart.render()


def size_chart(model: str, entries: Sequence[Entry]) -> str | None:
    """File size per artifact (each artifact once, whichever device measured it)."""
    rows: dict[str, BenchResult] = {}
    for e in entries:
        if e.row.size_bytes and e.label not in rows:
            rows[e.label] = e.row
    if not rows:
        return None
    formats = list(dict.fromkeys(row.format or "?" for row in rows.values()))
    sizes = {name: row.size_bytes / 1e6 for name, row in rows.items()}
    chart = Chart(x=Axis.fit([0, *sizes.values()], label="size (MB)", log=False, zero=True, pad=0.2),
                  categories=list(rows), title=f"{model}: size per artifact", css_class="plot plot-size")
    for index, (name, row) in enumerate(rows.items()):
        fill = color(formats.index(row.format or "?"))
        chart.bar(0, sizes[name], index, fill, f"{name}: {sizes[name]:.2f} MB")
        chart.label(sizes[name], index, f"{sizes[name]:.1f} MB", dx=4, dy=4, size=10, flip=False)
    chart.legend([(fmt, color(i)) for i, fmt in enumerate(formats)])
    return chart.render()


def _quantiles(row: BenchResult, batch_size: int) -> tuple[list[float], float, float, float, float, float]:
    """(samples, low whisker, q1, median, q3, high whisker) in ms."""
    entry = row.at_batch(batch_size)
    samples = list(entry.samples_ms)
    if samples:
        low, q1, median, q3, high = np.percentile(samples, [1, 25, 50, 75, 99])
        return samples, float(low), float(q1), float(median), float(q3), float(high)
    stats = entry.stats  # a file without samples: what the percentiles tell
    return [], stats.min_ms, stats.p50_ms, stats.p50_ms, stats.p90_ms, stats.p99_ms


def latency_chart(model: str, entries: Sequence[Entry], batch_size: int) -> str | None:
    """Per artifact (and device), the timed calls at ``batch_size``: dots, 25-75% box, 1-99% whiskers."""
    timed = [e for e in entries if e.row.ok and e.row.at_batch(batch_size)]
    if not timed:
        return None
    several = len({e.device for e in timed}) > 1
    names = [f"{e.label} @ {e.run.device}" if several else e.label for e in timed]
    quantiles = [_quantiles(e.row, batch_size) for e in timed]
    values = [v for q in quantiles for v in (q[0] or q[1:])]
    chart = Chart(x=Axis.fit(values, label=f"latency per call at batch {batch_size} (ms)"), categories=names,
                  title=f"{model}: latency distribution, batch {batch_size}", css_class="plot plot-latency")
    jitter = np.random.default_rng(0)
    for row, (e, (samples, low, q1, median, q3, high)) in enumerate(zip(timed, quantiles)):
        fill = color(e.device)
        chart.polyline([(low, row), (high, row)], fill, width=1)
        chart.bar(q1, q3, row, fill, f"{names[row]}: p50 {median:.2f} ms, 25-75% {q1:.2f}-{q3:.2f} ms", thickness=0.5)
        chart.polyline([(median, row - 0.3), (median, row + 0.3)], "#000", width=2)
        for value in samples:
            chart.point(value, row + jitter.uniform(-0.3, 0.3), fill, f"{value:.2f} ms", radius=1.6, opacity=0.35)
    if several:
        chart.legend(_devices(timed))
    return chart.render()


def all_charts(runs: Sequence[BenchRun]) -> list[tuple[str, list[str]]]:
    """(model, its charts) for every model in the runs, charts in a fixed order."""
    batch_sizes = sorted({entry.batch_size for run in runs for row in run.results for entry in row.latency})
    sections = []
    for model, entries in by_model(runs).items():
        charts = [pareto_chart(model, entries, batch_sizes[0] if batch_sizes else 1), size_chart(model, entries)]
        charts += [latency_chart(model, entries, batch) for batch in batch_sizes]
        sections.append((model, [chart for chart in charts if chart]))
    return sections
