"""Write benchmark runs as a report file, the kind chosen by its suffix: .html, .md or .json."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from vitedge.benchmarks.report_html import html_report
from vitedge.benchmarks.report_md import markdown_report
from vitedge.benchmarks.results import BenchRun, save_runs
from vitedge.errors import UsageError

SUFFIXES = {".html": "HTML", ".htm": "HTML", ".md": "Markdown", ".markdown": "Markdown", ".json": "JSON"}


def check_report_path(path: str | os.PathLike) -> Path:
    """``path`` when its suffix names a report kind; a UsageError listing them otherwise (before any work)."""
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise UsageError(f"{path}: unknown report kind {path.suffix or '(no suffix)'!r}",
                         hint="name the file .html (page with plots), .md (Markdown) or .json (merged results)")
    return path


def write_report(runs: Sequence[BenchRun], path: str | os.PathLike) -> Path:
    """Render ``runs`` into ``path`` (parent folders are created) and return it."""
    path = check_report_path(path)
    kind = SUFFIXES[path.suffix.lower()]
    if kind == "JSON":
        return save_runs(list(runs), path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = html_report(runs) if kind == "HTML" else markdown_report(runs)
    path.write_text(text, encoding="utf-8")
    return path
