"""The int8 head-to-head in the published results: vitedge's fastest int8 artifact against the fastest int8 peer.

Per run of :mod:`vitedge.benchmarks.studies.publish` that has int8 peers, one row across every format (vitedge's
fastest int8 artifact of any format against the fastest int8 peer of any format: what a user choosing the fastest
int8 model gets from each) and one row per format that has an int8 peer (onnx: vitedge's int8 against onnxruntime's
``quantize_dynamic`` defaults, …). Batch 1 p50 from the same run, so the ratio holds across machines where
milliseconds do not. Torch-free: results in, Markdown out.
"""

from __future__ import annotations

from collections.abc import Sequence

from vitedge.benchmarks.results import BenchResult, BenchRun
from vitedge.render import markdown_table

HEADER = ["run", "CPU", "formats", "fastest vitedge int8", "p50 ms", "fastest int8 peer", "p50 ms", "vitedge / peer"]


def _timed_int8(run: BenchRun) -> list[tuple[BenchResult, float]]:
    """The run's int8 results that were timed at batch 1, each with its p50."""
    timed = []
    for result in run.results:
        latency = result.at_batch(1) if result.ok and (result.precision or "").startswith("int8") else None
        if latency is not None:
            timed.append((result, latency.stats.p50_ms))
    return timed


def _fastest(timed: list[tuple[BenchResult, float]], kind: str, fmt: str | None) -> tuple[BenchResult, float] | None:
    """The ``kind`` (artifact | peer) result of format ``fmt`` (None: any) with the lowest p50."""
    chosen = [pair for pair in timed if pair[0].kind == kind and fmt in (None, pair[0].format)]
    return min(chosen, key=lambda pair: pair[1]) if chosen else None


def head_to_head_rows(run: BenchRun) -> list[list[str]]:
    """Every formats row, then one per format with an int8 peer; none when the run has no timed int8 peer."""
    timed = _timed_int8(run)
    peer_formats = sorted({result.format for result, _ in timed if result.kind == "peer"})
    rows = []
    for fmt in (None, *peer_formats):
        ours, theirs = _fastest(timed, "artifact", fmt), _fastest(timed, "peer", fmt)
        if ours and theirs:
            rows.append([run.heading, run.machine.get("cpu", "?"), fmt or "all", ours[0].name, f"{ours[1]:.1f}",
                         theirs[0].name, f"{theirs[1]:.1f}", f"{ours[1] / theirs[1]:.2f}x"])
    return rows


def head_to_head_section(runs: Sequence[BenchRun]) -> str:
    """Markdown: the head-to-head rows of every run ('' when no run has int8 peers)."""
    rows = [row for run in runs for row in head_to_head_rows(run)]
    if not rows:
        return ""
    return "\n".join([
        "## int8 head-to-head", "",
        "Batch 1, p50 from the run named (same rounds of fresh processes, same machine): vitedge's fastest int8 artifact "
        "against the fastest int8 peer that run measured, across all formats and per format (a run without OpenVINO or "
        "ExecuTorch peers compares only with the ones it has). Below 1.00x vitedge is faster; vitedge aims "
        "at 0.90x or less across formats and 0.85x or less for ONNX int8-dynamic against onnxruntime's defaults.", "",
        markdown_table(rows, HEADER), ""])
