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
from storage.metrics.marketing import _handoff_groups, _HandoffGroup
from storage.metrics.model import ClosedLoop, Segment
from storage.metrics.period import Period, parse_scope, period_of
from storage.metrics.sales import _cohort, _CohortCounts
from storage.metrics.sql import _count_if, _met, _run, _utc
from storage.tables import Lead


def closed_loop(session: Session, *, agreement: Agreement, calendar: BusinessCalendar, as_of: datetime,
                scope: str = "all", start: datetime | None = None) -> ClosedLoop:
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


def _closed_loop_of(begin: datetime, groups: Sequence[_HandoffGroup], cohort: _CohortCounts) -> ClosedLoop:
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
    )
