"""Run one worker process (:mod:`vitedge.benchmarks.worker`) and collect what it measured.

Whatever happens to the worker (an error it reports, a crash, the OOM killer, a hang past the
timeout), :func:`run_worker` returns a :class:`WorkerOutcome`; a failure becomes a failed row in
the report, never an exception that stops the run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Variables that size the thread pools of OpenMP, BLAS and friends: pinned to the benchmark's thread count.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                    "NUMEXPR_NUM_THREADS")


@dataclass(frozen=True)
class WorkerJob:
    """One worker invocation.

    Attributes:
        target: Artifact folder or ``torch:MODEL``.
        threads: Threads for inference.
        batch_sizes: Batch sizes to time.
        warmup: Untimed calls per batch size.
        runs: Timed calls per batch size; 0 computes outputs only (a reference).
        images_file: One image path per line (timing inputs and accuracy images).
        want_outputs: Also compute the logits of every image (outside the timed part).
        selfcheck: Also run the artifact's self-check (after the timings; once per target).
        timeout_s: Seconds before the worker is killed and the job counts as failed.
        run_on: Device for artifacts whose format offers a choice (None: the backend's default).
    """

    target: str
    threads: int
    batch_sizes: tuple[int, ...]
    warmup: int
    runs: int
    images_file: Path | None = None
    want_outputs: bool = False
    timeout_s: float = 900.0
    selfcheck: bool = False
    run_on: str | None = None

    def argv(self, result_file: Path, outputs_file: Path | None) -> list[str]:
        argv = [sys.executable, "-m", "vitedge.benchmarks.worker", self.target, "--result", str(result_file),
                "--threads", str(self.threads), "--batch-sizes", ",".join(map(str, self.batch_sizes)),
                "--warmup", str(self.warmup), "--runs", str(self.runs)]
        if self.images_file is not None:
            argv += ["--images", str(self.images_file)]
        if outputs_file is not None:
            argv += ["--outputs", str(outputs_file)]
        if self.selfcheck:
            argv.append("--selfcheck")
        if self.run_on is not None:
            argv += ["--run-on", self.run_on]
        return argv


@dataclass(frozen=True)
class WorkerOutcome:
    """What a worker reported: its JSON result and logits, or why it failed."""

    ok: bool
    data: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    error_type: str | None = None
    outputs: np.ndarray | None = None


def pinned_environment(threads: int) -> dict[str, str]:
    """This process's environment with every thread-pool variable set to ``threads``."""
    env = dict(os.environ)
    env.update({name: str(threads) for name in THREAD_VARIABLES})
    return env


def _crash_message(returncode: int, stderr: str) -> str:
    last = next((line.strip() for line in reversed(stderr.splitlines()) if line.strip()), "")
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        why = f"worker killed by {name}" + (" (out of memory?)" if name == "SIGKILL" else "")
    else:
        why = f"worker exited with code {returncode}"
    return f"{why}: {last[:300]}" if last else why


def run_worker(job: WorkerJob) -> WorkerOutcome:
    """Run ``job`` in a fresh Python process; never raises for what happens inside it."""
    with tempfile.TemporaryDirectory(prefix="vitedge-worker-") as folder:
        result_file = Path(folder) / "result.json"
        outputs_file = Path(folder) / "outputs.npy" if job.want_outputs else None
        try:
            done = subprocess.run(
                job.argv(result_file, outputs_file), env=pinned_environment(job.threads),
                capture_output=True, text=True, timeout=job.timeout_s,
            )
        except subprocess.TimeoutExpired:
            return WorkerOutcome(False, error=f"timed out after {job.timeout_s:.0f} s", error_type="Timeout")
        if not result_file.is_file():
            return WorkerOutcome(False, error=_crash_message(done.returncode, done.stderr), error_type="Crash")
        data = json.loads(result_file.read_text(encoding="utf-8"))
        if not data.get("ok"):
            return WorkerOutcome(False, data, error=data.get("error", "failed"), error_type=data.get("error_type"))
        outputs = np.load(outputs_file) if outputs_file is not None and outputs_file.is_file() else None
        return WorkerOutcome(True, data, outputs=outputs)
