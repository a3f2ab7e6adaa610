"""Charts for the dashboard, drawn on the server as SVG.

No CDN and no JavaScript: the page stays within its Content-Security-Policy
and works with scripts off. Each chart has a title and a description for
screen readers, and the dashboard shows the same figures in a table beside it.

The SVG has no ``viewBox``: it is as wide as its box, horizontal positions
are percentages and heights are pixels, so the text keeps the size the style
sheet gives it (``svg.chart text``) on a phone and on a wide screen alike,
instead of shrinking with the drawing. Legends are HTML under the drawing
(they wrap like text), each entry with its range where it has one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from itertools import pairwise

HEIGHT = 220
#: Plot area: left and right margins in percent of the width, top and bottom in px.
LEFT, RIGHT, TOP, BOTTOM = 15.0, 2.0, 12, 28
#: Distinguishable colours (also for colour-blind readers), in a fixed order.
COLOURS = ("#0b5cad", "#d1570f", "#238636", "#8250df", "#bf3989", "#57606a", "#9a6700", "#1b7c83")
#: At most this many day labels under a chart (they must fit a phone's width).
MAX_LABELS = 6


@dataclass(frozen=True, slots=True)
class Band:
    low: float
    high: float
    label: str
    colour: str


def _swatch(colour: str) -> str:
    return (
        '<svg class="swatch" width="12" height="12" aria-hidden="true">'
        f'<rect width="12" height="12" fill="{colour}"/></svg>'
    )


def legend(entries: Sequence[tuple[str, str]]) -> str:
    """An HTML legend: one item per (label, colour)."""
    if not entries:
        return ""
    items = "".join(f"<li>{_swatch(colour)}{escape(name)}</li>" for name, colour in entries)
    return f'<ul class="legend">{items}</ul>'


def _frame(
    title: str, description: str, body: str, entries: Sequence[tuple[str, str]], height: int
) -> str:
    return (
        f'<svg class="chart" width="100%" height="{height}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title><desc>{escape(description)}</desc>"
        f"{body}</svg>{legend(entries)}"
    )


def _x(fraction: float) -> str:
    """A horizontal position in the plot area (0..1) as a percentage."""
    return f"{LEFT + (100 - LEFT - RIGHT) * fraction:.2f}%"


def _axes(labels: Sequence[str], top: float, fmt: str) -> str:
    plot_h = HEIGHT - TOP - BOTTOM
    parts = [
        f'<line x1="{LEFT}%" y1="{TOP + plot_h}" x2="{100 - RIGHT}%" y2="{TOP + plot_h}" '
        'stroke="#8c959f"/>'
    ]
    for i in range(5):
        value = top * i / 4
        y = TOP + plot_h - plot_h * i / 4
        parts.append(
            f'<text class="tick" x="{LEFT - 1.5}%" y="{y + 4:.1f}" text-anchor="end">'
            f"{fmt.format(value)}</text>"
            f'<line x1="{LEFT}%" y1="{y:.1f}" x2="{100 - RIGHT}%" y2="{y:.1f}" '
            'stroke="#d0d7de" stroke-dasharray="2 3"/>'
        )
    count = max(1, len(labels))
    step = -(-len(labels) // MAX_LABELS) if labels else 1
    for i, label in enumerate(labels):
        if i % step == 0:
            parts.append(
                f'<text class="tick" x="{_x((i + 0.5) / count)}" y="{TOP + plot_h + 18}" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    return "".join(parts)


def _nice(value: float, whole: bool = False) -> float:
    """A round axis maximum at or above ``value`` (divisible in four quarters
    of whole numbers when ``whole``: counts have no halves)."""
    if value <= 0:
        return 4.0 if whole else 1.0
    magnitude = 10 ** len(str(int(value))) / 10 if value >= 1 else 1.0
    while magnitude > value:
        magnitude /= 10
    steps = (1, 2, 4, 8, 10) if whole else (1, 2, 2.5, 5, 10)
    for step in steps:
        top = step * magnitude
        if top >= value and (not whole or top % 4 == 0):
            return top
    top = 10 * magnitude
    return top if not whole else float(-(-int(top) // 4) * 4)


def stacked_bars(
    title: str, labels: Sequence[str], series: dict[str, Sequence[int]], description: str
) -> str:
    """One bar per label, stacked by series (unsubscribes per day by channel)."""
    totals = [sum(values[i] for values in series.values()) for i in range(len(labels))]
    top = _nice(max(totals, default=0), whole=True)
    plot_h = HEIGHT - TOP - BOTTOM
    slot = 1 / max(1, len(labels))
    bars = []
    for i in range(len(labels)):
        base = 0.0
        for k, (name, values) in enumerate(series.items()):
            v = values[i]
            if not v:
                continue
            h = plot_h * v / top
            y = TOP + plot_h - plot_h * base / top - h
            width = (100 - LEFT - RIGHT) * slot * 0.7
            bars.append(
                f'<rect class="bar" x="{_x(slot * i + slot * 0.15)}" y="{y:.1f}" '
                f'width="{width:.2f}%" height="{h:.1f}" fill="{COLOURS[k % len(COLOURS)]}">'
                f"<title>{escape(labels[i])} · {escape(name)}: {v}</title></rect>"
            )
            base += v
    entries = [
        (f"{name} ({sum(values)})", COLOURS[k % len(COLOURS)])
        for k, (name, values) in enumerate(series.items())
    ]
    return _frame(title, description, _axes(labels, top, "{:.0f}") + "".join(bars), entries, HEIGHT)


def lines(
    title: str,
    labels: Sequence[str],
    series: dict[str, Sequence[float | None]],
    description: str,
    *,
    bands: Sequence[Band] = (),
    highest: str = "",
) -> str:
    """Lines of rates over days, with optional threshold bands (the complaint
    rate's goal and limit). ``highest`` (with ``{value}``) names each line's
    peak in the legend."""
    values = [v for s in series.values() for v in s if v is not None]
    peak = max([*values, *(b.high for b in bands if b.high < 1)], default=0)
    top = _nice(peak * 1.1) if peak > 0 else 0.01
    plot_h = HEIGHT - TOP - BOTTOM
    count = max(1, len(labels))

    def y_of(v: float) -> float:
        return TOP + plot_h - plot_h * min(v, top) / top

    parts = []
    for band in bands:
        y1, y2 = y_of(min(band.high, top)), y_of(band.low)
        parts.append(
            f'<rect class="band" x="{LEFT}%" y="{y1:.1f}" width="{100 - LEFT - RIGHT}%" '
            f'height="{max(0.0, y2 - y1):.1f}" fill="{band.colour}" fill-opacity="0.18">'
            f"<title>{escape(band.label)}</title></rect>"
        )
    parts.append(_axes(labels, top, "{:.2%}"))
    entries = []
    for k, (name, points) in enumerate(series.items()):
        colour = COLOURS[k % len(COLOURS)]
        coords = [((i + 0.5) / count, y_of(v), v) for i, v in enumerate(points) if v is not None]
        for (x1, y1, _), (x2, y2, _) in pairwise(coords):
            parts.append(
                f'<line class="line" x1="{_x(x1)}" y1="{y1:.1f}" x2="{_x(x2)}" y2="{y2:.1f}" '
                f'stroke="{colour}" stroke-width="2"/>'
            )
        for x, y, v in coords:
            parts.append(
                f'<circle class="point" cx="{_x(x)}" cy="{y:.1f}" r="3" fill="{colour}">'
                f"<title>{escape(labels[round(x * count - 0.5)])} · {escape(name)}: "
                f"{v:.3%}</title></circle>"
            )
        mine = [v for v in points if v is not None]
        shown = f"{name} · {highest.format(value=f'{max(mine):.3%}')}" if mine and highest else name
        entries.append((shown, colour))
    entries += [(band.label, band.colour) for band in bands]
    return _frame(title, description, "".join(parts), entries, HEIGHT)


def horizontal_bars(
    title: str, items: Sequence[tuple[str, int]], description: str, colour: str = COLOURS[0]
) -> str:
    """Counts by label, largest first; each label over its bar (long labels
    and narrow screens need the whole width)."""
    shown = list(items)[:8]
    top = max((n for _, n in shown), default=0) or 1
    row = 40
    height = max(1, len(shown)) * row + 8
    parts = []
    for i, (label, n) in enumerate(shown):
        y = 4 + row * i
        text = label if len(label) <= 60 else label[:59] + "…"
        width = 88 * n / top
        parts.append(
            f'<text x="0" y="{y + 13}">{escape(text)}</text>'
            f'<rect class="bar" x="0" y="{y + 18}" width="{width:.2f}%" height="14" '
            f'fill="{colour}"><title>{escape(label)}: {n}</title></rect>'
            f'<text class="count" x="{width + 1.5:.2f}%" y="{y + 30}">{n}</text>'
        )
    if not shown:
        parts.append('<text x="0" y="20">–</text>')
    return _frame(title, description, "".join(parts), [], height)
