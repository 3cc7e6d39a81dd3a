"""A progress bar on stderr for long benchmark runs (no dependency): one line, redrawn in a terminal.

Off a terminal (a CI log, a pipe) each step is its own line, so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Counts steps out of ``total`` and shows the one under way.

    Args:
        total: How many steps the run has.
        stream: Where to draw (default stderr).
        enabled: False draws nothing (``--quiet``; library use).
    """

    def __init__(self, total: int, *, stream: TextIO | None = None, enabled: bool = True, width: int = 24) -> None:
        self.total = max(total, 1)
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.width = width
        self.done = 0
        self._started = time.monotonic()
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._drawn = False

    def _line(self, label: str) -> str:
        filled = round(self.width * self.done / self.total)
        elapsed = int(time.monotonic() - self._started)
        return (f"[{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total} "
                f"{elapsed // 60}:{elapsed % 60:02d}  {label}")

    def start(self, label: str) -> None:
        """A step begins: show it."""
        if not self.enabled:
            return
        line = self._line(label)
        if self._tty:
            columns = 120
            self.stream.write("\r" + line[:columns].ljust(columns))
            self._drawn = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self, label: str | None = None) -> None:
        """A step ended (``label``: a line worth keeping, e.g. a failure, printed above the bar)."""
        self.done = min(self.done + 1, self.total)
        if self.enabled and label:
            self.stream.write(("\r" + " " * 120 + "\r" if self._drawn else "") + label + "\n")
            self._drawn = False
            self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._drawn:
            self.stream.write("\r" + self._line("done").ljust(120) + "\n")
            self.stream.flush()
            self._drawn = False
