"""What the CPU can do for int8 inference: the instruction sets that decide how to quantize.

int8 matrix products are fast where the CPU multiplies int8 in hardware (x86 AVX512-VNNI or
AVX-VNNI, ARM dot-product / i8mm); on plain AVX2 onnxruntime's int8 kernels need uint8
activations with "reduce range" weights to avoid overflow, and may not beat fp32 at all
(onnxruntime issues 17389, 6695). Torch free; reads /proc/cpuinfo on Linux.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path


@dataclass(frozen=True)
class CpuFeatures:
    """The int8-relevant instruction sets of this machine."""

    machine: str
    flags: frozenset[str]

    @property
    def vnni(self) -> bool:
        """x86 with int8 dot products in hardware (AVX512-VNNI or AVX-VNNI)."""
        return bool({"avx512_vnni", "avx_vnni", "avx512vnni"} & self.flags)

    @property
    def arm_dotprod(self) -> bool:
        return bool({"asimddp", "i8mm"} & self.flags) or (self.machine in ("arm64", "aarch64") and platform.system() == "Darwin")

    @property
    def fast_int8(self) -> bool:
        """Whether int8 GEMMs are expected to beat fp32 here."""
        return self.vnni or self.arm_dotprod

    @property
    def summary(self) -> str:
        interesting = sorted(self.flags & {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm", "asimdhp"})
        return f"{self.machine}: " + (", ".join(interesting) or "no SIMD int8 extensions found")


@lru_cache(maxsize=1)
def cpu_features() -> CpuFeatures:
    """This machine's features (cached)."""
    flags: set[str] = set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("flags", "Features"):
                flags.update(value.split())
                break
    return CpuFeatures(machine=platform.machine().lower(), flags=frozenset(flags))


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask (a container's or taskset's limit), else all of them."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
