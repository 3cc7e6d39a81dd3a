"""What machine a benchmark ran on: CPU model, cores, instruction sets, OS, library versions."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path

from vitedge.runtime.cpu_features import usable_cpus

INTERESTING_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "f16c", "fma", "asimddp", "i8mm", "asimdhp")


def _cpuinfo() -> dict[str, str]:
    path = Path("/proc/cpuinfo")
    info: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    return info


DEFAULT_PACKAGES = ("numpy", "pillow", "onnxruntime", "ai-edge-litert", "tflite-runtime", "coremltools", "torch",
                    "transformers", "litert-torch")


def machine_info(packages: tuple[str, ...] = DEFAULT_PACKAGES) -> dict:
    """A JSON-able description of this machine and the libraries that matter for timings.

    Library versions come from the installed distributions' metadata: nothing is imported.
    """
    cpu = _cpuinfo()
    flags = set((cpu.get("flags") or cpu.get("Features") or "").split())
    versions = {}
    for package in packages:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return {
        "cpu": cpu.get("model name") or platform.processor() or platform.machine(),
        "board": cpu.get("Model"),  # e.g. "Raspberry Pi 5 Model B Rev 1.0"; None on PCs
        "machine": platform.machine(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable_cpus(),
        "instruction_sets": sorted(flag for flag in INTERESTING_FLAGS if flag in flags),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "packages": versions,
    }
