"""Charts drawn on the server as SVG: they need no JavaScript and no stylesheet of their own.

Every chart is a line chart of one or more series over a shared time axis, with an optional
horizontal limit line (a CPS limit, a QueueTime threshold). Values may be missing (``None``):
the line breaks there. The markup is built from numbers and escaped labels only.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

__all__ = ["Series", "line_chart", "sparkline"]

_PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2")
_W, _H = 640, 200
_LEFT, _RIGHT, _TOP, _BOTTOM = 48, 8, 28, 28


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    values: Sequence[float | None]


def _ticks(top: float) -> list[float]:
    if top <= 0:
        return [0.0]
    return [top * i / 4 for i in range(5)]


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _path(points: list[tuple[float, float] | None]) -> str:
    parts: list[str] = []
    pen_up = True
    for point in points:
        if point is None:
            pen_up = True
            continue
        parts.append(f"{'M' if pen_up else 'L'}{point[0]:.1f},{point[1]:.1f}")
        pen_up = False
    return " ".join(parts)


def line_chart(
    title: str,
    times: Sequence[datetime],
    series: Sequence[Series],
    *,
    limit: float | None = None,
    limit_label: str = "limit",
    unit: str = "",
) -> str:
    """An SVG line chart; an empty time axis draws the frame with "no data"."""
    values = [v for s in series for v in s.values if v is not None]
    top = max([*values, limit or 0.0, 0.0])
    top = top * 1.1 if top > 0 else 1.0
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM
    n = len(times)

    def x(i: int) -> float:
        return _LEFT + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y(v: float) -> float:
        return _TOP + plot_h * (1 - v / top)

    out = [
        f'<svg class="chart" viewBox="0 0 {_W} {_H}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<text x="4" y="15" font-size="13" font-weight="600" fill="#111827">'
        f"{escape(title)}</text>",
    ]
    legend_x = _W - _RIGHT
    for index, one in reversed(list(enumerate(series))):
        color = _PALETTE[index % len(_PALETTE)]
        out.append(
            f'<text x="{legend_x}" y="15" text-anchor="end" font-size="11" '
            f'fill="{color}">{escape(one.label)}</text>'
        )
        legend_x -= 8 + 7 * len(one.label)
    for tick in _ticks(top / 1.1 if values or limit else 1.0):
        ty = y(tick)
        out.append(
            f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{ty:.1f}" y2="{ty:.1f}" '
            'stroke="#e5e7eb" stroke-width="1"/>'
            f'<text x="{_LEFT - 4}" y="{ty + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="#6b7280">{_fmt(tick)}{escape(unit)}</text>'
        )
    if n:
        for i in sorted({0, n // 2, n - 1}):
            anchor = "start" if i == 0 and n > 1 else "end" if i == n - 1 and n > 1 else "middle"
            out.append(
                f'<text x="{x(i):.1f}" y="{_H - 8}" text-anchor="{anchor}" font-size="11" '
                f'fill="#6b7280">{times[i]:%m-%d %H:%M}</text>'
            )
    else:
        out.append(
            f'<text x="{_W / 2}" y="{_H / 2}" text-anchor="middle" font-size="13" '
            'fill="#6b7280">no data in this range</text>'
        )
    if limit is not None:
        ly = y(limit)
        out.append(
            f'<line class="limit" x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{ly:.1f}" y2="{ly:.1f}" '
            'stroke="#111827" stroke-dasharray="4 3" stroke-width="1"/>'
            f'<text x="{_W - _RIGHT - 2}" y="{ly - 3:.1f}" text-anchor="end" font-size="11" '
            f'fill="#111827">{escape(limit_label)}</text>'
        )
    for index, one in enumerate(series):
        color = _PALETTE[index % len(_PALETTE)]
        points = [None if v is None else (x(i), y(v)) for i, v in enumerate(one.values[:n])]
        drawn = _path(points)
        if drawn:
            out.append(
                f'<path class="series" d="{drawn}" fill="none" stroke="{color}" '
                f'stroke-width="1.8"><title>{escape(one.label)}</title></path>'
            )
        if n == 1 and points[0] is not None:
            out.append(
                f'<circle cx="{points[0][0]:.1f}" cy="{points[0][1]:.1f}" r="3" fill="{color}"/>'
            )
    out.append("</svg>")
    return "".join(out)


def sparkline(values: Sequence[float], *, width: int = 120, height: int = 24) -> str:
    """A tiny line without axes (the fleet table's last 24 hours)."""
    top = max([*values, 0.0]) or 1.0
    n = len(values)
    points = [
        (width * i / (n - 1) if n > 1 else width / 2, height - 2 - (height - 4) * v / top)
        for i, v in enumerate(values)
    ]
    drawn = _path(list(points))
    return (
        f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        'xmlns="http://www.w3.org/2000/svg" aria-hidden="true">'
        f'<path d="{drawn}" fill="none" stroke="#2563eb" stroke-width="1.5"/></svg>'
    )
