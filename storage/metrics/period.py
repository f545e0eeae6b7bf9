"""The scope (all, a team, a rep) and the period (the local month of `as_of`) of every report."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from sla.agreement import Agreement, Rep
from sla.calendar import BusinessCalendar
from sla.metrics import DURATION_DIGITS, FRACTION_DIGITS, elapsed_fraction
from storage.metrics.model import PeriodStatus
from storage.metrics.sql import _utc
from storage.tables import Lead

#: What finds a query's rows (see Scope.where): a range of an indexed instant, `is_open`, or
#: ("day") one local day of `first_touch_at`, `opportunity_at`, `sla_due` or `closed_at`.
Driver = Literal["handed_off_at", "routed_at", "is_open", "day"]


@dataclass(frozen=True)
class Scope:
    """Which leads a report covers: everything, one team's (`Lead.team`) or one rep's (`Lead.owner`)."""

    kind: str                    # all | team | rep
    key: str | None
    #: The agreement's reps in scope (active or not), in agreement order.
    reps: tuple[Rep, ...]

    @property
    def text(self) -> str:
        return self.kind if self.key is None else f"{self.kind}:{self.key}"

    @property
    def active_reps(self) -> tuple[Rep, ...]:
        return tuple(r for r in self.reps if r.active)

    def where(self, *, driven_by: Driver) -> list[ColumnElement[bool]]:
        """The scope's filter for a query whose rows are found through the index of `driven_by`.

        The team or owner test is written so that no index can serve it (``team || ''``) unless an
        index leads with it and the query's own driver: ``(owner, is_open)`` for open leads.
        Otherwise SQLite's planner (with no ANALYZE statistics) would walk the team's or rep's
        whole history through that index instead of the period's range, and a month's query would
        leave the covering index (which holds `team` and `owner`) for table lookups.
        """
        if self.kind == "all":
            return []
        column = col(Lead.team) if self.kind == "team" else col(Lead.owner)
        indexed = driven_by == "is_open" and self.kind == "rep"
        return [column == self.key if indexed else column.concat("") == self.key]


def parse_scope(agreement: Agreement, scope: str) -> Scope:
    """``all``, ``team:KEY`` or ``rep:KEY`` -> Scope; anything else, or an unknown key, is a ValueError."""
    text = scope.strip()
    if text == "all":
        return Scope("all", None, tuple(agreement.all_reps()))
    kind, sep, key = text.partition(":")
    if not sep or kind not in ("team", "rep") or not key:
        raise ValueError(f"bad scope {scope!r}: use all, team:KEY or rep:KEY")
    if kind == "team":
        team = agreement.team(key)
        if team is None:
            known = ", ".join(t.key for t in agreement.teams)
            raise ValueError(f"unknown team {key!r} in scope {scope!r} (teams: {known})")
        return Scope("team", key, tuple(team.reps))
    rep = agreement.rep(key)
    if rep is None:
        known = ", ".join(r.key for r in agreement.all_reps())
        raise ValueError(f"unknown rep {key!r} in scope {scope!r} (reps: {known})")
    return Scope("rep", key, (rep,))


@dataclass(frozen=True)
class Period:
    """The local calendar month containing `as_of`, and how much of its business time has passed."""

    start: datetime
    end: datetime
    as_of: datetime
    business_elapsed: timedelta
    business_total: timedelta

    @property
    def elapsed(self) -> float:
        """Unrounded share of the month's business time gone by `as_of` (0..1)."""
        return elapsed_fraction(self.business_elapsed, self.business_total)

    def numbers(self) -> PeriodStatus:
        """The Status JSON's `period`."""
        return PeriodStatus(
            start=self.start, end=self.end,
            elapsed=round(self.elapsed, FRACTION_DIGITS),
            business_minutes_elapsed=round(self.business_elapsed.total_seconds() / 60, DURATION_DIGITS),
            business_minutes_total=round(self.business_total.total_seconds() / 60, DURATION_DIGITS),
        )


def period_of(calendar: BusinessCalendar, as_of: datetime) -> Period:
    as_of = _utc(as_of)
    start, end = calendar.month_bounds(as_of)
    return Period(start=start, end=end, as_of=as_of, business_elapsed=calendar.elapsed(start, as_of),
                  business_total=calendar.elapsed(start, end))
