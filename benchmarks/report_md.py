"""Benchmark reports as text: Markdown (files, READMEs) and plain aligned tables (the terminal)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from vitedge.benchmarks import report_rows
from vitedge.benchmarks.results import BenchRun
from vitedge.render import markdown_table, table


def _escape(cell: str) -> str:
    return str(cell).replace("|", "\\|")


def _sections(
    runs: Sequence[BenchRun],
    render_table: Callable[[list[list[str]], list[str]], str],
    heading: Callable[[int, str], str],
    fact: Callable[[str, str], str],
) -> list[str]:
    lines = [heading(1, "vitedge benchmark"), ""]
    for run in runs:
        lines += [heading(2, run.heading), ""]
        lines += [fact(label, text) for label, text in report_rows.run_facts(run)] + [""]
        lines += [render_table(*report_rows.summary_table(run)), ""]
        if any(row.latency for row in run.results):
            lines += [render_table(*report_rows.latency_table(run)), ""]
        lines += [f"- {note}" for note in report_rows.notes(run)]
        lines += [""] if report_rows.notes(run) else []
    for title, group in report_rows.comparable_groups(runs):
        lines += [heading(2, f"{title} across devices" if title else "Across devices"), "",
                  render_table(*report_rows.devices_table(group)), "",
                  render_table(*report_rows.selfcheck_devices_table(group)), ""]
    return lines


def markdown_report(runs: Sequence[BenchRun]) -> str:
    """The whole report as Markdown."""

    def md_table(rows: list[list[str]], header: list[str]) -> str:
        return markdown_table([[_escape(cell) for cell in row] for row in rows], [_escape(h) for h in header])

    lines = _sections(runs, md_table, lambda level, text: "#" * level + " " + text,
                      lambda label, text: f"- **{label}**: {_escape(text)}")
    return "\n".join(lines).rstrip() + "\n"


def text_report(runs: Sequence[BenchRun]) -> str:
    """The whole report as plain text for a terminal."""
    lines = _sections(runs, table, lambda level, text: text if level == 1 else f"== {text} ==",
                      lambda label, text: f"{label:<10} {text}")
    return "\n".join(lines).rstrip() + "\n"
