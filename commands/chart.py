"""The digest's chart: cumulative workable leads per local day of the month against the goal line, as PNG."""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Sequence
from datetime import date
from functools import cache

from PIL import Image, ImageDraw, ImageFont

__all__ = ["CHART_DPI", "CHART_SIZE_PX", "cumulative_chart_png"]

#: Width x height in pixels: small enough for a chat message, wide enough for 31 days.
CHART_SIZE_PX = (640, 320)
CHART_DPI = 100

#: Drawn this many times larger, then scaled down: smooth (anti-aliased) lines and text.
_SCALE = 2
_GOAL, _ACTUAL, _TEXT, _AXES, _GRID = "#9aa0a6", "#1a73e8", "#202124", "#5f6368", "#e8eaed"
#: The plot area inside the image (left, top, right, bottom), in final pixels.
_PLOT = (64, 30, 628, 278)

_Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


def cumulative_chart_png(*, days: Sequence[date], actual: Sequence[int], goal: Sequence[float],
                         title: str, goal_total: float | None = None) -> bytes:
    """Render the chart and return the PNG bytes.

    `days` are the local days of the month; `goal[i]` is the goal line at the end of `days[i]`
    (linear in business time, so it is flat over weekends and holidays); `actual[i]` the cumulative
    workable leads at the end of `days[i]` (at the report's instant for its own day), given only for
    days that have begun. Drawn with Pillow (a few milliseconds; matplotlib took about a hundred,
    most of a digest's time): a dashed goal line, the actual line with a dot per day and its last
    value, y grid lines at round numbers, the day numbers below and a legend in the upper left.
    """
    if len(goal) != len(days) or len(actual) > len(days):
        raise ValueError("one goal value per day, and no actual value for a day that has not begun")
    s = _SCALE
    width, height = CHART_SIZE_PX
    image = Image.new("RGB", (width * s, height * s), "white")
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = (v * s for v in _PLOT)
    numbers = [d.day for d in days]
    first, last = (numbers[0], numbers[-1]) if numbers else (1, 31)
    y_top = max([*goal, *actual, goal_total or 0, 1]) * 1.08
    step = _tick_step(y_top)

    def x_at(day: float) -> float:
        return left + (day - (first - 0.5)) / ((last + 0.5) - (first - 0.5)) * (right - left)

    def y_at(value: float) -> float:
        return bottom - value / y_top * (bottom - top)

    small, label, heading = _font(7 * s * 100 // 72), _font(8 * s * 100 // 72), _font(10 * s * 100 // 72)
    # Grid and y ticks.
    tick = 0.0
    while tick <= y_top:
        y = y_at(tick)
        draw.line([(left, y), (right, y)], fill=_GRID, width=s)
        _text(draw, (left - 6 * s, y), f"{tick:,.0f}", small, anchor="rm")
        tick += step
    # X ticks: every day's position, labelled every fifth day (and the first).
    for day in numbers:
        x = x_at(day)
        draw.line([(x, bottom), (x, bottom + 3 * s)], fill=_AXES, width=s)
        if day == first or day % 5 == 0:
            _text(draw, (x, bottom + 5 * s), str(day), small, anchor="mt")
    draw.rectangle([left, top, right, bottom], outline=_AXES, width=s)
    # The goal (dashed) and the actual line with a dot per day.
    _dashed(draw, [(x_at(d), y_at(v)) for d, v in zip(numbers, goal, strict=True)], fill=_GOAL, width=int(1.5 * s),
            dash=6 * s, gap=4 * s)
    if actual:
        points = [(x_at(d), y_at(v)) for d, v in zip(numbers, actual, strict=False)]
        if len(points) > 1:
            draw.line(points, fill=_ACTUAL, width=int(2.2 * s), joint="curve")
        r = 1.5 * s
        for x, y in points:
            draw.ellipse([x - r, y - r, x + r, y + r], fill=_ACTUAL)
        x, y = points[-1]
        _text(draw, (x - 4 * s, y - 6 * s), str(actual[-1]), label, anchor="rb", fill=_ACTUAL)
    # Legend, upper left inside the plot.
    lx, ly = left + 8 * s, top + 10 * s
    _dashed(draw, [(lx, ly), (lx + 22 * s, ly)], fill=_GOAL, width=int(1.5 * s), dash=6 * s, gap=4 * s)
    _text(draw, (lx + 28 * s, ly), "goal (pro rata)", small, anchor="lm")
    ly += 14 * s
    draw.line([(lx, ly), (lx + 22 * s, ly)], fill=_ACTUAL, width=int(2.2 * s))
    _text(draw, (lx + 28 * s, ly), "workable leads", small, anchor="lm")
    # Title and axis labels.
    _text(draw, ((left + right) / 2, 8 * s), title, heading, anchor="mt")
    _text(draw, ((left + right) / 2, (height - 4) * s), "day of month", label, anchor="mb")
    _vertical_text(image, (6 * s, (top + bottom) // 2), "cumulative workable leads", label)

    final = image.reduce(_SCALE)        # box filter: the 2x2 average of the drawing
    buffer = io.BytesIO()
    final.save(buffer, format="PNG", dpi=(CHART_DPI, CHART_DPI))
    return buffer.getvalue()


def _tick_step(top: float, most: int = 6) -> float:
    """A round step (1, 2 or 5 times a power of ten, at least 1) giving at most `most` intervals."""
    raw = max(top / most, 1.0)
    power = 10.0 ** math.floor(math.log10(raw))
    for multiple in (1, 2, 5, 10):
        if raw <= multiple * power:
            return multiple * power
    return 10 * power


@cache
def _font(size: int) -> _Font:
    """Pillow's built-in scalable font (no font file to ship or find)."""
    return ImageFont.load_default(size=size)


def _text(draw: ImageDraw.ImageDraw, at: tuple[float, float], text: str, font: _Font, *, anchor: str,
          fill: str = _TEXT) -> None:
    draw.text(at, text, font=font, fill=fill, anchor=anchor)


def _vertical_text(image: Image.Image, center: tuple[int, int], text: str, font: _Font) -> None:
    """`text` turned 90 degrees counter-clockwise, its left edge at center[0], centred on center[1]."""
    box = font.getbbox(text)
    width, height = int(box[2] - box[0]) + 2, int(box[3] - box[1]) + 2
    strip = Image.new("L", (width, height), 0)
    ImageDraw.Draw(strip).text((-box[0] + 1, -box[1] + 1), text, font=font, fill=255)
    turned = strip.rotate(90, expand=True)
    image.paste(_TEXT, (center[0], center[1] - turned.height // 2), turned)


def _dashed(draw: ImageDraw.ImageDraw, points: Sequence[tuple[float, float]], *, fill: str, width: int,
            dash: float, gap: float) -> None:
    """A polyline drawn dashed, the dash pattern running on across its corners."""
    on, left_in_phase = True, dash
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        length = math.hypot(x1 - x0, y1 - y0)
        done = 0.0
        while done < length:
            run = min(left_in_phase, length - done)
            if on:
                a, b = done / length, (done + run) / length
                draw.line([(x0 + (x1 - x0) * a, y0 + (y1 - y0) * a), (x0 + (x1 - x0) * b, y0 + (y1 - y0) * b)],
                          fill=fill, width=width)
            done += run
            left_in_phase -= run
            if left_in_phase <= 0:
                on = not on
                left_in_phase = dash if on else gap
