"""The quickstart's closing step: benchmark its artifacts and write ``report.html`` and ``report.md``.

Each artifact runs in a fresh worker process (latency at batch 1 and 8, load time, memory, top-1 on
the held-out images); the trained torch model, already in memory, gives the reference logits once,
outside every timing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vitedge.benchmarks import report_rows
from vitedge.benchmarks.results import BenchRun
from vitedge.render import table

REFERENCE_NAME = "PyTorch eager fp32 (the trained model)"
#: Held-out images the full quickstart's benchmark measures accuracy on (balanced across classes).
FULL_RUN_SAMPLES = 200


@dataclass(frozen=True)
class QuickstartBench:
    """Where the report went, and the run behind it."""

    html: Path
    markdown: Path
    json: Path
    run: BenchRun


def reference_logits(model, paths: list[str], spec, batch_size: int = 64) -> np.ndarray:
    """The torch model's logits on ``paths``, preprocessed by the runtime as the artifacts are."""
    import torch

    from vitedge.converters.adapters import TwoOutputClassifier
    from vitedge.runtime.images import load_rgb
    from vitedge.runtime.preprocess import preprocess_batch

    wrapper = TwoOutputClassifier(model).eval()
    parts = []
    with torch.inference_mode():
        for start in range(0, len(paths), batch_size):
            inputs = preprocess_batch([load_rgb(p) for p in paths[start : start + batch_size]], spec)
            parts.append(wrapper(torch.from_numpy(inputs))[0].float().numpy())
    return np.concatenate(parts)


def summary_lines(run: BenchRun) -> list[str]:
    """A short table for the terminal: latency, throughput, memory and accuracy per artifact."""
    header = ["artifact", "size", "p50 ms (batch 1)", "images/s (batch 8)", "peak RSS", "top-1", "agreement", ""]
    rows = []
    for row in run.results:
        one, eight = row.at_batch(1), row.at_batch(8)
        accuracy = row.accuracy
        rows.append([
            row.name, report_rows.size(row.size_bytes), report_rows.ms(one.stats.p50_ms if one else None),
            f"{eight.images_per_second:.0f}" if eight else "-",
            report_rows.size(row.memory.peak_rss_bytes) if row.memory else "-",
            report_rows.percent(accuracy and accuracy.top1), report_rows.percent(accuracy and accuracy.top1_agreement),
            "" if row.ok else report_rows.status_text(row, 80),
        ])
    return table(rows, header).splitlines()


def benchmark_quickstart(
    out: Path,
    artifacts: Mapping[str, Path],
    model,
    data_folder: Path,
    *,
    small: bool = False,
    echo: Callable[[str], None] = print,
) -> QuickstartBench:
    """Benchmark ``artifacts`` on the held-out images in ``data_folder``; write the reports into ``out``."""
    from vitedge.benchmarks.accuracy import ReferenceOutputs
    from vitedge.benchmarks.bench import BenchTarget, default_threads, run_bench
    from vitedge.benchmarks.bench_data import folder_data
    from vitedge.benchmarks.report import write_report
    from vitedge.benchmarks.results import BenchSettings, save_runs
    from vitedge.runtime.manifest import read_manifest

    data = folder_data(data_folder, samples=None if small else FULL_RUN_SAMPLES)
    spec = read_manifest(next(iter(artifacts.values()))).preprocess
    reference = ReferenceOutputs(REFERENCE_NAME, reference_logits(model, list(data.paths), spec))
    settings = BenchSettings(threads=default_threads(), batch_sizes=(1, 8), warmup=2, runs=8 if small else 20,
                             timeout_s=300)
    run = run_bench([BenchTarget(str(path), name=name) for name, path in artifacts.items()], settings=settings,
                    data=data, reference=reference, device="this machine", command="vitedge quickstart",
                    title="quickstart ViT (trained on shapes)")
    for line in summary_lines(run):
        echo(f"    {line}")
    return QuickstartBench(
        html=write_report([run], out / "report.html"), markdown=write_report([run], out / "report.md"),
        json=save_runs([run], out / "bench.json"), run=run,
    )
