"""The tables of a benchmark report as rows of strings: one source for terminal, Markdown and HTML.

Latency ratios ("speed-up") compare rows of the same run at the same batch size against the run's
baseline: its reference when that was benchmarked too, else its first row that ran.
"""

from __future__ import annotations

from collections.abc import Sequence

from vitedge.benchmarks.results import BenchResult, BenchRun
from vitedge.render import human_bytes

Table = tuple[list[list[str]], list[str]]
ERROR_WIDTH = 140


def ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 1000 else f"{value:,.0f}"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def cosine(value: float | None) -> str:
    return "-" if value is None else f"{value:.5f}"


def size(value: int | None) -> str:
    return "-" if value is None else human_bytes(value)


def status_text(row: BenchResult, width: int | None = ERROR_WIDTH) -> str:
    if row.ok:
        return "ok"
    error = " ".join((row.error or "").split())
    if width is not None and len(error) > width:
        error = error[: width - 1] + "…"
    return f"{row.status.upper() if row.status == 'failed' else row.status}: {error}"


def selfcheck_text(row: BenchResult) -> str:
    """The self-check's verdict in a cell: ok, which stage differs, none (an artifact made before self-checks), or -."""
    check = row.selfcheck
    if not check:
        return "-"
    if not check.get("present"):
        return "none"
    failed = [stage for stage in ("preprocessing", "model") if check.get(stage, {}).get("status") == "failed"]
    if failed:
        return " and ".join(failed) + " differ" + ("" if len(failed) > 1 else "s")
    return "ok" if check.get("model", {}).get("status") == "passed" else "ok (model not checked)"


def baseline(run: BenchRun) -> BenchResult | None:
    """The row speed-ups are measured against (see the module docstring)."""
    ran = [row for row in run.results if row.ok and row.latency]
    return next((row for row in ran if row.name == run.reference), ran[0] if ran else None)


def summary_table(run: BenchRun) -> Table:
    """One row per artifact: what it is, load, memory, accuracy, status."""
    header = ["artifact", "format", "precision", "backend", "size", "cold load ms", "1st inference ms",
              "peak RSS", "top-1", "top-5", "agreement", "mean cosine", "self-check", "status"]
    rows = []
    for row in run.results:
        accuracy = row.accuracy
        backend = f"{row.backend} {row.backend_version}" if row.backend else "-"
        rows.append([
            row.name, row.format or "-", row.precision or "-", backend, size(row.size_bytes), ms(row.cold_load_ms),
            ms(row.first_inference_ms), size(row.memory.peak_rss_bytes) if row.memory else "-",
            percent(accuracy and accuracy.top1), percent(accuracy and accuracy.top5),
            percent(accuracy and accuracy.top1_agreement), cosine(accuracy and accuracy.mean_logits_cosine),
            selfcheck_text(row), status_text(row),
        ])
    return rows, header


def latency_table(run: BenchRun) -> Table:
    """One row per (artifact, batch size): percentiles, throughput, speed-up against the baseline."""
    base = baseline(run)
    header = ["artifact", "batch", "p50 ms", "p90 ms", "p99 ms", "images/s", f"speed-up vs {base.name if base else '-'}"]
    rows = []
    for row in run.results:
        for entry in row.latency:
            reference = base.at_batch(entry.batch_size) if base else None
            ratio = f"{reference.stats.p50_ms / entry.stats.p50_ms:.2f}x" if reference else "-"
            stats = entry.stats
            rows.append([row.name, str(entry.batch_size), ms(stats.p50_ms), ms(stats.p90_ms), ms(stats.p99_ms),
                         f"{entry.images_per_second:.1f}", ratio])
    return rows, header


def devices_table(runs: Sequence[BenchRun], batch_size: int = 1) -> Table:
    """Artifacts down, devices across: p50 latency (ms) at ``batch_size``; merged reports."""
    names: list[str] = []
    for run in runs:
        names += [row.name for row in run.results if row.name not in names]
    header = ["artifact"] + [f"{run.device} p50 ms (batch {batch_size})" for run in runs]
    rows = []
    for name in names:
        cells = [name]
        for run in runs:
            row = next((r for r in run.results if r.name == name), None)
            entry = row.at_batch(batch_size) if row else None
            cells.append(ms(entry.stats.p50_ms) if entry else ("-" if row is None or row.ok else row.status))
        rows.append(cells)
    return rows, header


def selfcheck_devices_table(runs: Sequence[BenchRun]) -> Table:
    """Artifacts down, devices across: each device's self-check verdict (merged reports: which device drifts)."""
    names: list[str] = []
    for run in runs:
        names += [row.name for row in run.results if row.name not in names]
    header = ["artifact"] + [f"{run.device} self-check" for run in runs]
    rows = []
    for name in names:
        found = [next((r for r in run.results if r.name == name), None) for run in runs]
        rows.append([name] + [selfcheck_text(row) if row else "-" for row in found])
    return rows, header


def comparable_groups(runs: Sequence[BenchRun]) -> list[tuple[str, list[BenchRun]]]:
    """Runs of the same title from two or more devices: the groups a devices table compares."""
    groups: dict[str, list[BenchRun]] = {}
    for run in runs:
        groups.setdefault(run.title, []).append(run)
    return [(title, group) for title, group in groups.items() if len({run.device for run in group}) > 1]


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def run_facts(run: BenchRun) -> list[tuple[str, str]]:
    """(label, text) pairs describing the machine and how the run was made."""
    machine = run.machine
    s = run.settings
    cpu = machine.get("cpu", "?") + (f" ({machine['board']})" if machine.get("board") else "")
    packages = ", ".join(f"{name} {version}" for name, version in machine.get("packages", {}).items())
    facts = [
        ("machine", f"{cpu}; {machine.get('logical_cpus')} logical CPUs ({machine.get('usable_cpus')} usable); "
                    f"{', '.join(machine.get('instruction_sets', [])) or 'no listed SIMD extensions'}"),
        ("system", f"{machine.get('os')}, {machine.get('machine')}, Python {machine.get('python')}"),
        ("libraries", packages or "-"),
        ("settings", f"{_count(s.threads, 'thread')} pinned; batch sizes {', '.join(map(str, s.batch_sizes))}; "
                     f"{_count(s.warmup, 'warm-up call')} then {_count(s.runs, 'timed call')} per batch size, over "
                     f"{_count(s.rounds, 'round')} of fresh processes"),
        ("data", run.data.description if run.data else "none (timing on noise, no accuracy)"),
        ("reference", run.reference or "none"),
        ("run", f"{run.created}, vitedge {run.vitedge_version}"),
    ]
    if run.command:
        facts.append(("command", run.command))
    return facts


def notes(run: BenchRun) -> list[str]:
    """Remarks: random weights (once), how peers were made, why accuracy is missing, full errors."""
    lines = []
    if any(row.weights == "random-init" for row in run.results):
        lines.append("random-init weights (an architecture preset): top-1 would mean nothing; agreement and logits "
                     "cosine with the reference show what each conversion changes")
    for row in run.results:
        remarks = [row.note] if row.note else []
        if row.accuracy and row.accuracy.note and row.weights != "random-init":
            remarks.append(row.accuracy.note)
        if not row.ok and row.error and len(row.error) > ERROR_WIDTH:
            remarks.append(f"{row.status}: {row.error}")
        check = row.selfcheck or {}
        remarks += [f"self-check {stage} parity failed: {check[stage].get('summary', '')}"
                    for stage in ("preprocessing", "model") if check.get(stage, {}).get("status") == "failed"]
        if remarks:
            lines.append(f"{row.name}: " + "; ".join(remarks))
    return lines
