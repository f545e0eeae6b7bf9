"""Capacity: workable leads routed this local week against the active reps' weekly capacity."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col

from sla.agreement import Agreement
from sla.calendar import BusinessCalendar
from sla.metrics import fraction
from storage.metrics.model import Capacity, RepCapacity
from storage.metrics.period import parse_scope
from storage.metrics.sql import _run, _utc, _workable
from storage.tables import Lead


def capacity(session: Session, *, agreement: Agreement, calendar: BusinessCalendar, as_of: datetime,
             scope: str = "all") -> Capacity:
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
    return Capacity(
        week_start=week_start,
        week_end=week_end,
        delivered=total,
        capacity=total_capacity,
        utilization=fraction(total, total_capacity),
        per_rep={
            r.key: RepCapacity(delivered=delivered.get(r.key, 0), capacity=r.capacity_per_week,
                               utilization=fraction(delivered.get(r.key, 0), r.capacity_per_week))
            for r in reps
        },
    )
