"""``vitedge diagnose --report diag.html``: the per-layer curves of every artifact in one plot, and the numbers.

One self-contained page (no script, nothing fetched): the relative error and the head's top-1
agreement at every tap, one line per artifact (int8-dynamic vs int8-static vs int4 vs fp16 side by
side), the block where each one's error jumps ringed; then each artifact's table and advice.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Sequence
from html import escape
from pathlib import Path

from vitedge.converters.diagnose.engine import Diagnosis
from vitedge.converters.diagnose.text import HEADER, advice, cells
from vitedge.figures import color, marker, new_figure, require_matplotlib, to_svg, wrapped

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1100px;
       color: #1d1d1f; padding: 0 16px; }
h1 { font-size: 24px; } h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 12px; margin: 12px 0; }
th, td { border: 1px solid #d9d9de; padding: 3px 8px; text-align: right; white-space: nowrap; }
th { background: #f0f0f5; } td:first-child, th:first-child { text-align: left; }
tr.culprit td { background: #fdecea; font-weight: 600; }
pre { background: #f6f6f9; padding: 8px 12px; font-size: 12px; white-space: pre-wrap; }
p.how { font-size: 13px; color: #444; }
"""


def check_plotting() -> None:
    """Refuse ``--report`` in one line when matplotlib is missing (before the slow part)."""
    require_matplotlib()


def curves_chart(diagnoses: Sequence[Diagnosis], model: str) -> str:
    """Relative error (log) and the head's top-1 agreement at every tap, one line per artifact."""
    taps = list(dict.fromkeys(entry.tap for diagnosis in diagnoses for entry in diagnosis.stats))
    figure = new_figure(8.0, 6.2)
    error_axis, agreement_axis = figure.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    tooltips = {}
    for index, diagnosis in enumerate(diagnoses):
        stats = {entry.tap: entry for entry in diagnosis.stats}
        xs = [taps.index(tap) for tap in stats]
        style = {"color": color(index), "marker": marker(index), "markersize": 5, "linewidth": 1.5}
        (line,) = error_axis.plot(xs, [max(entry.relative_error, 1e-9) for entry in stats.values()],
                                  label=diagnosis.label, **style)
        line.set_gid(f"curve-{index}")
        tooltips[f"curve-{index}"] = f"{diagnosis.label}: " + ", ".join(
            f"{entry.tap} {entry.relative_error:.2e}" for entry in stats.values())
        lens = [(taps.index(tap), 100 * entry.top1_agreement) for tap, entry in stats.items()
                if entry.top1_agreement is not None]
        agreement_axis.plot([x for x, _ in lens], [y for _, y in lens], **style)
        if diagnosis.culprit in stats:
            error_axis.plot([taps.index(diagnosis.culprit)], [stats[diagnosis.culprit].relative_error], marker="o",
                            markersize=14, markerfacecolor="none", markeredgecolor=color(index), markeredgewidth=2)
    error_axis.set_yscale("log")
    error_axis.set_ylabel("relative error vs torch fp32")
    error_axis.grid(True, alpha=0.3)
    error_axis.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    error_axis.set_title(wrapped(f"{model}: where each artifact departs from torch fp32 (ringed: the largest jump)"),
                         fontsize=11)
    agreement_axis.set_ylabel("top-1 agreement\nof the head (%)")
    agreement_axis.set_ylim(-5, 105)
    agreement_axis.grid(True, alpha=0.3)
    agreement_axis.set_xticks(range(len(taps)), taps, rotation=45, ha="right", fontsize=8)
    return to_svg(figure, css_class="plot plot-diagnose", title=f"{model}: per-layer error", tooltips=tooltips,
                  key="diagnose-curves")


def _table(diagnosis: Diagnosis) -> str:
    head = "".join(f"<th>{escape(cell)}</th>" for cell in HEADER[:-1])
    rows = []
    for entry in diagnosis.stats:
        culprit = entry.tap == diagnosis.culprit
        row = "".join(f"<td>{escape(cell)}</td>" for cell in cells(entry, culprit)[:-1])
        rows.append(f'<tr class="{"culprit" if culprit else "tap"}">{row}</tr>')
    return f'<table class="taps"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _section(diagnosis: Diagnosis) -> str:
    notes = [f"missing {tap}: {why}" for tap, why in diagnosis.missing.items()] + [f"note: {n}" for n in diagnosis.notes]
    return (f"<section class=\"artifact\"><h2>{escape(diagnosis.label)}</h2>"
            f"<p class=\"how\">{diagnosis.samples} inputs ({escape(diagnosis.inputs)}); read: {escape(diagnosis.how)}</p>"
            f"{_table(diagnosis)}<pre>{escape(chr(10).join(notes + advice(diagnosis)))}</pre></section>")


def html_report(diagnoses: Sequence[Diagnosis], *, model: str) -> str:
    """The whole report as one HTML page."""
    generated = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    title = f"vitedge diagnose: {model}"
    parts = [f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{escape(title)}</title>",
             f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>",
             f"<p>{len(diagnoses)} artifact(s) against the torch fp32 model, compared after the embeddings, every "
             f"encoder block, the final norm and the head. Generated {generated}. Hover a curve for its numbers.</p>",
             f"<figure>{curves_chart(diagnoses, model)}</figure>"]
    parts += [_section(diagnosis) for diagnosis in diagnoses]
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_report(diagnoses: Sequence[Diagnosis], path: str | os.PathLike, *, model: str) -> Path:
    """Render the report into ``path`` (parent folders are created) and return it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html_report(diagnoses, model=model), encoding="utf-8")
    return path
