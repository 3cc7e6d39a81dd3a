"""Benchmark results as data: one :class:`BenchRun` per device and run, saved as JSON ``vitedge.bench/1``.

A results file holds a list of runs, so the file one device writes (``vitedge bench … --json``) and
the file that merges several devices (``vitedge report a.json b.json``) have the same shape::

    {"schema": "vitedge.bench/1", "runs": [{"device": "laptop", "machine": {...}, "results": [...]}, ...]}

Numpy only; no backend and no torch: reports are rendered anywhere.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from vitedge.benchmarks.latency import LatencyStats
from vitedge.errors import UsageError

SCHEMA_FAMILY = "vitedge.bench"
SCHEMA_VERSION = 1
SCHEMA = f"{SCHEMA_FAMILY}/{SCHEMA_VERSION}"
STATUSES = ("ok", "failed", "skipped")


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """The keys of ``data`` that ``cls`` has fields for (newer minor additions are ignored)."""
    names = {f.name for f in fields(cls)}
    return {key: value for key, value in data.items() if key in names}


@dataclass(frozen=True)
class BenchSettings:
    """How a run was timed: the same for every artifact in it.

    Attributes:
        threads: Threads each inference may use (pinned: backend option and OMP/MKL variables).
        batch_sizes: Batch sizes timed, in order.
        warmup: Untimed calls per batch size before timing, in every round.
        runs: Timed calls per batch size, in all rounds together.
        rounds: Fresh processes per artifact, interleaved (round 1 of every artifact, then round 2, …),
            so that a slow spell of the machine spreads over all artifacts instead of hitting one.
        timeout_s: Seconds one worker process may take before it counts as failed.
        run_on: Where artifacts whose format offers a choice run (:attr:`vitedge.formats.Format.devices`, e.g.
            OpenVINO's GPU); None: each backend's default. Other targets run where their backend runs.
    """

    threads: int = 1
    batch_sizes: tuple[int, ...] = (1, 8)
    warmup: int = 3
    runs: int = 20
    rounds: int = 1
    timeout_s: float = 900.0
    run_on: str | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.threads < 1:
            problems.append(f"threads must be at least 1, got {self.threads}")
        if not self.batch_sizes or any(b < 1 for b in self.batch_sizes):
            problems.append(f"batch sizes must be positive integers, got {list(self.batch_sizes)}")
        if self.warmup < 0:
            problems.append(f"warmup must be 0 or more, got {self.warmup}")
        if self.rounds < 1:
            problems.append(f"rounds must be at least 1, got {self.rounds}")
        if self.runs < self.rounds:
            problems.append(f"runs ({self.runs}) must be at least rounds ({self.rounds})")
        if self.timeout_s <= 0:
            problems.append(f"timeout must be positive, got {self.timeout_s}")
        if problems:
            raise UsageError("invalid benchmark settings: " + "; ".join(problems))

    def runs_in_round(self, round_index: int) -> int:
        """Timed calls per batch size in round ``round_index`` (0-based): ``runs`` split evenly."""
        share, extra = divmod(self.runs, self.rounds)
        return share + (1 if round_index < extra else 0)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchSettings:
        values = _known(cls, data)
        values["batch_sizes"] = tuple(values.get("batch_sizes", (1,)))
        return cls(**values)


@dataclass(frozen=True)
class BatchLatency:
    """Latency at one batch size: statistics over the timed calls, and the calls themselves (ms)."""

    batch_size: int
    stats: LatencyStats
    samples_ms: tuple[float, ...] = ()

    @property
    def images_per_second(self) -> float:
        """Throughput at the median latency."""
        return self.batch_size * 1000.0 / self.stats.p50_ms if self.stats.p50_ms > 0 else float("inf")

    @classmethod
    def of(cls, batch_size: int, seconds: list[float]) -> BatchLatency:
        return cls(batch_size, LatencyStats.of(seconds), tuple(round(s * 1000, 4) for s in seconds))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BatchLatency:
        return cls(int(data["batch_size"]), LatencyStats(**data["stats"]), tuple(data.get("samples_ms", ())))


@dataclass(frozen=True)
class MemoryStats:
    """Resident memory of the worker process that ran the artifact (bytes).

    ``baseline`` is measured after the runtime and backend library are imported, before the model
    loads; ``peak`` is the high-water mark through loading and timed inference (VmHWM on Linux).
    """

    baseline_rss_bytes: int
    peak_rss_bytes: int

    @property
    def model_bytes(self) -> int:
        """What loading and running the model added on top of the baseline."""
        return max(0, self.peak_rss_bytes - self.baseline_rss_bytes)


@dataclass(frozen=True)
class AccuracyStats:
    """Accuracy against the data's labels and agreement with the reference, on ``samples`` images.

    A field is None when it could not be measured (no labels, no reference, classes that do not
    match); ``note`` says why.
    """

    samples: int
    top1: float | None = None
    top5: float | None = None
    reference: str | None = None
    top1_agreement: float | None = None
    mean_logits_cosine: float | None = None
    min_logits_cosine: float | None = None
    note: str = ""


@dataclass(frozen=True)
class BenchResult:
    """One row of a report: one artifact (or peer) measured on one device.

    Attributes:
        name: Display name (the artifact folder's name, or a peer's description).
        target: What was benchmarked: an artifact folder, or ``torch:MODEL``.
        status: ``ok``, ``failed`` (``error`` says why) or ``skipped`` (cannot run here).
        kind: ``artifact`` or ``peer`` (a baseline from outside vitedge's own conversions).
        model: The source model the artifact was converted from.
        weights: ``pretrained``, ``trained``, ``random-init``, … (from the manifest).
        cold_load_ms: A fresh process importing the backend, checking the files and loading the
            model (median over rounds); ``load_parts_ms`` splits it (import, checksum, load).
        first_inference_ms: The first batch-1 call after loading (median over rounds).
        selfcheck: The artifact's self-check on this device (``present``, ``ok``, ``preprocessing`` and
            ``model`` verdicts: :mod:`vitedge.runtime.selfcheck`); None for peers and older results files.
    """

    name: str
    target: str
    status: str
    error: str | None = None
    kind: str = "artifact"
    model: str | None = None
    weights: str | None = None
    format: str | None = None
    precision: str | None = None
    backend: str | None = None
    backend_version: str | None = None
    size_bytes: int | None = None
    cold_load_ms: float | None = None
    load_parts_ms: dict[str, float] = field(default_factory=dict)
    first_inference_ms: float | None = None
    latency: tuple[BatchLatency, ...] = ()
    memory: MemoryStats | None = None
    accuracy: AccuracyStats | None = None
    note: str = ""
    selfcheck: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def at_batch(self, batch_size: int) -> BatchLatency | None:
        return next((entry for entry in self.latency if entry.batch_size == batch_size), None)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchResult:
        values = _known(cls, data)
        values["latency"] = tuple(BatchLatency.from_dict(entry) for entry in data.get("latency", ()))
        if data.get("memory") is not None:
            values["memory"] = MemoryStats(**_known(MemoryStats, data["memory"]))
        if data.get("accuracy") is not None:
            values["accuracy"] = AccuracyStats(**_known(AccuracyStats, data["accuracy"]))
        return cls(**values)


@dataclass(frozen=True)
class DataInfo:
    """The images a run measured accuracy on."""

    description: str
    samples: int
    labelled: bool
    class_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class BenchRun:
    """Everything one ``vitedge bench`` measured on one device.

    ``title`` names what was compared (e.g. "ViT-B/16-224"); runs of several devices with the same
    title are compared side by side in a merged report.
    """

    device: str
    created: str
    vitedge_version: str
    machine: dict[str, Any]
    settings: BenchSettings
    data: DataInfo | None
    reference: str | None
    results: tuple[BenchResult, ...]
    command: str = ""
    title: str = ""

    @property
    def heading(self) -> str:
        return f"{self.title} on {self.device}" if self.title else self.device

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchRun:
        values = _known(cls, data)
        values["settings"] = BenchSettings.from_dict(data["settings"])
        if data.get("data") is not None:
            info = _known(DataInfo, data["data"])
            values["data"] = DataInfo(**{**info, "class_names": tuple(info.get("class_names", ()))})
        values["results"] = tuple(BenchResult.from_dict(row) for row in data["results"])
        return cls(**values)


def save_runs(runs: list[BenchRun] | tuple[BenchRun, ...], path: str | os.PathLike) -> Path:
    """Write runs as one ``vitedge.bench/1`` JSON file (parent folders are created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"schema": SCHEMA, "runs": [run.to_dict() for run in runs]}
    path.write_text(json.dumps(document, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    return path


def load_runs(path: str | os.PathLike) -> list[BenchRun]:
    """Read the runs of one results file, checking its schema.

    Raises:
        UsageError: The file is missing, not JSON, of another schema, newer than this vitedge, or malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such results file", hint="write one with vitedge bench … --json FILE")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UsageError(f"{path}: not valid JSON ({error})") from error
    schema = document.get("schema") if isinstance(document, dict) else None
    family, _, version = str(schema).partition("/")
    if family != SCHEMA_FAMILY or not version.isdigit():
        raise UsageError(f"{path}: not a vitedge benchmark results file (schema {schema!r})", hint=f"expected {SCHEMA!r}")
    if int(version) > SCHEMA_VERSION:
        raise UsageError(f"{path}: results schema {schema!r} is newer than this vitedge reads ({SCHEMA!r})",
                         hint="upgrade vitedge: pip install -U vitedge")
    try:
        return [BenchRun.from_dict(run) for run in document["runs"]]
    except (KeyError, TypeError, ValueError) as error:
        raise UsageError(f"{path}: malformed results ({type(error).__name__}: {error})") from error


def merge_runs(paths: list[str | os.PathLike]) -> list[BenchRun]:
    """The runs of several results files, in the order given (one report for many devices)."""
    if not paths:
        raise UsageError("no results files given", hint="pass the JSON files vitedge bench --json wrote")
    return [run for path in paths for run in load_runs(path)]
