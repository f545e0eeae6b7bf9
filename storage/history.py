"""slabot's own history for `slabot analyze --from-db` and `slabot plan`: leads with their outcomes.

Rows come in batches by keyset pagination on the lead id (one short read transaction per batch,
never an OFFSET scan and never the whole table in memory).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
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


def history_batches(db: Database, *, start: datetime | None = None, end: datetime | None = None,
                    with_payload: bool = False, batch: int = BATCH) -> Iterator[list[HistoryRow]]:
    """Every lead handed off in [start, end), oldest id first, `batch` at a time.

    A lead is an opportunity once `opportunity_at` is set (or it was won), won once `won_at` is
    set, and its amount is its bookings.
    """
    columns: list[Any] = [Lead.id, Lead.source, Lead.offer, Lead.opportunity_at, Lead.won_at, Lead.bookings,
                          Lead.handed_off_at]
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
                          payload=r.payload if with_payload else None) for r in rows]


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
