"""Yesterday's highlights: one local day's hand-offs, first touches, opportunities and breaches."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col

from sla.agreement import Agreement
from sla.calendar import BusinessCalendar
from sla.metrics import money
from storage.metrics.model import BreachedLead, Yesterday
from storage.metrics.period import parse_scope
from storage.metrics.sql import LOOKBACK, _count_if, _run, _sum, _unindexed, _utc, _workable
from storage.tables import Lead


def yesterday(session: Session, *, agreement: Agreement, calendar: BusinessCalendar, as_of: datetime,
              scope: str = "all", day: date | None = None) -> Yesterday:
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
    return Yesterday(
        date=day,
        workable=int(handed.workable),
        nurture=int(handed.leads) - int(handed.workable),
        first_touches=int(touches.n),
        first_touches_within_sla=int(touches.met),
        opportunities=int(opportunities.n),
        opportunity_amount=money(opportunities.amount),
        breaches=len(breached),
        breached=[BreachedLead(lead_id=r.id, name=r.name, owner=r.owner, team=r.team, due=r.sla_due)
                  for r in breached],
    )
