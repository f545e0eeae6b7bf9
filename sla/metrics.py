"""Metric arithmetic (DESIGN.md 2.7): percentiles, safe ratios, elapsed share, pace, projection."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import timedelta
from typing import Final

__all__ = [
    "DURATION_DIGITS",
    "FRACTION_DIGITS",
    "MONEY_DIGITS",
    "elapsed_fraction",
    "fraction",
    "minutes",
    "money",
    "pace",
    "percentile",
    "projection",
    "ratio",
]

#: Fractions (0..1 rates, shares, pace) are reported with this many decimals.
FRACTION_DIGITS: Final = 4
#: Durations (business minutes, seconds of system delay) and projections: one decimal.
DURATION_DIGITS: Final = 1
#: Money in the agreement's currency units: cents, to drop float noise from SUM().
MONEY_DIGITS: Final = 2


def percentile(values: Iterable[float], q: float) -> float | None:
    """The ``q``-quantile (``0 <= q <= 1``) of ``values`` by linear interpolation, or None if empty.

    This is the "inclusive linear" method, numpy's default (``numpy.percentile(values, 100 * q)``,
    Hyndman & Fan type 7, Excel's PERCENTILE.INC): sort the n values into ``x[0..n-1]``, let
    ``h = (n - 1) * q``; the result is ``x[floor(h)] + (h - floor(h)) * (x[floor(h) + 1] - x[floor(h)])``.
    So the 0.5-quantile of [5, 10, 20, 30] is 15.0, and the result always lies between the
    smallest and the largest value. ``values`` need not be sorted.
    """
    if not 0 <= q <= 1:
        raise ValueError(f"percentile q must be between 0 and 1, got {q!r}")
    ordered = sorted(float(v) for v in values)
    if not ordered:
        return None
    h = (len(ordered) - 1) * q
    low = math.floor(h)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (h - low) * (ordered[high] - ordered[low])


def ratio(numerator: float, denominator: float) -> float | None:
    """``numerator / denominator``, or None when the denominator is 0 (a rate of nothing is unknown,
    not zero)."""
    if denominator == 0:
        return None
    return numerator / denominator


def fraction(numerator: float, denominator: float) -> float | None:
    """A rate or share rounded to FRACTION_DIGITS decimals; None when the denominator is 0."""
    value = ratio(numerator, denominator)
    return None if value is None else round(value, FRACTION_DIGITS)


def elapsed_fraction(elapsed: timedelta, total: timedelta) -> float:
    """Share of a period's business time that has passed, clamped to 0..1 (unrounded).

    A period with no business time at all (a month of holidays) counts as not started: 0.0.
    """
    if total <= timedelta(0):
        return 0.0
    return min(1.0, max(0.0, elapsed / total))


def pace(actual: float, goal: float, elapsed: float) -> float | None:
    """Actual against the goal pro-rated to the elapsed share: ``actual / (goal * elapsed)``.

    1.0 means exactly on track. None when there is no goal or no business time has elapsed yet.
    Unrounded: callers round the result with FRACTION_DIGITS.
    """
    return ratio(actual, goal * elapsed)


def projection(actual: float, elapsed: float) -> float | None:
    """Straight-line month-end projection ``actual / elapsed``; None before any business time passed.

    Unrounded: callers round the result with DURATION_DIGITS (one decimal)."""
    return ratio(actual, elapsed)


def minutes(value: float | None) -> float | None:
    """A duration rounded to DURATION_DIGITS decimals (None stays None)."""
    return None if value is None else round(value, DURATION_DIGITS)


def money(value: float | None) -> float:
    """An amount as a float rounded to MONEY_DIGITS decimals; a SUM over nothing (None) is 0.0."""
    return 0.0 if value is None else round(float(value), MONEY_DIGITS)
