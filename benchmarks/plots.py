"""The report's charts, per source model: accuracy vs latency (Pareto front), size, latency distributions.

Drawn with matplotlib and inlined as SVG (:mod:`vitedge.figures`). Rows of several devices (merged
runs) share a chart, coloured by device. Points are told apart by their marker and the legend beside
the plot, never by labels next to them (nearby points with the same accuracy made those overlap).
Each function returns an SVG string, or None when there is nothing to draw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath

import numpy as np

from vitedge.benchmarks.results import BenchResult, BenchRun
from vitedge.figures import color, marker, new_figure, to_svg, wrapped

#: Use a log scale when the values span more than this factor.
LOG_SPAN = 30


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


def _log_if_wide(axis_setter, values: Sequence[float]) -> None:
    positive = [v for v in values if v > 0]
    if positive and max(positive) / min(positive) > LOG_SPAN:
        axis_setter("log")


def _legend_beside(ax, handles) -> None:
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)


def pareto_chart(model: str, entries: Sequence[Entry], batch_size: int = 1) -> str | None:
    """Accuracy (or agreement) against p50 latency, with each device's Pareto front."""
    from matplotlib.lines import Line2D

    metric = _accuracy_metric(entries)
    if metric is None:
        return None
    name, axis_label = metric
    points = [(e, e.row.at_batch(batch_size).stats.p50_ms, 100 * getattr(e.row.accuracy, name))
              for e in entries if e.row.ok and e.row.at_batch(batch_size) and e.row.accuracy
              and getattr(e.row.accuracy, name) is not None]
    if not points:
        return None
    devices = dict.fromkeys(e.device for e, _, _ in points)
    several = len(devices) > 1
    labels = list(dict.fromkeys(e.label for e, _, _ in points))
    figure = new_figure(7.2, 4.2)
    ax = figure.add_subplot()
    for device in devices:
        front = pareto_front([(x, y) for e, x, y in points if e.device == device])
        ax.step([x for x, _ in front], [y for _, y in front], where="post", color=color(device), linestyle="--",
                linewidth=1, alpha=0.7)
    tooltips = {}
    for index, (e, x, y) in enumerate(points):
        fill = color(e.device) if several else color(labels.index(e.label))
        (line,) = ax.plot([x], [y], linestyle="none", marker=marker(labels.index(e.label)), markersize=8,
                          color=fill, markeredgecolor="#333", markeredgewidth=0.6)
        line.set_gid(f"point-{index}")
        tooltips[f"point-{index}"] = f"{e.label} @ {e.run.device}: {x:.2f} ms, {y:.1f}%"
    _log_if_wide(ax.set_xscale, [x for _, x, _ in points])
    ax.set_xlabel(f"p50 latency at batch {batch_size} (ms)")
    ax.set_ylabel(axis_label)
    ax.set_title(wrapped(f"{model}: accuracy vs latency"), fontsize=11)
    ax.grid(True, alpha=0.3)
    gray = "#bbbbbb"
    handles = [Line2D([], [], linestyle="none", marker=marker(i), color=gray if several else color(i),
                      markeredgecolor="#333", label=label) for i, label in enumerate(labels)]
    if several:
        names = {e.device: e.run.device for e, _, _ in points}
        handles += [Line2D([], [], color=color(d), linestyle="--", label=f"{names[d]} (front)") for d in devices]
    _legend_beside(ax, handles)
    return to_svg(figure, css_class="plot plot-pareto", title=f"{model}: accuracy vs latency", tooltips=tooltips,
                  key=f"pareto-{model}")


def size_chart(model: str, entries: Sequence[Entry]) -> str | None:
    """File size per artifact (each artifact once, whichever device measured it)."""
    from matplotlib.patches import Patch

    rows: dict[str, BenchResult] = {}
    for e in entries:
        if e.row.size_bytes and e.label not in rows:
            rows[e.label] = e.row
    if not rows:
        return None
    formats = list(dict.fromkeys(row.format or "?" for row in rows.values()))
    names = list(rows)
    sizes = [rows[name].size_bytes / 1e6 for name in names]
    figure = new_figure(7.2, 1.2 + 0.32 * len(names))
    ax = figure.add_subplot()
    bars = ax.barh(range(len(names)), sizes, color=[color(formats.index(rows[n].format or "?")) for n in names])
    tooltips = {}
    for index, (bar, name, size) in enumerate(zip(bars, names, sizes)):
        bar.set_gid(f"bar-{index}")
        tooltips[f"bar-{index}"] = f"{name}: {size:.2f} MB"
    ax.bar_label(bars, labels=[f"{size:.1f} MB" for size in sizes], padding=3, fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, max(sizes) * 1.2)
    ax.set_xlabel("size (MB)")
    ax.set_title(wrapped(f"{model}: size per artifact"), fontsize=11)
    _legend_beside(ax, [Patch(color=color(i), label=fmt) for i, fmt in enumerate(formats)])
    return to_svg(figure, css_class="plot plot-size", title=f"{model}: size per artifact", tooltips=tooltips,
                  key=f"size-{model}")


def _box_stats(row: BenchResult, batch_size: int, label: str) -> tuple[dict, list[float]]:
    """matplotlib ``bxp`` stats (1-99% whiskers, 25-75% box, median) in ms, and the samples."""
    entry = row.at_batch(batch_size)
    samples = list(entry.samples_ms)
    if samples:
        low, q1, median, q3, high = (float(v) for v in np.percentile(samples, [1, 25, 50, 75, 99]))
    else:  # a file without samples: what the percentiles tell
        stats = entry.stats
        low, q1, median, q3, high = stats.min_ms, stats.p50_ms, stats.p50_ms, stats.p90_ms, stats.p99_ms
    return {"label": label, "whislo": low, "q1": q1, "med": median, "q3": q3, "whishi": high, "fliers": []}, samples


def latency_chart(model: str, entries: Sequence[Entry], batch_size: int) -> str | None:
    """Per artifact (and device), the timed calls at ``batch_size``: dots, 25-75% box, 1-99% whiskers."""
    timed = [e for e in entries if e.row.ok and e.row.at_batch(batch_size)]
    if not timed:
        return None
    several = len({e.device for e in timed}) > 1
    names = [f"{e.label} @ {e.run.device}" if several else e.label for e in timed]
    boxes = [_box_stats(e.row, batch_size, name) for e, name in zip(timed, names)]
    figure = new_figure(7.2, 1.2 + 0.4 * len(timed))
    ax = figure.add_subplot()
    drawn = ax.bxp([stats for stats, _ in boxes], orientation="horizontal", showfliers=False, patch_artist=True,
                   widths=0.5, medianprops={"color": "#000", "linewidth": 1.5})
    jitter = np.random.default_rng(0)
    tooltips = {}
    for index, (e, (stats, samples), box) in enumerate(zip(timed, boxes, drawn["boxes"])):
        box.set_facecolor(color(e.device))
        box.set_alpha(0.55)
        box.set_gid(f"box-{index}")
        tooltips[f"box-{index}"] = (f"{names[index]}: p50 {stats['med']:.2f} ms, 25-75% {stats['q1']:.2f}-"
                                    f"{stats['q3']:.2f} ms")
        if samples:
            ax.scatter(samples, index + 1 + jitter.uniform(-0.25, 0.25, len(samples)), s=4, alpha=0.35,
                       color=color(e.device), linewidths=0)
    _log_if_wide(ax.set_xscale, [v for stats, _ in boxes for v in (stats["whislo"], stats["whishi"])])
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=8)
    ax.set_xlabel(f"latency per call at batch {batch_size} (ms)")
    ax.set_title(wrapped(f"{model}: latency distribution, batch {batch_size}"), fontsize=11)
    ax.grid(True, axis="x", alpha=0.3)
    return to_svg(figure, css_class="plot plot-latency", title=f"{model}: latency distribution, batch {batch_size}",
                  tooltips=tooltips, key=f"latency-{model}-{batch_size}")


def all_charts(runs: Sequence[BenchRun]) -> list[tuple[str, list[str]]]:
    """(model, its charts) for every model in the runs, charts in a fixed order."""
    batch_sizes = sorted({entry.batch_size for run in runs for row in run.results for entry in row.latency})
    sections = []
    for model, entries in by_model(runs).items():
        charts = [pareto_chart(model, entries, batch_sizes[0] if batch_sizes else 1), size_chart(model, entries)]
        charts += [latency_chart(model, entries, batch) for batch in batch_sizes]
        sections.append((model, [chart for chart in charts if chart]))
    return sections

