"""Charts for the HTML reports (``vitedge report``, ``vitedge diagnose --report``): matplotlib figures as inline SVG.

The page stays self-contained: no script, nothing fetched (the SVG's namespace URIs are names, not
links). Text stays text (``svg.fonttype: none``), so the page's fonts draw it and it can be searched;
an artifact given a ``gid`` gets a hover tooltip (an SVG ``<title>``). Figures are drawn with the
object-oriented API on Agg-free SVG canvases: no pyplot state, safe in any process. matplotlib is in
the ``bench`` extra (and ``convert``, for diagnose).
"""

from __future__ import annotations

import io
import re
import textwrap
from collections.abc import Mapping
from html import escape
from typing import Any

from vitedge.errors import UsageError

#: Colours in order (matplotlib's tab10), and marker shapes for series a legend tells apart.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">", "p")
TITLE_WIDTH = 60  # characters per title line before it wraps
_PROLOGUE = re.compile(r"^.*?(?=<svg)", re.S)


def color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def marker(index: int) -> str:
    return MARKERS[index % len(MARKERS)]


def require_matplotlib() -> None:
    """Fail in one line when matplotlib is missing (before any slow work)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError("HTML reports need matplotlib, which is not installed",
                         hint="pip install 'vitedge[bench]' (or pip install matplotlib)") from None


def new_figure(width: float = 6.4, height: float = 3.8) -> Any:
    """A figure (inches) on an SVG canvas, outside pyplot."""
    require_matplotlib()
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasSVG(figure)
    return figure


def wrapped(title: str, width: int = TITLE_WIDTH) -> str:
    """A title broken into lines that fit above the plot (nothing cut off)."""
    return "\n".join(textwrap.wrap(title, width, break_on_hyphens=True, break_long_words=True)) or title


def to_svg(figure: Any, *, css_class: str, title: str, tooltips: Mapping[str, str] | None = None,
           key: str | None = None) -> str:
    """The figure as an ``<svg>`` element to inline in HTML.

    Args:
        figure: A figure from :func:`new_figure`.
        css_class: Class of the ``<svg>`` (pages and tests find charts by it).
        title: The accessible name (``aria-label``).
        tooltips: ``gid`` → text shown on hover, for artists given that gid (``artist.set_gid``).
        key: Unique on the page (default ``css_class``): prefixes the SVG's ids, so that several charts
            on one page do not share them.
    """
    import matplotlib

    prefix = re.sub(r"\W+", "-", key or css_class).strip("-")
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": prefix, "font.family": "sans-serif",
                                "font.sans-serif": ["DejaVu Sans"]}):
        figure.savefig(buffer, format="svg", bbox_inches="tight",
                       metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    svg = _PROLOGUE.sub("", buffer.getvalue(), count=1)
    for gid, text in (tooltips or {}).items():
        svg = svg.replace(f'<g id="{gid}">', f'<g id="{gid}"><title>{escape(text)}</title>', 1)
    svg = re.sub(r'id="([^"]+)"', rf'id="{prefix}-\1"', svg)
    svg = re.sub(r'xlink:href="#([^"]+)"', rf'xlink:href="#{prefix}-\1"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", rf"url(#{prefix}-\1)", svg)
    return svg.replace("<svg ", f'<svg class="{escape(css_class)}" role="img" aria-label="{escape(title)}" ', 1)
