"""Resident memory of this process: now, and its high-water mark. Standard library (psutil if present)."""

from __future__ import annotations

import sys
from pathlib import Path

_STATUS = Path("/proc/self/status")


def _status_kib(key: str) -> int | None:
    """A ``kB`` field of /proc/self/status (Linux, Android), in bytes."""
    if not _STATUS.exists():
        return None
    for line in _STATUS.read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return None


def peak_rss_bytes() -> int:
    """The most resident memory this process has used so far (VmHWM; ru_maxrss elsewhere)."""
    peak = _status_kib("VmHWM")
    if peak is not None:
        return peak
    try:
        import resource
    except ImportError:  # Windows
        return current_rss_bytes()
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024  # bytes on macOS, KiB elsewhere


def current_rss_bytes() -> int:
    """Resident memory now (VmRSS; psutil elsewhere, 0 when neither is available)."""
    current = _status_kib("VmRSS")
    if current is not None:
        return current
    try:
        import psutil
    except ImportError:
        return 0
    return int(psutil.Process().memory_info().rss)
