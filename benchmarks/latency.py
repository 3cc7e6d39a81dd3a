"""Latency measurement: warm-up, many runs, medians and percentiles; interleaved for fair comparisons.

Timings on shared machines drift; comparing variants one after another lets the drift land on one
of them. :func:`interleaved` runs the candidates round-robin, so each sees the same conditions, and
ratios between them are what a report should quote.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class LatencyStats:
    """Milliseconds per call over ``runs`` timed calls."""

    runs: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float

    @classmethod
    def of(cls, seconds: list[float]) -> LatencyStats:
        ms = np.asarray(seconds) * 1000
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        return cls(len(ms), float(p50), float(p90), float(p99), float(ms.mean()), float(ms.min()))


def interleaved(
    candidates: Mapping[str, Callable[[], object]], *, warmup: int = 3, runs: int = 20
) -> dict[str, LatencyStats]:
    """Time each candidate ``runs`` times, round-robin, after ``warmup`` untimed calls each."""
    for function in candidates.values():
        for _ in range(warmup):
            function()
    seconds: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(runs):
        for name, function in candidates.items():
            start = time.perf_counter()
            function()
            seconds[name].append(time.perf_counter() - start)
    return {name: LatencyStats.of(values) for name, values in seconds.items()}


def ort_session(path: str | Path, threads: int, *, profile_prefix: str | None = None):
    """An onnxruntime CPU session pinned to ``threads`` intra-op threads (one inter-op), as benchmarks time it.

    ``profile_prefix``: turn onnxruntime's per-op profiler on, writing there (``session.end_profiling()``).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def in_blocks(
    candidates: Mapping[str, Callable[[], object]], *, rounds: int = 3, warmup: int = 2, runs: int = 10
) -> dict[str, LatencyStats]:
    """Time each candidate in blocks (``warmup`` untimed then ``runs`` timed calls), the blocks interleaved over ``rounds``.

    For candidates that own thread pools (several runtimes, or several onnxruntime sessions, each with its own
    pool): a pool keeps spinning for a while after its call, so alternating candidates call by call makes each
    pay for the previous one's spinning threads (measured on 2 cores: onnxruntime sessions ~15% slower, OpenVINO
    up to 3x). Rounds still spread a slow spell of the machine over all candidates.
    """
    seconds: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, function in candidates.items():
            for _ in range(warmup):
                function()
            for _ in range(runs):
                start = time.perf_counter()
                function()
                seconds[name].append(time.perf_counter() - start)
    return {name: LatencyStats.of(values) for name, values in seconds.items()}
