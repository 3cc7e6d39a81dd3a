"""The benchmark run: every target in fresh worker processes, round by round, then one row each.

    >>> from vitedge.benchmarks.bench import BenchTarget, run_bench
    >>> run = run_bench([BenchTarget("artifacts/vit-b16")], settings=BenchSettings(threads=4), data=None)

Order of work: the reference's logits first (its own worker, untimed; or reused from the
reference's row when it is benchmarked too), then ``settings.rounds`` rounds, each running every
target once, so slow spells of a shared machine spread over all targets. Per target, the rounds'
timed calls are pooled into one latency distribution; load times are the median over rounds and
memory the largest peak. A target that fails is a failed row; one that cannot run on this machine
(a Core ML artifact on Linux, a backend not installed) is a skipped row that says why.
"""

from __future__ import annotations

import datetime as _dt
import platform
import shlex
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vitedge._version import __version__
from vitedge.benchmarks.accuracy import ReferenceOutputs, measure_accuracy
from vitedge.benchmarks.bench_data import BenchData
from vitedge.benchmarks.machine import machine_info
from vitedge.benchmarks.progress import Progress
from vitedge.benchmarks.results import BatchLatency, BenchResult, BenchRun, BenchSettings, MemoryStats
from vitedge.benchmarks.runner import WorkerJob, WorkerOutcome, run_worker
from vitedge.benchmarks.targets import TORCH_PREFIX, is_torch_spec, reference_spec
from vitedge.errors import VitedgeError
from vitedge.runtime.cpu_features import usable_cpus


@dataclass(frozen=True)
class BenchTarget:
    """Something to benchmark.

    Attributes:
        spec: An artifact folder, or ``torch:MODEL`` (PyTorch eager fp32; needs vitedge[convert]).
        name: The row's name (default: the folder's name, or "PyTorch eager fp32 (MODEL)").
        kind: ``artifact`` or ``peer`` (a baseline made outside vitedge's conversions).
        note: A remark shown with the row (how a peer was made).
    """

    spec: str
    name: str = ""
    kind: str = "artifact"
    note: str = ""

    @property
    def display_name(self) -> str:
        if self.name:
            return self.name
        if is_torch_spec(self.spec):
            return f"PyTorch eager fp32 ({self.spec.removeprefix(TORCH_PREFIX)})"
        return Path(self.spec).name or self.spec

    @property
    def identity(self) -> str:
        """The same string for two specs that name the same thing."""
        return self.spec if is_torch_spec(self.spec) else str(Path(self.spec).resolve())


def default_threads() -> int:
    """The CPUs this process may use: what ``--threads`` pins when not given."""
    return usable_cpus()


def _manifest_fields(target: BenchTarget) -> tuple[dict[str, Any], str | None, str | None]:
    """(row fields from the manifest, why it cannot run here or None, manifest error or None)."""
    if is_torch_spec(target.spec):
        import importlib.util

        missing = importlib.util.find_spec("torch") is None
        return {"format": "pytorch", "precision": "fp32"}, ("torch is not installed: pip install 'vitedge[convert]'"
                                                              if missing else None), None
    from vitedge.formats import FORMATS
    from vitedge.runtime.manifest import read_manifest

    try:
        manifest = read_manifest(target.spec)
    except VitedgeError as error:
        return {}, None, str(error)
    fields = {"format": manifest.format, "precision": manifest.precision, "model": manifest.source.model,
              "weights": manifest.source.weights, "size_bytes": sum(entry.bytes for entry in manifest.files)}
    fmt = FORMATS[manifest.format]
    if not fmt.backend_supported_here():
        return fields, f"{fmt.title} runs only on {', '.join(fmt.runtime_systems)}, not {platform.system()}", None
    if not fmt.backend_installed():
        return fields, f"{' or '.join(fmt.backend_modules)} not installed: pip install 'vitedge[{fmt.install_extra}]'", None
    return fields, None, None


def _row(target: BenchTarget, status: str, fields: dict[str, Any], **values: Any) -> BenchResult:
    return BenchResult(name=target.display_name, target=target.spec, status=status, kind=target.kind,
                       note=target.note, **{**fields, **values})


def combine(
    target: BenchTarget,
    outcomes: Sequence[WorkerOutcome],
    fields: dict[str, Any],
    settings: BenchSettings,
    data: BenchData | None,
    reference: ReferenceOutputs | None,
) -> BenchResult:
    """One row from a target's rounds: pooled latency, median load times, largest memory peak, accuracy."""
    failed = next((outcome for outcome in outcomes if not outcome.ok), None)
    if failed is not None:
        status = "skipped" if failed.error_type == "BackendUnavailableError" else "failed"
        return _row(target, status, fields, error=failed.error)
    info = dict(outcomes[0].data["info"])
    labels = info.pop("labels")
    parts = {name: statistics.median(o.data["load_parts_ms"][name] for o in outcomes)
             for name in outcomes[0].data["load_parts_ms"]}
    loads = [sum(o.data["load_parts_ms"].values()) for o in outcomes]
    latency = tuple(
        BatchLatency.of(batch, [s for o in outcomes for s in o.data["latency_s"][str(batch)]])
        for batch in settings.batch_sizes
    )
    memory = MemoryStats(
        baseline_rss_bytes=int(statistics.median(o.data["memory"]["baseline_rss_bytes"] for o in outcomes)),
        peak_rss_bytes=max(o.data["memory"]["peak_rss_bytes"] for o in outcomes),
    )
    accuracy = None
    if data is not None and outcomes[0].outputs is not None:
        accuracy = measure_accuracy(outcomes[0].outputs, labels, data, reference)
    return _row(
        target, "ok", {**fields, **info}, cold_load_ms=statistics.median(loads), load_parts_ms=parts,
        first_inference_ms=statistics.median(o.data["first_inference_ms"] for o in outcomes),
        latency=latency, memory=memory, accuracy=accuracy, selfcheck=outcomes[0].data.get("selfcheck"),
    )


def run_bench(
    targets: Sequence[BenchTarget],
    *,
    settings: BenchSettings,
    data: BenchData | None,
    reference: str | ReferenceOutputs | None = None,
    device: str | None = None,
    progress: Progress | None = None,
    command: str | None = None,
    title: str = "",
) -> BenchRun:
    """Benchmark ``targets`` on this machine.

    Args:
        targets: What to measure, in report order.
        settings: Threads, batch sizes, warm-up, runs, rounds, timeout.
        data: Images for accuracy and timing inputs (None: timing on noise, no accuracy).
        reference: An artifact folder or a model (hub id, HF folder, ``preset:NAME``, ``torch:MODEL``)
            whose logits the others are compared with, or its logits on ``data`` already computed.
        device: A name for this machine in merged reports (default: its host name).
        progress: Where to show progress (default: none).
        command: The command line to record (default: this process's).
        title: What the run compares (merged reports put runs of one title side by side).

    Returns:
        The run: machine, settings, data, and one row per target in the given order.
    """
    plan = _plan(targets, reference, data)
    progress = progress or Progress(1, enabled=False)
    progress.total = max(1, settings.rounds * len(plan.runnable) + int(plan.separate_reference))
    outcomes, reference_outputs = _run_rounds(targets, plan, settings, data, progress)
    if plan.reuse is not None and data is not None:
        first = outcomes[plan.reuse][0]
        reference_outputs = ReferenceOutputs(plan.reference.display_name, first.outputs, first.error)
    results = [_result(target, plan.checked[i], outcomes.get(i, []), settings, data, reference_outputs)
               for i, target in enumerate(targets)]
    return BenchRun(
        device=device or platform.node() or "this machine",
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        vitedge_version=__version__,
        machine=machine_info(),
        settings=settings,
        data=data.info() if data is not None else None,
        reference=plan.reference.display_name if plan.reference else (plan.given.name if plan.given else None),
        results=tuple(results),
        command=command if command is not None else shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        title=title,
    )


@dataclass(frozen=True)
class _Plan:
    """What a run does: each target's manifest check, which targets run, where reference logits come from.

    Attributes:
        checked: Per target, :func:`_manifest_fields`'s (fields, why skipped, manifest error).
        runnable: Indices of the targets that run.
        reference: The reference target (None: no reference, or reference logits given).
        reuse: Index of the runnable target that is the reference, whose first round gives its logits.
        separate_reference: Whether the reference runs in a worker of its own (untimed).
        given: Reference logits computed before the run.
    """

    checked: list[tuple[dict[str, Any], str | None, str | None]]
    runnable: list[int]
    reference: BenchTarget | None
    reuse: int | None
    separate_reference: bool
    given: ReferenceOutputs | None


def _plan(targets: Sequence[BenchTarget], reference: str | ReferenceOutputs | None, data: BenchData | None) -> _Plan:
    checked = [_manifest_fields(target) for target in targets]
    runnable = [i for i, (_, skip, error) in enumerate(checked) if skip is None and error is None]
    ref_target = BenchTarget(reference_spec(reference)) if isinstance(reference, str) else None
    reuse = next((i for i in runnable if ref_target and targets[i].identity == ref_target.identity), None)
    if reuse is not None:
        ref_target = targets[reuse]  # its row's name names the reference
    return _Plan(checked, runnable, ref_target, reuse,
                 separate_reference=ref_target is not None and reuse is None and data is not None,
                 given=reference if isinstance(reference, ReferenceOutputs) else None)


def _run_rounds(
    targets: Sequence[BenchTarget], plan: _Plan, settings: BenchSettings, data: BenchData | None, progress: Progress,
) -> tuple[dict[int, list[WorkerOutcome]], ReferenceOutputs | None]:
    """The workers: the separate reference's (untimed) first, then round after round of every runnable target.

    A target that failed in one round is not run again. Returns each runnable target's outcomes and
    the reference logits (the given ones, or those of the separate reference).
    """
    outcomes: dict[int, list[WorkerOutcome]] = {i: [] for i in plan.runnable}
    reference_outputs = plan.given
    with tempfile.TemporaryDirectory(prefix="vitedge-bench-") as workdir:
        images_file = data.write_list(Path(workdir) / "images.txt") if data is not None else None

        def job(spec: str, runs: int, outputs: bool, selfcheck: bool = False) -> WorkerJob:
            return WorkerJob(spec, settings.threads, settings.batch_sizes, settings.warmup if runs else 0, runs,
                             images_file, outputs, settings.timeout_s, selfcheck, settings.run_on)

        if plan.separate_reference:
            name = plan.reference.display_name
            progress.start(f"reference {name}: outputs (untimed)")
            outcome = run_worker(job(plan.reference.spec, 0, True))
            reference_outputs = ReferenceOutputs(name, outcome.outputs, outcome.error)
            progress.finish(None if outcome.ok else f"reference {name}: FAILED {outcome.error}")
        for round_index in range(settings.rounds):
            for i in plan.runnable:
                if outcomes[i] and not outcomes[i][-1].ok:
                    progress.finish()
                    continue
                name = targets[i].display_name
                progress.start(f"{name}" + (f" (round {round_index + 1}/{settings.rounds})" if settings.rounds > 1 else ""))
                outcome = run_worker(job(targets[i].spec, settings.runs_in_round(round_index),
                                         round_index == 0 and data is not None, selfcheck=round_index == 0))
                outcomes[i].append(outcome)
                progress.finish(None if outcome.ok else f"{name}: FAILED {outcome.error}")
        progress.close()
    return outcomes, reference_outputs


def _result(
    target: BenchTarget,
    checked: tuple[dict[str, Any], str | None, str | None],
    outcomes: Sequence[WorkerOutcome],
    settings: BenchSettings,
    data: BenchData | None,
    reference: ReferenceOutputs | None,
) -> BenchResult:
    """A target's row: failed (bad manifest), skipped (cannot run here), or combined from its rounds."""
    fields, skip, error = checked
    if error is not None:
        return _row(target, "failed", fields, error=error)
    if skip is not None:
        return _row(target, "skipped", fields, error=skip)
    return combine(target, outcomes, fields, settings, data, reference)
