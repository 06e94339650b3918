"""A small line plot written as SVG by hand (no plotting dependency): RSS against messages."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 720, 400
LEFT, RIGHT, TOP, BOTTOM = 70, 150, 40, 50
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")


@dataclass(frozen=True)
class Series:
    name: str
    points: list[tuple[int, float]]  # (messages delivered, RSS MiB)


def line_plot(series: list[Series], path: Path, *, title: str) -> None:
    """RSS (MiB, y from 0) against messages delivered (x from 0), one line per series."""
    xs = [x for s in series for x, _ in s.points] or [1]
    ys = [y for s in series for _, y in s.points] or [1.0]
    x_max, y_max = _nice(max(xs)), _nice(max(ys) * 1.1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{LEFT}" y="22" font-size="14">{escape(title)}</text>',
        *_axes(x_max, y_max),
    ]
    for index, one in enumerate(series):
        colour = COLOURS[index % len(COLOURS)]
        parts += _line(one, colour, x_max, y_max, index)
    parts.append("</svg>")
    path.write_text("\n".join(parts) + "\n")


def _px(x: float, y: float, x_max: float, y_max: float) -> tuple[float, float]:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    return LEFT + plot_w * x / x_max, TOP + plot_h * (1 - y / y_max)


def _axes(x_max: float, y_max: float) -> list[str]:
    out = []
    for i in range(6):
        x, y = x_max * i / 5, y_max * i / 5
        px, bottom = _px(x, 0, x_max, y_max)
        left, py = _px(0, y, x_max, y_max)
        right, _ = _px(x_max, 0, x_max, y_max)
        _, top = _px(0, y_max, x_max, y_max)
        out.append(f'<line x1="{left}" y1="{py:.1f}" x2="{right}" y2="{py:.1f}" stroke="#ddd"/>')
        out.append(f'<line x1="{px:.1f}" y1="{top}" x2="{px:.1f}" y2="{bottom}" stroke="#eee"/>')
        out.append(f'<text x="{left - 6}" y="{py + 4:.1f}" text-anchor="end">{y:g}</text>')
        out.append(f'<text x="{px:.1f}" y="{bottom + 16}" text-anchor="middle">{_count(x)}</text>')
    out.append(
        f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 10}" text-anchor="middle">'
        "messages delivered</text>"
    )
    out.append(
        f'<text x="16" y="{(TOP + HEIGHT - BOTTOM) / 2}" text-anchor="middle" '
        f'transform="rotate(-90 16 {(TOP + HEIGHT - BOTTOM) / 2})">RSS, MiB</text>'
    )
    return out


def _line(one: Series, colour: str, x_max: float, y_max: float, index: int) -> list[str]:
    coords = [_px(x, y, x_max, y_max) for x, y in one.points]
    path = " ".join(f"{px:.1f},{py:.1f}" for px, py in coords)
    out = [f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>']
    if one.points:  # the target: within 10 % of the first point
        left, limit = _px(0, one.points[0][1] * 1.1, x_max, y_max)
        right, _ = _px(x_max, 0, x_max, y_max)
        out.append(
            f'<line x1="{left}" y1="{limit:.1f}" x2="{right}" y2="{limit:.1f}" '
            f'stroke="{colour}" stroke-width="1" stroke-dasharray="4 4"/>'
        )
    out += [f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}"/>' for px, py in coords]
    legend_y = TOP + 20 + 20 * index
    out.append(
        f'<line x1="{WIDTH - RIGHT + 15}" y1="{legend_y}" x2="{WIDTH - RIGHT + 35}" '
        f'y2="{legend_y}" stroke="{colour}" stroke-width="2"/>'
    )
    out.append(f'<text x="{WIDTH - RIGHT + 40}" y="{legend_y + 4}">{escape(one.name)}</text>')
    if index == 0:
        out.append(
            f'<text x="{WIDTH - RIGHT + 15}" y="{HEIGHT - BOTTOM}" font-size="11">'
            "dashed: first point + 10 %</text>"
        )
    return out


def _nice(value: float) -> float:
    """The next round number at or above `value` (1, 2 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= value)


def _count(x: float) -> str:
    if x >= 1_000_000:
        return f"{x / 1_000_000:g}M"
    return f"{x / 1000:g}k" if x >= 1000 else f"{x:g}"
