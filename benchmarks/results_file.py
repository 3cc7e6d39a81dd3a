"""What the published benchmark scripts share: the line saying where they measured, and writing the report.

Each study under ``benchmarks/studies/`` that writes ``benchmarks/results/*.md`` starts its report with
:func:`measured_on` and ends its ``main`` with :func:`emit`.
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path

from vitedge.benchmarks.machine import machine_info


def measured_on() -> str:
    """``Measured <date> on <cpu> (<n> logical CPUs, <instruction sets>), <os>; <library versions>.``"""
    machine = machine_info()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    busy = f" Load average at the start: {load:.1f} (above the core count means other work shared the CPU)." if load is not None else ""
    return (
        f"Measured {_dt.date.today().isoformat()} on {machine['cpu']} ({machine['logical_cpus']} logical CPUs, "
        f"{', '.join(machine['instruction_sets'])}), {machine['os']}; "
        + ", ".join(f"{name} {version}" for name, version in machine["packages"].items()) + "." + busy
    )


def emit(report: str, out: Path | None) -> None:
    """Write ``report`` to ``out`` (creating its folder) when given, and print it."""
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report)
    print(report)
