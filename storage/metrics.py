"""The SQL metric aggregations of DESIGN.md 2.7, shared by the digest, `/sla status` and the API.

Every number is a COUNT/SUM (with CASE) over the lead table, filtered on indexed instants
(`handed_off_at`, `routed_at`, `is_open`, and one local day of `first_touch_at`, `opportunity_at`,
`sla_due` or `closed_at`), so the cost of a report follows the volume of its period, not the size
of the history. Percentiles fetch only the period's column values and interpolate in Python with
`sla.metrics.percentile`, which gives identical results on SQLite and PostgreSQL.

Why it is fast (1,000,000 leads of history, ~40,000 a month): the month's leads are read from two
covering indexes (`ix_lead_handoff_metrics`, `ix_lead_routed_metrics`, see storage/tables.py) that
hold every column these aggregations use, never from the wide lead rows; `status()` reads the
month's handed-off leads in one grouped scan (Marketing, the closed-loop segments and the rejected
leads all come from it) and the Sales cohort in another (the closed-loop split by first touch is
folded from the same counts); "yesterday" and the past breach list read one day's range of their
own instant. No rollup table: every number is still computed from the lead rows as of `as_of`.

Definitions (DESIGN.md 2.7, with the choices it leaves open made explicit):

- **Period**: the local calendar month containing `as_of` (`calendar.month_bounds`). "MTD" leads are
  those with `handed_off_at` in ``[month start, as_of]``. `period.elapsed` is business time from the
  month start to `as_of` over business time in the whole month.
- **As of an instant**: every "has it happened?" test uses the instant stored for it, compared with
  `as_of` (handed off, routed, first touch, card posted, opportunity, won, closed), so a past `as_of`
  gives the numbers as they stood then. Counters (`attempts`, `connects`) are current values; when
  a lead's `last_attempt_at` is after `as_of` they are recounted from its `lead_event` rows up to
  `as_of` (a correlated subquery that only runs for those few leads), so they are exact too. What
  cannot be rebuilt: the owner and team (current ones are used) and the state of a lead that left
  `recycled` later (see cadence).
- **Scope**: ``all``, ``team:KEY`` (filters `Lead.team`) or ``rep:KEY`` (filters `Lead.owner`, the
  current owner). Nurture leads are never routed, so they have no team or owner: for team and rep
  scopes the nurture count is always 0.
- **Marketing**: `workable` = workable MTD leads; `goal` = `workable_leads_per_rep_per_month` x active
  reps (``Rep.active``) in scope (a rep scope gets that rep's own goal, 0 if inactive);
  `pace` = workable / (goal x elapsed) rounded to 4 decimals, None if goal or elapsed is 0;
  `projected` = workable / elapsed as a float rounded to 1 decimal (None if elapsed is 0);
  `value` = sum of `value` over workable MTD leads; `value_goal` = `lead_value_goal_per_month` x
  (active reps in scope / all active reps), None if the agreement sets no value goal;
  `nurture` = non-workable MTD leads; `by_source` and `mix` count workable MTD leads (a missing
  source/offer is reported as ``"unknown"``); `per_rep` counts workable MTD leads by current owner,
  listing every rep of the scope (0 included); leads without an owner are left out of it.
- **Sales cohort**: workable leads with `routed_at` in ``[month start, as_of]`` whose original
  deadline `sla_due` is strictly before `as_of` (a touch exactly at the deadline is still within
  SLA, so the deadline has only passed after it), plus any touched by `as_of` (`first_touch_at <=
  as_of`). A lead closed without any attempt (e.g. disqualified as a duplicate) stays in the cohort
  once its deadline passes and counts as not worked and not within SLA, as DESIGN.md says.
  `worked_pct` = touched by `as_of` / cohort (the first attempt sets `first_touch_at`);
  `within_sla_pct` = touched with `first_touch_met` / cohort; speed to lead p50/p90 over the cohort's
  touched leads (business minutes; untouched leads have no speed yet and are left out);
  `system_delay_p50_s`/`_p95_s` over cohort leads whose card was posted by `as_of` (seconds);
  `attempts_per_lead` = attempts (as of `as_of`) on cohort leads / cohort, rounded to 2 decimals;
  `cadence_met_pct` = of cohort leads in state ``recycled`` closed by `as_of`, the share with
  attempts >= their tier's `attempts.count` (tiers looked up by key in the current agreement; a
  tier key no longer in it is judged by the last, catch-all tier, as `sla.clocks.Clocks` does);
  `connect_rate` = cohort leads with a connect by `as_of` / worked leads;
  `opportunity_rate` = workable MTD leads with `opportunity_at <= as_of` / workable MTD leads (the
  numerator is taken from the denominator's own leads, so it is a true share; an opportunity this
  month on a lead handed off last month counts for last month); `pipeline_value` = sum of
  `opportunity_amount` over those same opportunities; the split by first touch met vs missed is
  over the cohort (met = touched within SLA, missed = the rest of the cohort).
- **Open breaches**: leads open at `as_of`, routed by then, whose original deadline `sla_due` is
  before `as_of` and with no first touch by `as_of`; listed with their current owner, oldest deadline
  first, `minutes_overdue` = business minutes from `sla_due` to `as_of`. "Open at as_of" is
  `is_open` (a closed lead never reopens), or closed after `as_of` for leads routed within
  LOOKBACK before `as_of` (there is no index on `closed_at`; see LOOKBACK).
- **Closed loop**: per (source, offer) among leads handed off in ``[start, as_of]`` (default: the
  month): leads, workable, opportunities / won by `as_of`, bookings of those won, value per lead =
  bookings / leads; opportunity rate over the cohort split by first touch met vs missed.
- **Capacity**: workable leads routed in the local week (Monday 00:00) up to `as_of` / summed
  `capacity_per_week` of the active reps in scope.
- **Rejected**: MTD leads Sales disqualified by `as_of` (`disqualify_reason` set, `closed_at <=
  as_of`), by reason and by source. A lead handed off last month and rejected this month counts for
  last month: it is feedback on what Marketing delivered in the period.
- **Yesterday**: the local calendar day before `as_of`'s (or any `day` given): workable and nurture
  leads handed off that day; first touches made that day (and how many within SLA); opportunities
  created that day (any lead) and their amount; breaches that happened that day (cohort leads whose
  `sla_due` fell that day without a first touch in time, as judged at `as_of`). Only leads
  handed off or routed within LOOKBACK before the day are looked at.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, Literal

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col

from sla.agreement import Agreement, Rep
from sla.calendar import BusinessCalendar
from sla.lifecycle import ATTEMPTS, Action, State
from sla.metrics import (
    DURATION_DIGITS,
    FRACTION_DIGITS,
    elapsed_fraction,
    fraction,
    minutes,
    money,
    pace,
    projection,
    ratio,
)
from storage.experiments import experiments_status
from storage.tables import Lead, LeadEvent

__all__ = [
    "LOOKBACK",
    "UNKNOWN",
    "Period",
    "Scope",
    "capacity",
    "closed_loop",
    "cumulative_workable",
    "open_breaches",
    "parse_scope",
    "period_of",
    "rejected_by_reason",
    "status",
    "yesterday",
]

#: How far back from the instant (or day) in question leads are looked at when the fact tested has
#: no index of its own (`closed_at`, `first_touch_at`, `opportunity_at`, `sla_due`): it keeps the
#: cost at about two months of volume. A lead routed earlier that was closed, first touched or made
#: an opportunity after it is missed by the past-`as_of` breach list and by yesterday's highlights.
LOOKBACK: Final = timedelta(days=62)
#: What finds a query's rows (see Scope.where): a range of an indexed instant, `is_open`, or
#: ("day") one local day of `first_touch_at`, `opportunity_at`, `sla_due` or `closed_at`.
Driver = Literal["handed_off_at", "routed_at", "is_open", "day"]
#: The key used for a missing source, offer or reason in the by-key dictionaries.
UNKNOWN: Final = "unknown"
#: How many open breaches `status` lists (the count is always complete).
BREACH_LIST_LIMIT: Final = 100

_ATTEMPT_TYPES: Final = sorted(a.value for a in ATTEMPTS)
_CONNECT_TYPE: Final = Action.CONNECTED.value


# --- scope and period ----------------------------------------------------------------------


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

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": _iso(self.start), "end": _iso(self.end),
            "elapsed": round(self.elapsed, FRACTION_DIGITS),
            "business_minutes_elapsed": minutes(self.business_elapsed.total_seconds() / 60),
            "business_minutes_total": minutes(self.business_total.total_seconds() / 60),
        }


def period_of(calendar: BusinessCalendar, as_of: datetime) -> Period:
    as_of = _utc(as_of)
    start, end = calendar.month_bounds(as_of)
    return Period(start=start, end=end, as_of=as_of, business_elapsed=calendar.elapsed(start, as_of),
                  business_total=calendar.elapsed(start, end))


# --- status --------------------------------------------------------------------------------


def status(session: Session, *, agreement: Agreement, calendar: BusinessCalendar, as_of: datetime,
           scope: str = "all") -> dict[str, Any]:
    """The Status JSON of the contract (`GET /api/v1/status`) plus every other number of DESIGN.md 2.7.

    Keys: ``as_of``, ``scope``, ``period``, ``marketing``, ``sales``, ``breaches`` (the open breach
    list, at most BREACH_LIST_LIMIT), ``closed_loop``, ``capacity``, ``rejected``, ``yesterday``.
    Raises ValueError for a malformed scope or an unknown team or rep.
    """
    where = parse_scope(agreement, scope)
    period = period_of(calendar, as_of)
    # One scan of the month's handed-off leads serves Marketing, the closed loop and the rejected
    # leads; one scan of the Sales cohort serves Sales and the closed loop's first-touch split.
    handed = _handoff_groups(session, period.start, period.as_of, where)
    cohort = _cohort_counts(session, agreement, period, where)
    marketing = _marketing(agreement, period, where, handed)
    sales = _sales(session, agreement, period, where, cohort, workable_mtd=marketing["workable"],
                   opportunities=marketing.pop("_opportunities"), pipeline=marketing.pop("_pipeline"))
    breach_counts = _breach_counts(session, period.as_of, where)
    sales["open_breaches"] = sum(breach_counts.values())
    for rep, counts in sales["per_rep"].items():
        counts["open_breaches"] = breach_counts.get(rep, 0)
    return {
        "as_of": _iso(period.as_of),
        "scope": where.text,
        "period": period.as_dict(),
        "marketing": marketing,
        "sales": sales,
        "breaches": open_breaches(session, agreement=agreement, calendar=calendar, as_of=period.as_of,
                                  scope=scope, limit=BREACH_LIST_LIMIT),
        "closed_loop": _closed_loop_of(period.start, handed, sum(cohort.values(), _CohortCounts())),
        "capacity": capacity(session, agreement=agreement, calendar=calendar, as_of=period.as_of,
                             scope=scope),
        "rejected": _rejected_of([(g.rejected, g.source, g.leads) for g in handed if g.rejected is not None]),
        "yesterday": yesterday(session, agreement=agreement, calendar=calendar, as_of=period.as_of,
                               scope=scope),
        "experiments": experiments_status(session, agreement=agreement, calendar=calendar, as_of=period.as_of,
                                          scope=scope),
    }


@dataclass(frozen=True)
class _HandoffGroup:
    """The counts of one (source, offer, owner, rejection reason) group of handed-off leads."""

    source: str | None
    offer: str | None
    owner: str | None
    #: The reason Sales disqualified these leads by `as_of` (None: not rejected by then).
    rejected: str | None
    leads: int
    workable: int
    value: float                 # over workable leads
    opportunities: int           # workable leads with an opportunity by as_of
    pipeline: float              # their opportunity amounts
    any_opportunities: int       # any lead (workable or not) with an opportunity by as_of
    won: int
    bookings: float


def _handoff_groups(session: Session, start: datetime, as_of: datetime, scope: Scope) -> list[_HandoffGroup]:
    """The leads handed off in ``[start, as_of]``, counted per (source, offer, owner, rejection
    reason by `as_of`): one scan of the covering index `ix_lead_handoff_metrics`, a few hundred
    groups at most, folded by `_marketing`, `_closed_loop_of` and `_rejected_of`."""
    workable = _workable()
    opportunity = col(Lead.opportunity_at) <= as_of
    workable_opportunity = sa.and_(workable, opportunity)
    won = col(Lead.won_at) <= as_of
    rejected = sa.case((sa.and_(col(Lead.disqualify_reason).is_not(None), col(Lead.closed_at) <= as_of),
                        col(Lead.disqualify_reason)), else_=sa.null()).label("rejected")
    rows = _run(session,
        sa.select(
            col(Lead.source), col(Lead.offer), col(Lead.owner), rejected,
            sa.func.count().label("leads"),
            _count_if(workable).label("workable"),
            _sum(sa.case((workable, col(Lead.value)), else_=0.0)).label("value"),
            _count_if(workable_opportunity).label("opportunities"),
            _sum(sa.case((workable_opportunity, col(Lead.opportunity_amount)), else_=0.0)).label("pipeline"),
            _count_if(opportunity).label("any_opportunities"),
            _count_if(won).label("won"),
            _sum(sa.case((won, col(Lead.bookings)), else_=0.0)).label("bookings"),
        )
        .where(*_handed_off_between(start, as_of), *scope.where(driven_by="handed_off_at"))
        .group_by(col(Lead.source), col(Lead.offer), col(Lead.owner), rejected)
    ).all()
    return [
        _HandoffGroup(source=row.source, offer=row.offer, owner=row.owner, rejected=row.rejected,
                      leads=int(row.leads), workable=int(row.workable), value=float(row.value),
                      opportunities=int(row.opportunities), pipeline=float(row.pipeline),
                      any_opportunities=int(row.any_opportunities), won=int(row.won),
                      bookings=float(row.bookings))
        for row in rows
    ]


def _marketing(agreement: Agreement, period: Period, scope: Scope,
               groups: Sequence[_HandoffGroup]) -> dict[str, Any]:
    leads = n_workable = opportunities = 0
    value = pipeline = 0.0
    by_source: dict[str, int] = {}
    by_offer: dict[str, int] = {}
    per_rep: dict[str, int] = {r.key: 0 for r in scope.reps}
    for row in groups:
        count = row.workable
        leads += row.leads
        n_workable += count
        value += row.value
        opportunities += row.opportunities
        pipeline += row.pipeline
        if count:
            _add(by_source, row.source or UNKNOWN, count)
            _add(by_offer, row.offer or UNKNOWN, count)
            if row.owner is not None:
                _add(per_rep, row.owner, count)

    active = len(scope.active_reps)
    goal = agreement.marketing.workable_leads_per_rep_per_month * active
    all_active = sum(1 for r in agreement.all_reps() if r.active)
    value_goal_month = agreement.marketing.lead_value_goal_per_month
    share = ratio(active, all_active)
    value_goal = None if value_goal_month is None or share is None else money(value_goal_month * share)
    paced = pace(n_workable, goal, period.elapsed)
    projected = projection(n_workable, period.elapsed)
    return {
        "leads": leads,
        "workable": n_workable,
        "goal": goal,
        "active_reps": active,
        "pace": None if paced is None else round(paced, FRACTION_DIGITS),
        "projected": None if projected is None else round(projected, DURATION_DIGITS),
        "value": money(value),
        "value_goal": value_goal,
        "nurture": leads - n_workable,
        "by_source": _sorted_counts(by_source),
        "mix": {"source": _sorted_counts(by_source), "offer": _sorted_counts(by_offer)},
        "per_rep": per_rep,
        "_opportunities": opportunities,
        "_pipeline": pipeline,
    }


def _sales(session: Session, agreement: Agreement, period: Period, scope: Scope,
           per_owner: dict[str | None, _CohortCounts], *, workable_mtd: int, opportunities: int,
           pipeline: float) -> dict[str, Any]:
    total = _CohortCounts()
    for counts in per_owner.values():
        total += counts
    cohort = _cohort(period)
    touched = _touched(period.as_of)
    in_scope = scope.where(driven_by="routed_at")
    speed_p50, speed_p90 = _percentiles(session, col(Lead.speed_to_lead_min), [*cohort, touched, *in_scope],
                                        (0.5, 0.9))
    delay_p50, delay_p95 = _percentiles(session, col(Lead.system_delay_s),
                                        [*cohort, col(Lead.card_posted_at) <= period.as_of, *in_scope],
                                        (0.5, 0.95))
    per_rep: dict[str, dict[str, Any]] = {r.key: _CohortCounts().rates() for r in scope.reps}
    for owner, counts in per_owner.items():
        if owner is not None:
            per_rep[owner] = counts.rates()
    return {
        "cohort": total.cohort,
        "worked": total.worked,
        "worked_pct": fraction(total.worked, total.cohort),
        "within_sla": total.met,
        "within_sla_pct": fraction(total.met, total.cohort),
        "speed_to_lead_p50": minutes(speed_p50),
        "speed_to_lead_p90": minutes(speed_p90),
        "system_delay_p50_s": minutes(delay_p50),
        "system_delay_p95_s": minutes(delay_p95),
        "attempts": total.attempts,
        "attempts_per_lead": _per_lead(total.attempts, total.cohort),
        "recycled": total.recycled,
        "cadence_met_pct": fraction(total.cadence_met, total.recycled),
        "connected": total.connected,
        "connect_rate": fraction(total.connected, total.worked),
        "opportunities": opportunities,
        "opportunity_rate": fraction(opportunities, workable_mtd),
        "opportunity_rate_target": agreement.marketing.opportunity_rate_target,
        "opportunity_rate_first_touch_met": fraction(total.opportunities_met, total.met),
        "opportunity_rate_first_touch_missed": fraction(total.opportunities_missed,
                                                        total.cohort - total.met),
        "pipeline_value": money(pipeline),
        "open_breaches": 0,           # filled in by status()
        "per_rep": per_rep,
    }


@dataclass
class _CohortCounts:
    cohort: int = 0
    worked: int = 0
    met: int = 0
    attempts: int = 0
    connected: int = 0
    recycled: int = 0
    cadence_met: int = 0
    opportunities_met: int = 0
    opportunities_missed: int = 0

    def __iadd__(self, other: _CohortCounts) -> _CohortCounts:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    def __add__(self, other: _CohortCounts) -> _CohortCounts:
        total = _CohortCounts()
        total += self
        total += other
        return total

    def rates(self) -> dict[str, Any]:
        return {
            "cohort": self.cohort,
            "worked_pct": fraction(self.worked, self.cohort),
            "within_sla_pct": fraction(self.met, self.cohort),
            "attempts_per_lead": _per_lead(self.attempts, self.cohort),
            "connect_rate": fraction(self.connected, self.worked),
            "cadence_met_pct": fraction(self.cadence_met, self.recycled),
            "open_breaches": 0,
        }


def _cohort_counts(session: Session, agreement: Agreement, period: Period,
                   scope: Scope) -> dict[str | None, _CohortCounts]:
    """The Sales cohort's counts, one row per current owner (summed by the caller).

    Two parts, so that no sort is needed for the grouping: the scope's reps through the covering
    index `ix_lead_owner_routed_metrics` (owner, routed_at, ...), one range of `routed_at` per rep,
    already in owner order; and every other owner (none, or one the agreement no longer lists for
    the scope) through `ix_lead_routed_metrics`. Together they are exactly the scope's cohort."""
    as_of = period.as_of
    touched = _touched(as_of)
    met = _met(as_of)
    attempts = _attempts_as_of(as_of)
    recycled = sa.and_(col(Lead.state) == State.RECYCLED.value, col(Lead.closed_at) <= as_of)
    opportunity = col(Lead.opportunity_at) <= as_of
    def counts(*owners: ColumnElement[bool]) -> Any:
        return _run(session, sa.select(
            col(Lead.owner),
            sa.func.count().label("cohort"),
            _count_if(touched).label("worked"),
            _count_if(met).label("met"),
            _sum(attempts).label("attempts"),
            _count_if(sa.and_(touched, _connected_as_of(as_of))).label("connected"),
            _count_if(recycled).label("recycled"),
            _count_if(sa.and_(recycled, attempts >= _required_attempts(agreement))).label("cadence_met"),
            _count_if(sa.and_(met, opportunity)).label("opportunities_met"),
            _count_if(sa.and_(sa.not_(met), opportunity)).label("opportunities_missed"),
        ).where(*owners, *_cohort(period), *scope.where(driven_by="routed_at")).group_by(col(Lead.owner))).all()

    reps = [r.key for r in scope.reps]
    rows = [*(counts(col(Lead.owner).in_(reps)) if reps else []),
            *counts(sa.or_(col(Lead.owner).is_(None), col(Lead.owner).not_in(reps)) if reps else sa.true())]
    return {
        row.owner: _CohortCounts(
            cohort=int(row.cohort), worked=int(row.worked), met=int(row.met),
            attempts=int(row.attempts), connected=int(row.connected), recycled=int(row.recycled),
            cadence_met=int(row.cadence_met), opportunities_met=int(row.opportunities_met),
            opportunities_missed=int(row.opportunities_missed))
        for row in rows
    }


# --- open breaches -------------------------------------------------------------------------


def _breach_selects(as_of: datetime, scope: Scope, columns: Sequence[Any]) -> tuple[sa.Select[Any], ...]:
    """Three indexed parts: open leads never touched and open leads first touched after `as_of`
    (both through `ix_lead_open_first_touch`, so only untouched open leads are read, not every
    open lead), and leads closed since `as_of` that were routed within LOOKBACK (through
    `closed_at`). One OR would make the planners scan history.

    The parts cannot overlap: `first_touch_at` is NULL in the first and set in the second, and
    `closed_at` is set when a lead closes and a closed lead never reopens, so an open lead has no
    `closed_at`. (The third part does not test `is_open`, or SQLite would walk every closed lead
    through the `is_open` index; its `routed_at` bounds are not indexable, or the planner could
    prefer a two-month range of `routed_at` to the few leads closed since `as_of`.)"""
    common = [_workable(), _unindexed(col(Lead.routed_at)) <= as_of]
    open_untouched = sa.select(*columns).where(
        col(Lead.is_open) == sa.true(), col(Lead.first_touch_at).is_(None), col(Lead.sla_due) < as_of,
        *common, *scope.where(driven_by="is_open"))
    open_touched_later = sa.select(*columns).where(
        col(Lead.is_open) == sa.true(), col(Lead.first_touch_at) > as_of, col(Lead.sla_due) < as_of,
        *common, *scope.where(driven_by="is_open"))
    closed_since = sa.select(*columns).where(
        col(Lead.closed_at) > as_of, _unindexed(col(Lead.routed_at)) >= as_of - LOOKBACK,
        _unindexed(col(Lead.sla_due)) < as_of, *common,
        sa.or_(col(Lead.first_touch_at).is_(None), col(Lead.first_touch_at) > as_of),
        *scope.where(driven_by="day"))
    return open_untouched, open_touched_later, closed_since


def _breach_counts(session: Session, as_of: datetime, scope: Scope) -> dict[str | None, int]:
    parts = sa.union_all(*_breach_selects(as_of, scope, [col(Lead.owner)])).subquery()
    rows = _run(session,
        sa.select(parts.c.owner, sa.func.count()).group_by(parts.c.owner)
    ).all()
    return {owner: int(count) for owner, count in rows}


def open_breaches(session: Session, *, agreement: Agreement, calendar: BusinessCalendar, as_of: datetime,
                  scope: str = "all", limit: int | None = None) -> list[dict[str, Any]]:
    """Leads open at `as_of` whose original first-touch deadline passed without a first touch.

    Oldest deadline first, at most `limit` (None: all). Each: ``lead_id``, ``name``, ``company``,
    ``owner``, ``owner_name``, ``team``, ``tier``, ``due`` (the original deadline `sla_due`, ISO
    UTC), ``owner_due`` (the current owner's `first_touch_due`), ``minutes_overdue`` (business
    minutes from ``due`` to `as_of`, 1 decimal).
    """
    where = parse_scope(agreement, scope)
    as_of = _utc(as_of)
    columns = [col(Lead.id), col(Lead.name), col(Lead.company), col(Lead.owner), col(Lead.team),
               col(Lead.tier), col(Lead.sla_due), col(Lead.first_touch_due)]
    parts = sa.union_all(*_breach_selects(as_of, where, columns)).subquery()
    # Sorted after the union (_unindexed): ordered parts would let SQLite walk all of `sla_due`'s
    # index in order to stop at the limit, instead of reading the few breached leads.
    query = sa.select(parts).order_by(_unindexed(parts.c.sla_due), parts.c.id)
    if limit is not None:
        query = query.limit(limit)
    found = []
    for row in _run(session, query).all():
        owner = agreement.rep(row.owner) if row.owner else None
        found.append({
            "lead_id": row.id, "name": row.name, "company": row.company, "owner": row.owner,
            "owner_name": owner.name if owner else None, "team": row.team, "tier": row.tier,
            "due": _iso(row.sla_due), "owner_due": _iso(row.first_touch_due),
            "minutes_overdue": minutes(calendar.elapsed(row.sla_due, as_of).total_seconds() / 60),
        })
    return found


# --- closed loop, capacity, rejected, yesterday --------------------------------------------


def closed_loop(session: Session, *, agreement: Agreement, calendar: BusinessCalendar, as_of: datetime,
                scope: str = "all", start: datetime | None = None) -> dict[str, Any]:
    """Results per (source, offer) segment of the leads handed off in ``[start, as_of]``.

    `start` defaults to the start of `as_of`'s month (a longer span costs its own volume). Returns
    ``start``, ``segments`` (a list, most leads first, each: ``source``, ``offer`` (None when
    missing), ``leads``, ``workable``, ``opportunities``, ``won``, ``bookings``, ``value_per_lead`` =
    bookings / leads), and the opportunity rate of the Sales cohort of the same span split by first
    touch: ``first_touch_met_leads``, ``first_touch_missed_leads``,
    ``opportunity_rate_first_touch_met`` and ``opportunity_rate_first_touch_missed``.
    """
    where = parse_scope(agreement, scope)
    period = period_of(calendar, as_of)
    begin = period.start if start is None else _utc(start)
    as_of = period.as_of
    groups = _handoff_groups(session, begin, as_of, where)
    span = Period(start=begin, end=period.end, as_of=as_of, business_elapsed=period.business_elapsed,
                  business_total=period.business_total)
    met = _met(as_of)
    opportunity = col(Lead.opportunity_at) <= as_of
    split = _run(session,
        sa.select(
            sa.func.count().label("cohort"),
            _count_if(met).label("met"),
            _count_if(sa.and_(met, opportunity)).label("met_opportunities"),
            _count_if(sa.and_(sa.not_(met), opportunity)).label("missed_opportunities"),
        ).where(*_cohort(span), *where.where(driven_by="routed_at"))
    ).one()
    return _closed_loop_of(begin, groups, _CohortCounts(
        cohort=int(split.cohort), met=int(split.met), opportunities_met=int(split.met_opportunities),
        opportunities_missed=int(split.missed_opportunities)))


def _closed_loop_of(begin: datetime, groups: Sequence[_HandoffGroup], cohort: _CohortCounts) -> dict[str, Any]:
    """`closed_loop`'s answer from the handed-off groups and the cohort's first-touch split."""
    by_segment: dict[tuple[str | None, str | None], list[Any]] = {}
    for g in groups:
        totals = by_segment.setdefault((g.source, g.offer), [0, 0, 0, 0, 0.0])
        totals[0] += g.leads
        totals[1] += g.workable
        totals[2] += g.any_opportunities
        totals[3] += g.won
        totals[4] += g.bookings
    segments = [
        {"source": source, "offer": offer, "leads": leads, "workable": workable,
         "opportunities": opportunities, "won": won, "bookings": money(bookings),
         "value_per_lead": money(float(bookings) / leads)}
        for (source, offer), (leads, workable, opportunities, won, bookings) in by_segment.items()
    ]
    segments.sort(key=lambda s: (-s["leads"], s["source"] or "", s["offer"] or ""))
    missed = cohort.cohort - cohort.met
    return {
        "start": _iso(begin),
        "segments": segments,
        "first_touch_met_leads": cohort.met,
        "first_touch_missed_leads": missed,
        "opportunity_rate_first_touch_met": fraction(cohort.opportunities_met, cohort.met),
        "opportunity_rate_first_touch_missed": fraction(cohort.opportunities_missed, missed),
    }


def capacity(session: Session, *, agreement: Agreement, calendar: BusinessCalendar, as_of: datetime,
             scope: str = "all") -> dict[str, Any]:
    """Workable leads routed this local week (Monday 00:00 to `as_of`) against weekly rep capacity.

    Returns ``week_start``, ``week_end``, ``delivered``, ``capacity`` (sum of `capacity_per_week` of
    the active reps in scope), ``utilization`` = delivered / capacity (None if capacity is 0) and
    ``per_rep`` ({rep: {delivered, capacity, utilization}} for the active reps in scope).
    """
    where = parse_scope(agreement, scope)
    as_of = _utc(as_of)
    week_start, week_end = calendar.week_bounds(as_of)
    rows = _run(session,
        sa.select(col(Lead.owner), sa.func.count())
        .where(_workable(), col(Lead.routed_at) >= week_start, col(Lead.routed_at) <= as_of,
               *where.where(driven_by="routed_at"))
        .group_by(col(Lead.owner))
    ).all()
    delivered = {owner: int(count) for owner, count in rows}
    reps = where.active_reps
    total_capacity = sum(r.capacity_per_week for r in reps)
    total = sum(delivered.values())
    return {
        "week_start": _iso(week_start),
        "week_end": _iso(week_end),
        "delivered": total,
        "capacity": total_capacity,
        "utilization": fraction(total, total_capacity),
        "per_rep": {
            r.key: {"delivered": delivered.get(r.key, 0), "capacity": r.capacity_per_week,
                    "utilization": fraction(delivered.get(r.key, 0), r.capacity_per_week)}
            for r in reps
        },
    }


def rejected_by_reason(session: Session, *, agreement: Agreement, calendar: BusinessCalendar,
                       as_of: datetime, scope: str = "all") -> dict[str, Any]:
    """MTD leads Sales disqualified by `as_of`, for Marketing's quality feedback.

    Returns ``total``, ``by_reason`` ({reason: n}), ``by_source`` ({source: n}) and ``rows``
    ([{reason, source, count}], most first).
    """
    where = parse_scope(agreement, scope)
    period = period_of(calendar, as_of)
    rows = _run(session,
        sa.select(col(Lead.disqualify_reason), col(Lead.source), sa.func.count().label("n"))
        .where(*_handed_off_between(period.start, period.as_of), col(Lead.disqualify_reason).is_not(None),
               col(Lead.closed_at) <= period.as_of, *where.where(driven_by="handed_off_at"))
        .group_by(col(Lead.disqualify_reason), col(Lead.source))
    ).all()
    return _rejected_of([(row.disqualify_reason, row.source, int(row.n)) for row in rows])


def _rejected_of(counts: Iterable[tuple[str | None, str | None, int]]) -> dict[str, Any]:
    """`rejected_by_reason`'s answer from (reason, source, leads) counts (a pair may repeat)."""
    by_reason: dict[str, int] = {}
    by_source: dict[str, int] = {}
    by_pair: dict[tuple[str | None, str | None], int] = {}      # as the database groups them
    for reason, source, count in counts:
        _add(by_reason, reason or UNKNOWN, count)
        _add(by_source, source or UNKNOWN, count)
        by_pair[reason, source] = by_pair.get((reason, source), 0) + count
    triples = sorted(((n, r or UNKNOWN, s or UNKNOWN) for (r, s), n in by_pair.items()),
                     key=lambda t: (-t[0], t[1], t[2]))
    return {"total": sum(by_reason.values()), "by_reason": _sorted_counts(by_reason),
            "by_source": _sorted_counts(by_source),
            "rows": [{"reason": r, "source": s, "count": n} for n, r, s in triples]}


def yesterday(session: Session, *, agreement: Agreement, calendar: BusinessCalendar, as_of: datetime,
              scope: str = "all", day: date | None = None) -> dict[str, Any]:
    """Highlights of one local day (default: the day before `as_of`'s local date), as known at `as_of`.

    Returns ``date``, ``workable`` and ``nurture`` (handed off that day), ``first_touches`` and
    ``first_touches_within_sla`` (made that day), ``opportunities`` and ``opportunity_amount``
    (created that day), ``breaches`` (count) and ``breached`` (those leads: lead_id, name, owner,
    team, due), deadlines that fell that day without a first touch in time.
    """
    where = parse_scope(agreement, scope)
    as_of = _utc(as_of)
    if day is None:
        day = calendar.local_date(as_of) - timedelta(days=1)
    day_start, day_end = calendar.day_bounds(day)
    horizon = day_start - LOOKBACK
    until = min(day_end, as_of + timedelta(microseconds=1))   # [day_start, until): up to as_of
    by_day = where.where(driven_by="day")
    # Each query reads the day's range of its own instant (an index each); the LOOKBACK bounds of
    # `routed_at`/`handed_off_at` only filter, through _unindexed, or the planner could prefer
    # their two months' range.
    routed, handed_off = _unindexed(col(Lead.routed_at)), _unindexed(col(Lead.handed_off_at))

    handed = _run(session,
        sa.select(sa.func.count().label("leads"), _count_if(_workable()).label("workable"))
        .where(col(Lead.handed_off_at) >= day_start, col(Lead.handed_off_at) < until,
               *where.where(driven_by="handed_off_at"))
    ).one()
    touches = _run(session,
        sa.select(sa.func.count().label("n"),
                  _count_if(col(Lead.first_touch_met).is_(sa.true())).label("met"))
        .where(routed >= horizon, routed < until,
               col(Lead.first_touch_at) >= day_start, col(Lead.first_touch_at) < until, *by_day)
    ).one()
    opportunities = _run(session,
        sa.select(sa.func.count().label("n"), _sum(sa.func.coalesce(col(Lead.opportunity_amount), 0.0))
                  .label("amount"))
        .where(handed_off >= horizon, handed_off < until,
               col(Lead.opportunity_at) >= day_start, col(Lead.opportunity_at) < until, *by_day)
    ).one()
    missed = sa.or_(col(Lead.first_touch_at).is_(None), col(Lead.first_touch_at) > as_of,
                    col(Lead.first_touch_met) == sa.false())
    breached = _run(session,
        sa.select(col(Lead.id), col(Lead.name), col(Lead.owner), col(Lead.team), col(Lead.sla_due))
        .where(_workable(), routed >= horizon, routed < until,
               col(Lead.sla_due) >= day_start, col(Lead.sla_due) < until, col(Lead.sla_due) < as_of,
               missed, *by_day)
        .order_by(col(Lead.sla_due), col(Lead.id))
    ).all()
    return {
        "date": day.isoformat(),
        "workable": int(handed.workable),
        "nurture": int(handed.leads) - int(handed.workable),
        "first_touches": int(touches.n),
        "first_touches_within_sla": int(touches.met),
        "opportunities": int(opportunities.n),
        "opportunity_amount": money(opportunities.amount),
        "breaches": len(breached),
        "breached": [{"lead_id": r.id, "name": r.name, "owner": r.owner, "team": r.team,
                      "due": _iso(r.sla_due)} for r in breached],
    }


def cumulative_workable(session: Session, *, agreement: Agreement, start: datetime, ends: Sequence[datetime],
                        as_of: datetime, scope: str = "all") -> list[int]:
    """Workable leads handed off from `start` up to (not at) each instant of `ends`, then up to and
    including `as_of`: ``len(ends) + 1`` cumulative counts (the digest chart's points; the last one
    is `status`'s ``marketing.workable`` when `start` is the month's start).

    One statement: a UNION ALL of one count per interval between consecutive instants, each a
    range of the covering `ix_lead_handoff_metrics`, so the month's leads are read once and nothing
    is evaluated per lead and per day. `ends` must be ascending.
    """
    where = parse_scope(agreement, scope)
    start, as_of = _utc(start), _utc(as_of)
    ends = [_utc(end) for end in ends]
    if any(b < a for a, b in itertools.pairwise(ends)):
        raise ValueError("cumulative_workable: `ends` must be ascending")
    handed = col(Lead.handed_off_at)
    common = [_workable(), handed <= as_of, *where.where(driven_by="handed_off_at")]
    if ends and ends[0] < start:
        raise ValueError("cumulative_workable: `ends` must not be before `start`")
    lows = [start, *ends]
    parts = [
        sa.select(sa.literal(i).label("i"), sa.func.count().label("n"))
        .where(handed >= low, *([handed < ends[i]] if i < len(ends) else []), *common)
        for i, low in enumerate(lows)
    ]
    counts = {int(row[0]): int(row[1]) for row in _run(session, sa.union_all(*parts)).all()}
    total, cumulative = 0, []
    for i in range(len(lows)):
        total += int(counts.get(i, 0))
        cumulative.append(total)
    return cumulative


# --- SQL building blocks -------------------------------------------------------------------


def _workable() -> ColumnElement[bool]:
    return col(Lead.workable).is_(sa.true())


def _handed_off_between(start: datetime, as_of: datetime) -> list[ColumnElement[bool]]:
    return [col(Lead.handed_off_at) >= start, col(Lead.handed_off_at) <= as_of]


def _touched(as_of: datetime) -> ColumnElement[bool]:
    """At least one attempt by `as_of`: the first attempt is what sets `first_touch_at`.

    Never NULL (an untouched lead gives false, not NULL), so NOT of it and of `_met` is safe."""
    return sa.and_(col(Lead.first_touch_at).is_not(None), col(Lead.first_touch_at) <= as_of)


def _met(as_of: datetime) -> ColumnElement[bool]:
    """First touch by `as_of` and at or before the original deadline (never NULL)."""
    return sa.and_(_touched(as_of), col(Lead.first_touch_met).is_(sa.true()))


def _cohort(period: Period) -> list[ColumnElement[bool]]:
    """DESIGN.md 2.7's Sales cohort as of `period.as_of` (see the module docstring)."""
    return [
        _workable(),
        col(Lead.routed_at) >= period.start,
        col(Lead.routed_at) <= period.as_of,
        sa.or_(col(Lead.sla_due) < period.as_of, _touched(period.as_of)),
    ]


def _counters_current(as_of: datetime) -> ColumnElement[bool]:
    """No attempt after `as_of`, so the lead's counters are what they were at `as_of`."""
    return sa.or_(col(Lead.last_attempt_at).is_(None), col(Lead.last_attempt_at) <= as_of)


def _attempts_as_of(as_of: datetime) -> ColumnElement[Any]:
    counted = (
        sa.select(sa.func.count())
        .where(col(LeadEvent.lead_id) == col(Lead.id), col(LeadEvent.type).in_(_ATTEMPT_TYPES),
               col(LeadEvent.at) <= as_of)
        .scalar_subquery()
    )
    return sa.case((_counters_current(as_of), col(Lead.attempts)), else_=counted)


def _connected_as_of(as_of: datetime) -> ColumnElement[bool]:
    recorded = sa.exists().where(col(LeadEvent.lead_id) == col(Lead.id),
                                 col(LeadEvent.type) == _CONNECT_TYPE, col(LeadEvent.at) <= as_of)
    current = _counters_current(as_of)
    return sa.or_(sa.and_(current, col(Lead.connects) >= 1), sa.and_(sa.not_(current), recorded))


def _required_attempts(agreement: Agreement) -> ColumnElement[Any]:
    """Each lead's tier's `attempts.count`; a tier key the agreement no longer has gets the last tier's."""
    tiers = agreement.sales.tiers
    return sa.case({t.key: t.attempts.count for t in tiers}, value=col(Lead.tier),
                   else_=tiers[-1].attempts.count)


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return _sum(sa.case((condition, 1), else_=0))


def _sum(expression: ColumnElement[Any]) -> ColumnElement[Any]:
    return sa.func.coalesce(sa.func.sum(expression), 0)


def _run(session: Session, query: sa.Executable) -> Any:
    """Run a Core query on the session's connection: these are plain rows, so the ORM's result
    machinery (a measurable share of a report's time) is skipped."""
    return session.connection().execute(query)


def _percentiles(session: Session, column: Any, where: Iterable[ColumnElement[bool]],
                 quantiles: Sequence[float]) -> list[float | None]:
    """`sla.metrics.percentile(values, q)` for each q, where `values` is `column` over the rows of
    `where` (NULLs left out): the database counts each distinct value, in order, and only those
    (value, count) pairs come back, not every lead's value. Same arithmetic as
    `sla.metrics.percentile` (``h = (n - 1) * q``, linear between the values ranked floor(h) and
    floor(h) + 1), so the result is identical."""
    pairs = [(float(row[0]), int(row[1])) for row in _run(session,
             sa.select(column, sa.func.count()).where(*where, column.is_not(None))
             .group_by(column).order_by(column)).all()]
    n = sum(count for _, count in pairs)
    results: list[float | None] = []
    for q in quantiles:
        if not 0 <= q <= 1:
            raise ValueError(f"percentile q must be between 0 and 1, got {q!r}")
        if n == 0:
            results.append(None)
            continue
        h = (n - 1) * q
        low = math.floor(h)
        high = min(low + 1, n - 1)
        x_low, x_high = _ranked(pairs, low), _ranked(pairs, high)
        results.append(x_low + (h - low) * (x_high - x_low))
    return results


def _ranked(pairs: Sequence[tuple[float, int]], rank: int) -> float:
    """The value at 0-based `rank` of the sorted multiset given as ordered (value, count) pairs."""
    seen = 0
    for value, count in pairs:
        seen += count
        if rank < seen:
            return value
    raise IndexError(rank)


def _unindexed(column: Any) -> ColumnElement[Any]:
    """`column` as an expression no index can serve (the same values, the same type on SQLite and
    PostgreSQL): for a bound that must only filter the rows another index found."""
    return sa.func.coalesce(column, column)


# --- small helpers -------------------------------------------------------------------------


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    return at.astimezone(UTC)


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _add(counts: dict[str, int], key: str, n: int) -> None:
    counts[key] = counts.get(key, 0) + n


def _sorted_counts(counts: dict[str, int]) -> dict[str, int]:
    """Largest first, then by key: stable output for digests and tests."""
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _per_lead(total: int, leads: int) -> float | None:
    value = ratio(total, leads)
    return None if value is None else round(value, 2)
