"""SVG charts drawn on the server: cumulative workable leads against the goal line, and the
speed-to-lead distribution. Each has a <title> and a <desc> saying in words what it shows, the
lines differ by dash pattern and markers (not only colour), and every bar carries its number."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from markupsafe import Markup, escape

W, H = 640, 300
LEFT, TOP, RIGHT, BOTTOM = 52, 24, 624, 262


def _nice_max(value: float) -> float:
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000, 20000, 50000):
        if value <= step * 5:
            return float(step * 5)
    return value


def cumulative(days: Sequence[date], actual: Sequence[int], goal: Sequence[float], *, title: str) -> Markup:
    """Cumulative workable leads per local day (solid line, dots) against the goal (dashed line)."""
    n = max(len(days), 1)
    top_value = _nice_max(max([*goal, *actual, 1]))

    def x(i: int) -> float:
        return LEFT + (i + 0.5) / n * (RIGHT - LEFT)

    def y(v: float) -> float:
        return BOTTOM - v / top_value * (BOTTOM - TOP)

    last_actual = actual[-1] if actual else 0
    goal_today = goal[len(actual) - 1] if actual else 0.0
    goal_end = goal[-1] if goal else 0.0
    desc = (f"{last_actual} workable leads so far this month; the goal line stands at {goal_today:,.0f} "
            f"for the same day and reaches {goal_end:,.0f} at the end of the month.")
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" '
             f'aria-labelledby="cum-title cum-desc" class="chart">',
             f'<title id="cum-title">{escape(title)}</title><desc id="cum-desc">{escape(desc)}</desc>']
    for k in range(6):
        value = top_value * k / 5
        parts.append(f'<line x1="{LEFT}" x2="{RIGHT}" y1="{y(value):.1f}" y2="{y(value):.1f}" class="grid"/>'
                     f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end" class="tick">{value:,.0f}</text>')
    for i, day in enumerate(days):
        if i % 5 == 0 or i == len(days) - 1:
            parts.append(f'<text x="{x(i):.1f}" y="{BOTTOM + 16}" text-anchor="middle" class="tick">{day.day}</text>')
    if goal:
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(goal))
        parts.append(f'<polyline points="{points}" class="goal" fill="none" stroke-dasharray="6 4"/>')
    if actual:
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(actual))
        parts.append(f'<polyline points="{points}" class="actual" fill="none"/>')
        parts += [f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5" class="dot"/>' for i, v in enumerate(actual)]
        i = len(actual) - 1
        parts.append(f'<text x="{x(i) + 6:.1f}" y="{y(actual[-1]) - 6:.1f}" class="label">{last_actual}</text>')
    parts.append(f'<g class="legend"><line x1="{LEFT + 8}" x2="{LEFT + 32}" y1="{TOP + 6}" y2="{TOP + 6}" '
                 f'class="actual"/><text x="{LEFT + 36}" y="{TOP + 10}">workable leads (solid)</text>'
                 f'<line x1="{LEFT + 190}" x2="{LEFT + 214}" y1="{TOP + 6}" y2="{TOP + 6}" class="goal" '
                 f'stroke-dasharray="6 4"/><text x="{LEFT + 218}" y="{TOP + 10}">goal (dashed)</text></g>')
    parts.append("</svg>")
    return Markup("".join(parts))


def distribution(labels: Sequence[str], counts: Sequence[int], *, title: str) -> Markup:
    """One bar per speed-to-lead bucket, its count written on it."""
    n = max(len(counts), 1)
    total = sum(counts)
    top_value = _nice_max(max([*counts, 1]))
    width = (RIGHT - LEFT) / n
    desc = "; ".join(f"{label}: {count}" for label, count in zip(labels, counts, strict=True))
    desc = (f"{total} leads first touched. " + desc + ".") if total else "No lead has been touched yet in this period."
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" '
             f'aria-labelledby="speed-title speed-desc" class="chart">',
             f'<title id="speed-title">{escape(title)}</title><desc id="speed-desc">{escape(desc)}</desc>']
    for i, (label, count) in enumerate(zip(labels, counts, strict=True)):
        height = count / top_value * (BOTTOM - TOP)
        x0 = LEFT + i * width + 4
        parts.append(f'<rect x="{x0:.1f}" y="{BOTTOM - height:.1f}" width="{width - 8:.1f}" '
                     f'height="{height:.1f}" class="bar"/>'
                     f'<text x="{x0 + (width - 8) / 2:.1f}" y="{BOTTOM - height - 4:.1f}" text-anchor="middle" '
                     f'class="label">{count}</text>'
                     f'<text x="{x0 + (width - 8) / 2:.1f}" y="{BOTTOM + 16}" text-anchor="middle" '
                     f'class="tick">{escape(label)}</text>')
    parts.append(f'<line x1="{LEFT}" x2="{RIGHT}" y1="{BOTTOM}" y2="{BOTTOM}" class="axis"/></svg>')
    return Markup("".join(parts))
