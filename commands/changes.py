"""The overview's "change from the previous period": which instant the previous period is, and each
figure's change from it in plain words, readable without colour ("▲ 4 pts from 62%, better").

**The previous period.** The numbers are month to date as of an instant T. They are compared with
the previous local calendar month as of the instant at which the same share of ITS business time
had passed: the share `period.elapsed` that pace and projection use (business hours and holidays
of the agreement's calendar). T at 43% of December's business time compares with the moment 43% of
November's business time had passed. Counts (workable leads, value, breaches) are cumulative, so
comparing the same share of business time compares like with like even when the months have
different numbers of business days or start on different weekdays (the same day of the month
would compare a Monday morning with a Sunday). A whole month (T after its last business hour:
"last month", or a date at the end of a month) compares with the whole previous month, to its
last second. Before the month's first business hour (0%) the previous period is the previous
month's first instant, so there is nothing to compare yet.

**The change.** Computed from the figures as the page shows them (whole percent, whole minutes,
whole money, one decimal), so the arrow always agrees with the two numbers a reader sees: a
percentage changes by points ("▲ 4 pts"), speed by business time ("▼ 12 min"), counts by their
number. Each change says "better" or "worse" where the agreement says which way is good (more
workable leads, fewer breaches, a faster first touch); figures where neither way is good (leads
handed off, nurture, capacity filled) say neither. The numbers of both instants come from
`storage.metrics.status`; this module only compares them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from commands import labels
from sla.calendar import BusinessCalendar
from sla.metrics import elapsed_fraction

Kind = Literal["count", "number", "pct", "minutes", "money"]
#: Which way is good: "up", "down", or None (neither).
Better = Literal["up", "down"] | None

#: The overview's figures: key (a path in the status JSON) -> what it is and which way is good.
FIGURES: dict[str, tuple[Kind, Better]] = {
    "marketing.workable": ("count", "up"),
    "marketing.pace": ("pct", "up"),
    "marketing.projected": ("number", "up"),
    "marketing.value": ("money", "up"),
    "marketing.leads": ("count", None),
    "marketing.nurture": ("count", None),
    "rejected.total": ("count", "down"),
    "sales.worked_pct": ("pct", "up"),
    "sales.within_sla_pct": ("pct", "up"),
    "sales.speed_to_lead_p50": ("minutes", "down"),
    "sales.speed_to_lead_p90": ("minutes", "down"),
    "sales.attempts_per_lead": ("number", "up"),
    "sales.connect_rate": ("pct", "up"),
    "sales.opportunity_rate": ("pct", "up"),
    "capacity.utilization": ("pct", None),
    "sales.open_breaches": ("count", "down"),
}
#: Each rep's row of the per-rep table (under `sales.per_rep.KEY.`).
REP_FIGURES: dict[str, tuple[Kind, Better]] = {
    "worked_pct": ("pct", "up"),
    "within_sla_pct": ("pct", "up"),
    "attempts_per_lead": ("number", "up"),
    "connect_rate": ("pct", "up"),
    "open_breaches": ("count", "down"),
}


@dataclass(frozen=True)
class Previous:
    """The previous period of numbers as of `current`."""

    as_of: datetime
    #: The whole previous month (the current numbers cover a whole month).
    whole_month: bool
    #: The share of the month's business time both instants have in common (0..1).
    share: float


def previous_as_of(calendar: BusinessCalendar, as_of: datetime) -> Previous:
    """The previous local month at the same share of its business time (see the module's doc)."""
    start, end = calendar.month_bounds(as_of)
    share = elapsed_fraction(calendar.elapsed(start, as_of), calendar.elapsed(start, end))
    before_start, _ = calendar.month_bounds(start - timedelta(seconds=1))
    if share >= 1.0:
        return Previous(start - timedelta(seconds=1), True, 1.0)
    total = calendar.elapsed(before_start, start)
    at = calendar.add(before_start, total * share) if share > 0 else before_start
    # Whole seconds, like the page's own as_of; never past the previous month's last second.
    at = min(at.replace(microsecond=0), start - timedelta(seconds=1))
    return Previous(at, False, share)


def describe(calendar: BusinessCalendar, previous: Previous, when: str) -> str:
    """What the changes are against, for the page: `when` is the instant as people read it."""
    month = f"{calendar.local(previous.as_of):%B %Y}"
    if previous.whole_month:
        return f"the whole of {month}"
    return f"{month} as of {when}, when the same {labels.percent(previous.share)} of its business time had passed"


@dataclass(frozen=True)
class Change:
    """One figure's change: `text` is what the page shows next to it."""

    text: str
    #: The figure's previous value as the status JSON has it (None: none then).
    previous: Any
    direction: Literal["up", "down", "same", "none"]
    #: "better", "worse", or None (no change, nothing to compare, or neither way is good).
    verdict: str | None


def _shown(kind: Kind, value: float) -> float:
    """The value as the page shows it (the change is the difference of what a reader sees)."""
    if kind == "pct":
        return float(round(value * 100))
    if kind == "number":
        return round(value, 1)
    return float(round(value))


def _amount(kind: Kind, amount: float, currency: str | None) -> str:
    if kind == "pct":
        return f"{amount:.0f} pt" + ("" if amount == 1 else "s")
    if kind == "minutes":
        return labels.business_time(amount)
    if kind == "money":
        return labels.money(amount, currency)
    return f"{amount:,.0f}" if float(amount).is_integer() else f"{amount:,.1f}"


def _value(kind: Kind, value: float, currency: str | None) -> str:
    if kind == "pct":
        return labels.percent(value)
    if kind == "minutes":
        return labels.business_time(value)
    if kind == "money":
        return labels.money(value, currency)
    return _amount(kind, _shown(kind, value), currency)


def change(kind: Kind, better: Better, current: Any, previous: Any, *, currency: str | None = None) -> Change:
    """The change of one figure from `previous` to `current` (either may be None: no figure)."""
    if previous is None:   # nothing to compare with
        return Change("n/a then" + (" too" if current is None else ""), None, "none", None)
    was = _value(kind, float(previous), currency)
    if current is None:
        return Change(f"was {was}", previous, "none", None)
    delta = _shown(kind, float(current)) - _shown(kind, float(previous))
    if delta == 0:
        return Change(f"= no change from {was}", previous, "same", None)
    direction: Literal["up", "down"] = "up" if delta > 0 else "down"
    verdict = None if better is None else ("better" if direction == better else "worse")
    arrow = "▲" if direction == "up" else "▼"
    text = f"{arrow} {_amount(kind, abs(delta), currency)} from {was}" + (f", {verdict}" if verdict else "")
    return Change(text, previous, direction, verdict)


def _at(status: Mapping[str, Any], key: str) -> Any:
    value: Any = status
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def changes(current: Mapping[str, Any], previous: Mapping[str, Any], *,
            currency: str | None = None) -> dict[str, Change]:
    """Every figure's change, keyed like the page's figures (`marketing.workable`,
    `marketing.by_source.webinar`, `sales.per_rep.ana.worked_pct`, ...), from two status JSONs
    (`Status.model_dump(mode="json")`, as GET /api/v1/status sends them)."""
    found: dict[str, Change] = {}

    def add(key: str, kind: Kind, better: Better, *, zero: bool = False) -> None:
        now, then = _at(current, key), _at(previous, key)
        if zero:   # a count missing from one period's breakdown is a 0 there
            now, then = now or 0, then or 0
        found[key] = change(kind, better, now, then, currency=currency)

    for key, (kind, better) in FIGURES.items():
        add(key, kind, better)
    for group, better in (("marketing.by_source", "up"), ("rejected.by_reason", "down"),
                          ("marketing.per_rep", "up")):
        for name in keys_of(_at(current, group), _at(previous, group)):
            add(f"{group}.{name}", "count", better, zero=True)
    for rep in keys_of(_at(current, "sales.per_rep"), _at(previous, "sales.per_rep")):
        for name, (kind, better) in REP_FIGURES.items():
            add(f"sales.per_rep.{rep}.{name}", kind, better, zero=kind == "count")
    return found


def keys_of(*groups: Any) -> list[str]:
    """The keys of breakdowns (by source, by reason, per rep) in either period, the current first."""
    seen: dict[str, None] = {}
    for group in groups:
        if isinstance(group, Mapping):
            seen.update(dict.fromkeys(map(str, group)))
    return list(seen)
