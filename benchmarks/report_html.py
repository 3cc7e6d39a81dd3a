"""The benchmark report as one self-contained HTML page: tables and inline SVG charts (matplotlib, :mod:`.plots`).

No script, no stylesheet or font from elsewhere, no network (the charts are matplotlib SVG, see
:mod:`vitedge.figures`): the file opens offline, on any
device, and can be mailed or attached to an issue as it is.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from html import escape

from vitedge.benchmarks import report_rows
from vitedge.benchmarks.plots import all_charts
from vitedge.benchmarks.results import BenchRun

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1260px;
       color: #1d1d1f; padding: 0 16px; }
h1 { font-size: 24px; } h2 { font-size: 19px; margin-top: 36px; border-bottom: 1px solid #ddd; }
h3 { font-size: 16px; margin-top: 24px; }
table { border-collapse: collapse; font-size: 12px; margin: 12px 0; display: block; overflow-x: auto; }
th, td { border: 1px solid #d9d9de; padding: 3px 8px; text-align: right; white-space: nowrap; }
th { background: #f0f0f5; } td:first-child, th:first-child { text-align: left; }
tr.failed td { background: #fdecea; } tr.skipped td { background: #f4f4f4; color: #666; }
td.status { text-align: left; white-space: normal; min-width: 160px; max-width: 360px; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 12px; font-size: 13px; }
dt { font-weight: 600; } dd { margin: 0; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; } figure { margin: 0; }
ul.notes { font-size: 13px; color: #444; }
"""


def _table(rows: list[list[str]], header: list[str], statuses: Sequence[str] = (), css_class: str = "") -> str:
    head = "".join(f"<th>{escape(cell)}</th>" for cell in header)
    body = []
    for index, row in enumerate(rows):
        status = statuses[index] if index < len(statuses) else "ok"
        cells = "".join(
            f'<td class="status">{escape(cell)}</td>' if header[i] == "status" else f"<td>{escape(cell)}</td>"
            for i, cell in enumerate(row)
        )
        body.append(f'<tr class="{status}">{cells}</tr>')
    return f'<table class="{css_class}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _run_section(run: BenchRun) -> str:
    facts = "".join(f"<dt>{escape(label)}</dt><dd>{escape(text)}</dd>" for label, text in report_rows.run_facts(run))
    statuses = [row.status for row in run.results]
    parts = [f"<section class=\"run\"><h2>{escape(run.heading)}</h2><dl>{facts}</dl>",
             _table(*report_rows.summary_table(run), statuses=statuses, css_class="summary")]
    if any(row.latency for row in run.results):
        parts.append(_table(*report_rows.latency_table(run), css_class="latency"))
    notes = report_rows.notes(run)
    if notes:
        parts.append('<ul class="notes">' + "".join(f"<li>{escape(note)}</li>" for note in notes) + "</ul>")
    return "".join(parts) + "</section>"


def html_report(runs: Sequence[BenchRun], *, title: str = "vitedge benchmark") -> str:
    """The whole report as one HTML page."""
    devices = ", ".join(run.heading for run in runs)
    generated = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    parts = [f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{escape(title)}</title>",
             f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>",
             f"<p>{len(runs)} run(s): {escape(devices)}. Generated {generated}. Hover a point or bar for its numbers.</p>"]
    for model, charts in all_charts(runs):
        if not charts:
            continue
        parts.append(f"<h2>{escape(model)}</h2><div class=\"charts\">")
        parts += [f"<figure>{chart}</figure>" for chart in charts]
        parts.append("</div>")
    parts += [_run_section(run) for run in runs]
    for group_title, group in report_rows.comparable_groups(runs):
        heading = f"{group_title} across devices" if group_title else "Across devices"
        parts.append(f"<h2>{escape(heading)}</h2>" + _table(*report_rows.devices_table(group), css_class="devices")
                     + _table(*report_rows.selfcheck_devices_table(group), css_class="devices"))
    parts.append("</body></html>\n")
    return "\n".join(parts)
