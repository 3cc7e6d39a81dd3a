"""Throughput and thread scaling in the published results: images/s per artifact at batch 1, 8 and 32, on 1 and 2 threads.

:mod:`vitedge.benchmarks.studies.publish` benchmarks one model once per thread count (runs titled by
:func:`run_title`, every artifact at :data:`BATCH_SIZES`); :func:`throughput_section` pivots those runs
into one table: a row per artifact, images/s per (threads, batch size), and the speed-up from the fewest to
the most threads at each batch size. Torch-free: results in, Markdown out.
"""

from __future__ import annotations

from collections.abc import Sequence

from vitedge.benchmarks.results import BenchRun
from vitedge.render import markdown_table

BATCH_SIZES = (1, 8, 32)
THREADS = (1, 2)
_MARK = ": throughput at "
#: Per format, the precisions a throughput table needs: fp32, bf16 where it exists, and its fastest int8 kind.
_INT8_KINDS = ("int8-dynamic", "int8-static")


def throughput_artifacts(formats) -> frozenset[str]:
    """The artifact folder names (``format-precision``) the throughput runs time: one fp32, bf16 and int8 per format.

    Every precision at three batch sizes and two thread counts would take hours on a small machine; the table is
    per format, so it times what a user picks there (the harness's main table has every precision at batch 1 and 8).
    """
    chosen = set()
    for fmt in formats:
        chosen |= {f"{fmt.name}-{name}" for name in ("fp32", "bf16", _int8_kind(fmt)) if name in fmt.precision_names}
    return frozenset(chosen)


def _int8_kind(fmt) -> str | None:
    """``fmt``'s fastest int8 precision (int8 activations and weights), None when it has none."""
    return next((kind for kind in _INT8_KINDS if kind in fmt.precision_names), None)


def int8_artifacts(formats) -> frozenset[str]:
    """The artifact folder names of each format's fastest int8 precision (the int8 head-to-head's)."""
    return frozenset(f"{fmt.name}-{kind}" for fmt in formats if (kind := _int8_kind(fmt)))


def run_title(model_title: str, threads: int) -> str:
    """The title of the throughput run of ``model_title`` at ``threads`` threads."""
    return f"{model_title}{_MARK}{threads} thread{'s' if threads != 1 else ''}"


def _groups(runs: Sequence[BenchRun]) -> dict[str, dict[int, BenchRun]]:
    """Model title → {threads: run} for the throughput runs among ``runs``."""
    groups: dict[str, dict[int, BenchRun]] = {}
    for run in runs:
        if _MARK in run.title:
            groups.setdefault(run.title.split(_MARK)[0], {})[run.settings.threads] = run
    return groups


def throughput_rows(by_threads: dict[int, BenchRun]) -> tuple[list[list[str]], list[str]]:
    """One row per artifact: images/s per (threads, batch) and the scaling from the fewest to the most threads."""
    threads = sorted(by_threads)
    batches = sorted({b for run in by_threads.values() for b in run.settings.batch_sizes})
    header = ["target"] + [f"{t} thr, b{b} img/s" for t in threads for b in batches]
    if len(threads) > 1:
        header += [f"b{b} {threads[-1]} vs {threads[0]} thr" for b in batches]
    names = list(dict.fromkeys(result.name for run in by_threads.values() for result in run.results if result.ok))
    rows = []
    for name in names:
        rate = {}
        for t in threads:
            result = next((r for r in by_threads[t].results if r.name == name and r.ok), None)
            for b in batches:
                entry = result.at_batch(b) if result else None
                rate[t, b] = entry.images_per_second if entry else None
        row = [name] + [f"{rate[t, b]:.1f}" if rate[t, b] else "-" for t in threads for b in batches]
        if len(threads) > 1:
            row += [f"{rate[threads[-1], b] / rate[threads[0], b]:.2f}x" if rate[threads[0], b] and rate[threads[-1], b]
                    else "-" for b in batches]
        rows.append(row)
    return rows, header


def throughput_section(runs: Sequence[BenchRun]) -> str:
    """Markdown: the throughput table of every model that has throughput runs ('' when none)."""
    lines = []
    for model_title, by_threads in _groups(runs).items():
        rows, header = throughput_rows(by_threads)
        any_run = next(iter(by_threads.values()))
        lines += [f"## Throughput and thread scaling: {model_title}", "",
                  f"Images per second (batch size / p50) on {any_run.machine.get('cpu', '?')}, each thread count its own "
                  f"run (`{any_run.command}`); the last columns: how much faster the most threads ran than the fewest.",
                  "", markdown_table(rows, header), ""]
    return "\n".join(lines)
