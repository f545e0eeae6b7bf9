"""Rates with their 95% Wilson interval (the one of `sla.closed_loop`) and how a rate compares with
a reference rate (a target, the cold-call baseline) once its interval is taken into account."""

from __future__ import annotations

from sla.closed_loop import wilson
from sla.metrics import FRACTION_DIGITS


def interval(successes: int, trials: int) -> list[float] | None:
    """The 95% Wilson interval as ``[low, high]`` rounded like every fraction; None with no trials."""
    bounds = wilson(successes, trials)
    if bounds is None:
        return None
    return [round(bounds[0], FRACTION_DIGITS), round(bounds[1], FRACTION_DIGITS)]


def versus(successes: int, trials: int, reference: float | None) -> str | None:
    """``above`` when the whole interval of successes / trials is above `reference`, ``below`` when
    its upper bound is below it, else ``unclear``; None with no reference or no trials. Judged on
    the unrounded bounds."""
    bounds = wilson(successes, trials)
    if bounds is None or reference is None:
        return None
    if bounds[0] > reference:
        return "above"
    if bounds[1] < reference:
        return "below"
    return "unclear"
