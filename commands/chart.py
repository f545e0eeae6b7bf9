"""The digest's chart: cumulative workable leads per local day of the month against the goal line, as PNG."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import date

__all__ = ["CHART_DPI", "CHART_SIZE_PX", "cumulative_chart_png"]

#: Width x height in pixels: small enough for a chat message, wide enough for 31 days.
CHART_SIZE_PX = (640, 320)
CHART_DPI = 100


def cumulative_chart_png(*, days: Sequence[date], actual: Sequence[int], goal: Sequence[float],
                         title: str, goal_total: float | None = None) -> bytes:
    """Render the chart and return the PNG bytes.

    `days` are the local days of the month; `goal[i]` is the goal line at the end of `days[i]`
    (linear in business time, so it is flat over weekends and holidays); `actual[i]` the cumulative
    workable leads at the end of `days[i]` (at the report's instant for its own day), given only for
    days that have begun. matplotlib is imported here, not at module load, so the service starts
    fast; the object-oriented API with the Agg canvas keeps it thread-safe (no pyplot state).
    """
    if len(goal) != len(days) or len(actual) > len(days):
        raise ValueError("one goal value per day, and no actual value for a day that has not begun")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    width, height = CHART_SIZE_PX
    figure = Figure(figsize=(width / CHART_DPI, height / CHART_DPI), dpi=CHART_DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    numbers = [d.day for d in days]
    axes.plot(numbers, list(goal), color="#9aa0a6", linestyle="--", linewidth=1.5, label="goal (pro rata)")
    if actual:
        axes.plot(numbers[:len(actual)], list(actual), color="#1a73e8", linewidth=2.2, marker="o",
                  markersize=3, label="workable leads")
        axes.annotate(str(actual[-1]), (numbers[len(actual) - 1], actual[-1]), textcoords="offset points",
                      xytext=(-4, 6), ha="right", fontsize=8, color="#1a73e8")
    top = max([*goal, *actual, goal_total or 0, 1])
    axes.set_ylim(0, top * 1.08)
    axes.set_xlim(numbers[0] - 0.5 if numbers else 0.5, numbers[-1] + 0.5 if numbers else 31.5)
    axes.set_title(title, fontsize=10)
    axes.set_xlabel("day of month", fontsize=8)
    axes.set_ylabel("cumulative workable leads", fontsize=8)
    axes.tick_params(labelsize=7)
    axes.grid(True, axis="y", color="#e8eaed", linewidth=0.8)
    axes.legend(loc="upper left", fontsize=7, frameon=False)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=CHART_DPI)
    return buffer.getvalue()
