"""The closed loop: results per (source, offer) segment of the handed-off leads, and the Sales
cohort's opportunity rate split by first touch met or missed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from sla.agreement import Agreement
from sla.calendar import BusinessCalendar
from sla.metrics import fraction, money
from storage.metrics.intervals import interval, versus
from storage.metrics.marketing import _handoff_groups, _HandoffGroup
from storage.metrics.model import BelowBaseline, ClosedLoop, FirstTouchSide, FirstTouchSplit, Segment
from storage.metrics.period import Period, Scope, parse_scope, period_of
from storage.metrics.sales import _cohort, _CohortCounts
from storage.metrics.sql import _count_if, _met, _run, _sum_if, _touched, _unindexed, _utc, _workable
from storage.tables import Lead


def closed_loop(session: Session, *, agreement: Agreement, calendar: BusinessCalendar, as_of: datetime,
                scope: str = "all", start: datetime | None = None) -> ClosedLoop:
    """Results per (source, offer) segment of the leads handed off in ``[start, as_of]``.

    `start` defaults to the start of `as_of`'s month (a longer span costs its own volume). Returns
    ``start``, ``segments`` (a list, most leads first, each: ``source``, ``offer`` (None when
    missing), ``leads``, ``workable``, ``opportunities``, ``won``, ``bookings``, ``value_per_lead`` =
    bookings / leads), and the opportunity rate of the Sales cohort of the same span split by first
    touch: ``first_touch_met_leads``, ``first_touch_missed_leads``,
    ``opportunity_rate_first_touch_met`` and ``opportunity_rate_first_touch_missed``, and the same
    split with opportunities, Wilson intervals and pipeline per lead in ``first_touch``.
    ``below_baseline`` lists the segments whose interval lies below ``cold_call_baseline_rate``
    (the agreement's).
    """
    where = parse_scope(agreement, scope)
    period = period_of(calendar, as_of)
    begin = period.start if start is None else _utc(start)
    as_of = period.as_of
    groups, _ = _handoff_groups(session, begin, as_of, where)
    span = Period(start=begin, end=period.end, as_of=as_of, business_elapsed=period.business_elapsed,
                  business_total=period.business_total)
    met = _met(as_of)
    opportunity = col(Lead.opportunity_at) <= as_of
    split = _run(session,
        sa.select(
            sa.func.count().label("cohort"),
            _count_if(met).label("met"),
            _count_if(sa.and_(opportunity, met)).label("met_opportunities"),
            _count_if(sa.and_(opportunity, sa.not_(met))).label("missed_opportunities"),
        ).where(*_cohort(span), *where.where(driven_by="routed_at"))
    ).one()
    return _closed_loop_of(agreement, begin, groups, _CohortCounts(
        cohort=int(split.cohort), met=int(split.met), opportunities_met=int(split.met_opportunities),
        opportunities_missed=int(split.missed_opportunities)), _first_touch_pipeline(session, span, where))


def _first_touch_pipeline(session: Session, period: Period, scope: Scope) -> tuple[float, float]:
    """The opportunity amounts of the Sales cohort's opportunities, (first touch met, missed).

    The cohort's covering indexes hold no amounts, so this reads the span's opportunities through
    `ix_lead_opportunity_at` (which holds the cohort's columns too, migration 0008): the range of
    `opportunity_at` from the span's start to `as_of` (an opportunity comes after its routing; one
    the CRM dated before the span began counts in the rates but not here), the cohort's own
    conditions only filtering (`routed_at` through _unindexed, or the planner could prefer its
    range)."""
    as_of = period.as_of
    routed = _unindexed(col(Lead.routed_at))
    met = _met(as_of)
    amount = sa.func.coalesce(col(Lead.opportunity_amount), 0.0)
    row = _run(session,
        sa.select(_sum_if(met, amount).label("met"), _sum_if(sa.not_(met), amount).label("missed"))
        .where(col(Lead.opportunity_at) >= period.start, col(Lead.opportunity_at) <= as_of,
               _workable(), routed >= period.start, routed <= as_of,
               sa.or_(col(Lead.sla_due) < as_of, _touched(as_of)), *scope.where(driven_by="day"))
    ).one()
    return float(row.met), float(row.missed)


def _side(leads: int, opportunities: int, pipeline: float) -> FirstTouchSide:
    return FirstTouchSide(leads=leads, opportunities=opportunities, opportunity_rate=fraction(opportunities, leads),
                          interval=interval(opportunities, leads), pipeline=money(pipeline),
                          pipeline_per_lead=money(pipeline / leads) if leads else None)


def _closed_loop_of(agreement: Agreement, begin: datetime, groups: Sequence[_HandoffGroup],
                    cohort: _CohortCounts, pipeline: tuple[float, float]) -> ClosedLoop:
    """`closed_loop`'s answer from the handed-off groups, the cohort's first-touch split and its
    pipeline (met, missed)."""
    baseline = agreement.marketing.cold_call_baseline_rate
    by_segment: dict[tuple[str | None, str | None], list[Any]] = {}
    for g in groups:
        totals = by_segment.setdefault((g.source, g.offer), [0, 0, 0, 0, 0.0])
        totals[0] += g.leads
        totals[1] += g.workable
        totals[2] += g.any_opportunities
        totals[3] += g.won
        totals[4] += g.bookings
    segments = [
        Segment(source=source, offer=offer, leads=leads, workable=workable, opportunities=opportunities,
                won=won, bookings=money(bookings), value_per_lead=money(float(bookings) / leads))
        for (source, offer), (leads, workable, opportunities, won, bookings) in by_segment.items()
    ]
    segments.sort(key=lambda s: (-s.leads, s.source or "", s.offer or ""))
    missed = cohort.cohort - cohort.met
    return ClosedLoop(
        start=begin,
        segments=segments,
        first_touch_met_leads=cohort.met,
        first_touch_missed_leads=missed,
        opportunity_rate_first_touch_met=fraction(cohort.opportunities_met, cohort.met),
        opportunity_rate_first_touch_missed=fraction(cohort.opportunities_missed, missed),
        cold_call_baseline_rate=baseline,
        below_baseline=[
            BelowBaseline(source=s.source, offer=s.offer, leads=s.leads, opportunities=s.opportunities,
                          opportunity_rate=fraction(s.opportunities, s.leads) or 0.0,
                          interval=interval(s.opportunities, s.leads) or [])
            for s in segments if versus(s.opportunities, s.leads, baseline) == "below"
        ],
        first_touch=FirstTouchSplit(met=_side(cohort.met, cohort.opportunities_met, pipeline[0]),
                                    missed=_side(missed, cohort.opportunities_missed, pipeline[1])),
    )
