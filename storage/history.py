"""slabot's own history for `slabot analyze --from-db` and `slabot plan`: leads with their outcomes.

Rows come in batches by keyset pagination on the lead id (one short read transaction per batch,
never an OFFSET scan and never the whole table in memory).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col

from sla.closed_loop import HistoryRow
from storage.db import Database
from storage.tables import Lead

BATCH = 2000


def _window(start: datetime | None, end: datetime | None) -> list[Any]:
    where = []
    if start is not None:
        where.append(col(Lead.handed_off_at) >= start)
    if end is not None:
        where.append(col(Lead.handed_off_at) < end)
    return where


def first_touch_met(*, workable: bool | None, routed_at: datetime | None, sla_due: datetime | None,
                    first_touch_at: datetime | None, as_of: datetime | None) -> bool | None:
    """A lead's first touch against its original deadline, from its stored first attempt: met when
    it came at or before `sla_due`, missed when later or when there was none by a deadline that
    passed before `as_of`; None for a lead never routed to Sales or still within its deadline (or
    untouched when `as_of` is None)."""
    if not workable or routed_at is None:
        return None
    if first_touch_at is not None:
        return sla_due is None or _aware(first_touch_at) <= _aware(sla_due)
    if sla_due is not None and as_of is not None and _aware(sla_due) < as_of:
        return False
    return None


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def history_batches(db: Database, *, start: datetime | None = None, end: datetime | None = None,
                    with_payload: bool = False, batch: int = BATCH,
                    as_of: datetime | None = None) -> Iterator[list[HistoryRow]]:
    """Every lead handed off in [start, end), oldest id first, `batch` at a time.

    A lead is an opportunity once `opportunity_at` is set (or it was won), won once `won_at` is
    set, and its amount is its bookings; its pipeline is its opportunity amount. Its first touch
    is judged by `first_touch_met` (an untouched lead counts as missed once its deadline is before
    `as_of`).
    """
    columns: list[Any] = [Lead.id, Lead.source, Lead.offer, Lead.opportunity_at, Lead.won_at, Lead.bookings,
                          Lead.handed_off_at, Lead.workable, Lead.routed_at, Lead.sla_due, Lead.first_touch_at,
                          Lead.opportunity_amount]
    if with_payload:
        columns.append(Lead.payload)
    last = 0
    while True:
        query = (sa.select(*columns).where(col(Lead.id) > last, *_window(start, end))
                 .order_by(col(Lead.id)).limit(batch))
        with db.read() as session:
            rows = session.execute(query).all()
        if not rows:
            return
        last = rows[-1].id
        yield [HistoryRow(lead_id=r.id, source=r.source, offer=r.offer, opportunity=r.opportunity_at is not None,
                          won=r.won_at is not None, amount=float(r.bookings or 0.0), handed_off_at=r.handed_off_at,
                          payload=r.payload if with_payload else None,
                          first_touch_met=first_touch_met(workable=r.workable, routed_at=r.routed_at, sla_due=r.sla_due,
                                                          first_touch_at=r.first_touch_at, as_of=as_of),
                          pipeline=float(r.opportunity_amount or 0.0)) for r in rows]


@dataclass(frozen=True)
class OutcomeTotals:
    """What the planner can learn from history: opportunities of workable leads, wins of opportunities."""

    workable: int
    workable_opportunities: int
    opportunities: int
    won: int


def outcome_totals(db: Database, *, start: datetime | None = None, end: datetime | None = None) -> OutcomeTotals:
    opportunity = sa.or_(col(Lead.opportunity_at).is_not(None), col(Lead.won_at).is_not(None))
    won = col(Lead.won_at).is_not(None)

    def count_if(condition: Any) -> Any:
        return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)

    query = sa.select(
        count_if(col(Lead.workable)).label("workable"),
        count_if(sa.and_(col(Lead.workable), opportunity)).label("workable_opportunities"),
        count_if(opportunity).label("opportunities"),
        count_if(won).label("won"),
    ).where(*_window(start, end))
    with db.read() as session:
        row = session.execute(query).one()
    return OutcomeTotals(workable=int(row.workable), workable_opportunities=int(row.workable_opportunities),
                         opportunities=int(row.opportunities), won=int(row.won))
