"""Charts for the dashboard, drawn on the server as SVG.

No CDN and no JavaScript: the page stays within its Content-Security-Policy
and works with scripts off. Each chart has a title and a description for
screen readers, and the dashboard shows the same figures in a table beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 40
#: Distinguishable colours (also for colour-blind readers), in a fixed order.
COLOURS = ("#0b5cad", "#d1570f", "#238636", "#8250df", "#bf3989", "#57606a", "#9a6700", "#1b7c83")


@dataclass(frozen=True, slots=True)
class Band:
    low: float
    high: float
    label: str
    colour: str


def _frame(title: str, description: str, body: str, legend: Sequence[tuple[str, str]]) -> str:
    keys = "".join(
        f'<g transform="translate({LEFT + i * 150},{HEIGHT - 12})">'
        f'<rect width="10" height="10" y="-9" fill="{colour}"/>'
        f'<text x="14" font-size="12" fill="#1f2328">{escape(name)}</text></g>'
        for i, (name, colour) in enumerate(legend)
    )
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title><desc>{escape(description)}</desc>"
        f"{body}{keys}</svg>"
    )


def _axes(labels: Sequence[str], top: float, fmt: str) -> str:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = [
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_h}" '
        'stroke="#8c959f"/>'
    ]
    for i in range(5):
        value = top * i / 4
        y = TOP + plot_h - plot_h * i / 4
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" '
            f'fill="#57606a">{fmt.format(value)}</text>'
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
            'stroke="#d0d7de" stroke-dasharray="2 3"/>'
        )
    step = max(1, len(labels) // 8)
    slot = plot_w / max(1, len(labels))
    for i, label in enumerate(labels):
        if i % step == 0:
            x = LEFT + slot * (i + 0.5)
            parts.append(
                f'<text x="{x:.1f}" y="{TOP + plot_h + 14}" font-size="11" text-anchor="middle" '
                f'fill="#57606a">{escape(label)}</text>'
            )
    return "".join(parts)


def _nice(value: float) -> float:
    """A round axis maximum at or above ``value``."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** len(str(int(value))) / 10 if value >= 1 else 1.0
    while magnitude > value:
        magnitude /= 10
    for step in (1, 2, 2.5, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def stacked_bars(
    title: str, labels: Sequence[str], series: dict[str, Sequence[int]], description: str
) -> str:
    """One bar per label, stacked by series (unsubscribes per day by channel)."""
    totals = [sum(values[i] for values in series.values()) for i in range(len(labels))]
    top = _nice(max(totals, default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(1, len(labels))
    bars = []
    for i in range(len(labels)):
        base = 0.0
        for k, (name, values) in enumerate(series.items()):
            v = values[i]
            if not v:
                continue
            h = plot_h * v / top
            y = TOP + plot_h - plot_h * base / top - h
            bars.append(
                f'<rect class="bar" x="{LEFT + slot * i + slot * 0.15:.1f}" y="{y:.1f}" '
                f'width="{slot * 0.7:.1f}" height="{h:.1f}" fill="{COLOURS[k % len(COLOURS)]}">'
                f"<title>{escape(labels[i])} · {escape(name)}: {v}</title></rect>"
            )
            base += v
    legend = [(name, COLOURS[k % len(COLOURS)]) for k, name in enumerate(series)]
    return _frame(title, description, _axes(labels, top, "{:.0f}") + "".join(bars), legend)


def lines(
    title: str,
    labels: Sequence[str],
    series: dict[str, Sequence[float | None]],
    description: str,
    *,
    bands: Sequence[Band] = (),
    percent: bool = True,
) -> str:
    """Lines over days, with optional threshold bands (complaint rate goal and limit)."""
    values = [v for s in series.values() for v in s if v is not None]
    highest = max([*values, *(b.high for b in bands if b.high < 1)], default=0)
    top = _nice(highest * 1.1) if highest > 0 else (0.01 if percent else 1.0)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(1, len(labels))

    def y_of(v: float) -> float:
        return TOP + plot_h - plot_h * min(v, top) / top

    parts = []
    for band in bands:
        y1, y2 = y_of(min(band.high, top)), y_of(band.low)
        parts.append(
            f'<rect class="band" x="{LEFT}" y="{y1:.1f}" width="{plot_w}" '
            f'height="{max(0.0, y2 - y1):.1f}" fill="{band.colour}" fill-opacity="0.18">'
            f"<title>{escape(band.label)}</title></rect>"
        )
    parts.append(_axes(labels, top, "{:.2%}" if percent else "{:.2f}"))
    for k, (name, points) in enumerate(series.items()):
        colour = COLOURS[k % len(COLOURS)]
        coords = [(LEFT + slot * (i + 0.5), y_of(v)) for i, v in enumerate(points) if v is not None]
        if len(coords) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            parts.append(
                f'<polyline class="line" points="{path}" fill="none" stroke="{colour}" '
                'stroke-width="2"/>'
            )
        for (x, y), v in zip(coords, [v for v in points if v is not None], strict=True):
            shown = f"{v:.3%}" if percent else f"{v:.2f}"
            parts.append(
                f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}">'
                f"<title>{escape(name)}: {shown}</title></circle>"
            )
    legend = [(name, COLOURS[k % len(COLOURS)]) for k, name in enumerate(series)]
    legend += [(band.label, band.colour) for band in bands]
    return _frame(title, description, "".join(parts), legend[:4])


def horizontal_bars(title: str, items: Sequence[tuple[str, int]], description: str) -> str:
    """Counts by label, largest first (the reasons people gave)."""
    shown = list(items)[:8]
    top = _nice(max((n for _, n in shown), default=0))
    row = (HEIGHT - TOP - BOTTOM) / max(1, len(shown))
    left = 180
    width = WIDTH - left - RIGHT - 40
    parts = []
    for i, (label, n) in enumerate(shown):
        y = TOP + row * i
        text = label if len(label) <= 26 else label[:25] + "…"
        parts.append(
            f'<text x="{left - 8}" y="{y + row * 0.6:.1f}" font-size="12" text-anchor="end" '
            f'fill="#1f2328">{escape(text)}</text>'
            f'<rect class="bar" x="{left}" y="{y + row * 0.15:.1f}" '
            f'width="{width * n / top:.1f}" height="{row * 0.7:.1f}" fill="{COLOURS[0]}">'
            f"<title>{escape(label)}: {n}</title></rect>"
            f'<text x="{left + width * n / top + 6:.1f}" y="{y + row * 0.6:.1f}" font-size="12" '
            f'fill="#1f2328">{n}</text>'
        )
    return _frame(title, description, "".join(parts), [])
