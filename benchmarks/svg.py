"""Just enough SVG for the report's charts: axes (linear or log), points, lines, bars, labels.

Charts are plain strings inlined into the HTML page, so the report needs no plotting library, no
JavaScript and no network. Hovering a mark shows its ``<title>``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22")
TITLE_CHAR_WIDTH = 8.2  # px per character of the 14px bold title, generous for system-ui fonts


def color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def tick_label(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) < 0.01:
        return f"{value:.1g}"
    return f"{value:.6g}"


@dataclass(frozen=True)
class Axis:
    """A numeric axis from ``lo`` to ``hi`` (log10 scale when ``log``)."""

    lo: float
    hi: float
    log: bool = False
    label: str = ""

    @classmethod
    def fit(cls, values: Iterable[float], *, label: str = "", log: bool | None = None, zero: bool = False,
            pad: float = 0.06) -> Axis:
        """An axis around ``values``: log when they span more than 30x (unless told), padded a little."""
        finite = [v for v in values if v is not None and math.isfinite(v)]
        if not finite:
            return cls(0.0, 1.0, False, label)
        lo, hi = min(finite), max(finite)
        if log is None:
            log = lo > 0 and hi / lo > 30
        if log:
            span = math.log10(hi) - math.log10(lo) or 1.0
            return cls(10 ** (math.log10(lo) - pad * span), 10 ** (math.log10(hi) + pad * span), True, label)
        lo = min(lo, 0.0) if zero else lo
        span = (hi - lo) or abs(hi) or 1.0
        return cls(lo if zero else lo - pad * span, hi + pad * span, False, label)

    def fraction(self, value: float) -> float:
        """Where ``value`` sits between lo (0) and hi (1)."""
        if self.log:
            value = max(value, self.lo)
            return (math.log10(value) - math.log10(self.lo)) / (math.log10(self.hi) - math.log10(self.lo))
        return (value - self.lo) / (self.hi - self.lo)

    def ticks(self, count: int = 6) -> list[float]:
        if self.log:
            exponents = range(math.floor(math.log10(self.lo)), math.ceil(math.log10(self.hi)) + 1)
            candidates = [m * 10**e for e in exponents for m in (1, 2, 5)]
            inside = [t for t in candidates if self.lo <= t <= self.hi]
            if len(inside) > count + 3:  # many decades: powers of ten only
                inside = [t for t in inside if round(t / 10 ** math.floor(math.log10(t))) == 1]
            return inside
        raw = (self.hi - self.lo) / count
        magnitude = 10 ** math.floor(math.log10(raw))
        step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
        first = math.ceil(self.lo / step) * step
        return [round(first + i * step, 10) for i in range(int((self.hi - first) / step + 1e-9) + 1)]


class Chart:
    """One SVG chart: a plot area inside margins, an x axis, and a numeric or categorical y axis.

    Args:
        x: The horizontal axis.
        y: The vertical axis (numeric), or None with ``categories`` (one row each, first at the top).
        title: Drawn above the plot.
        css_class: Class of the ``<svg>`` element (the page and the tests find plots by it).
        categories: Row labels for a categorical y axis.
    """

    def __init__(self, *, x: Axis, y: Axis | None = None, title: str, css_class: str,
                 categories: Sequence[str] = (), width: int = 600, row_height: int = 22, height: int = 360) -> None:
        self.x_axis, self.y_axis, self.title, self.css_class = x, y, title, css_class
        self.categories = tuple(categories)
        longest = max((len(c) for c in self.categories), default=0)
        self.left = min(320, 16 + 6.5 * longest) if self.categories else 64
        self.top, self.right, self.bottom = 44, 24, 48
        self.width = width
        self.height = self.top + self.bottom + row_height * len(self.categories) if self.categories else height
        self.marks: list[str] = []

    @property
    def plot_width(self) -> float:
        return self.width - self.left - self.right

    @property
    def plot_height(self) -> float:
        return self.height - self.top - self.bottom

    def px(self, value: float) -> float:
        return self.left + self.x_axis.fraction(value) * self.plot_width

    def py(self, value: float) -> float:
        if self.categories:
            return self.top + (value + 0.5) / len(self.categories) * self.plot_height
        return self.top + (1 - self.y_axis.fraction(value)) * self.plot_height

    # -- marks, in data coordinates ---------------------------------------------------------------

    def point(self, x: float, y: float, fill: str, tooltip: str, radius: float = 5, opacity: float = 1.0) -> None:
        self.marks.append(f'<circle cx="{self.px(x):.1f}" cy="{self.py(y):.1f}" r="{radius}" fill="{fill}" '
                          f'fill-opacity="{opacity}"><title>{escape(tooltip)}</title></circle>')

    def polyline(self, points: Sequence[tuple[float, float]], stroke: str, width: float = 1.5, dash: str = "") -> None:
        coords = " ".join(f"{self.px(x):.1f},{self.py(y):.1f}" for x, y in points)
        dashes = f' stroke-dasharray="{dash}"' if dash else ""
        self.marks.append(f'<polyline points="{coords}" fill="none" stroke="{stroke}" stroke-width="{width}"{dashes}/>')

    def bar(self, x0: float, x1: float, row: float, fill: str, tooltip: str, thickness: float = 0.6) -> None:
        """A horizontal bar on a categorical row, from x0 to x1."""
        half = thickness / 2 * self.plot_height / max(len(self.categories), 1)
        left, right = sorted((self.px(x0), self.px(x1)))
        self.marks.append(f'<rect x="{left:.1f}" y="{self.py(row) - half:.1f}" width="{max(right - left, 1):.1f}" '
                          f'height="{2 * half:.1f}" fill="{fill}"><title>{escape(tooltip)}</title></rect>')

    def label(self, x: float, y: float, text: str, *, dx: float = 7, dy: float = -6, size: int = 11,
              fill: str = "#222", flip: bool = True) -> None:
        """Text beside a point; with ``flip``, to its left in the right third, so it stays inside."""
        left = flip and self.px(x) > self.left + 0.66 * self.plot_width and dx > 0
        anchor, dx = ("end", -dx) if left else ("start", dx)
        self.marks.append(f'<text x="{self.px(x) + dx:.1f}" y="{self.py(y) + dy:.1f}" font-size="{size}" '
                          f'text-anchor="{anchor}" fill="{fill}">{escape(text)}</text>')

    def legend(self, entries: Sequence[tuple[str, str]]) -> None:
        """(label, colour) pairs in a row above the plot area, right-aligned."""
        x, y = self.width - self.right, self.top - 8
        for text, fill in reversed(entries):
            self.marks.append(f'<rect x="{x - 10:.1f}" y="{y - 9}" width="10" height="10" fill="{fill}"/>'
                              f'<text x="{x - 14:.1f}" y="{y}" font-size="11" text-anchor="end">{escape(text)}</text>')
            x -= 28 + 6.5 * len(text)

    # -- the whole chart --------------------------------------------------------------------------

    def _axes(self) -> list[str]:
        parts = [f'<rect x="{self.left:.1f}" y="{self.top}" width="{self.plot_width:.1f}" height="{self.plot_height:.1f}" '
                 'fill="#fbfbfd" stroke="#999"/>']
        bottom = self.top + self.plot_height
        for tick in self.x_axis.ticks():
            x = self.px(tick)
            parts.append(f'<line x1="{x:.1f}" y1="{self.top}" x2="{x:.1f}" y2="{bottom:.1f}" stroke="#e3e3e8"/>'
                         f'<text x="{x:.1f}" y="{bottom + 15:.1f}" font-size="11" text-anchor="middle">'
                         f'{tick_label(tick)}</text>')
        if self.categories:
            for row, name in enumerate(self.categories):
                parts.append(f'<text x="{self.left - 6:.1f}" y="{self.py(row) + 4:.1f}" font-size="11" '
                             f'text-anchor="end">{escape(name)}</text>')
        else:
            for tick in self.y_axis.ticks():
                y = self.py(tick)
                parts.append(f'<line x1="{self.left:.1f}" y1="{y:.1f}" x2="{self.left + self.plot_width:.1f}" y2="{y:.1f}" '
                             f'stroke="#e3e3e8"/><text x="{self.left - 6:.1f}" y="{y + 4:.1f}" font-size="11" '
                             f'text-anchor="end">{tick_label(tick)}</text>')
            parts.append(f'<text transform="translate(14 {self.top + self.plot_height / 2:.1f}) rotate(-90)" '
                         f'font-size="12" text-anchor="middle">{escape(self.y_axis.label)}</text>')
        scale = " (log scale)" if self.x_axis.log else ""
        parts.append(f'<text x="{self.left + self.plot_width / 2:.1f}" y="{self.height - 10}" font-size="12" '
                     f'text-anchor="middle">{escape(self.x_axis.label + scale)}</text>')
        parts.append(f'<text x="8" y="16" font-size="14" font-weight="bold">{escape(self._fitted_title())}</text>')
        return parts

    def _fitted_title(self) -> str:
        """The title, cut in the middle with an ellipsis where it would run off the chart (the tooltip has it all)."""
        room = int((self.width - 16) / TITLE_CHAR_WIDTH)
        if len(self.title) <= room:
            return self.title
        head = (room - 1) // 2
        return f"{self.title[:head]}\u2026{self.title[len(self.title) - (room - 1 - head):]}"

    def render(self) -> str:
        body = "".join(self._axes() + self.marks)
        return (f'<svg class="{self.css_class}" xmlns="http://www.w3.org/2000/svg" width="{self.width}" '
                f'height="{self.height:.0f}" viewBox="0 0 {self.width} {self.height:.0f}" '
                f'font-family="system-ui, sans-serif" role="img"><title>{escape(self.title)}</title>{body}</svg>')
