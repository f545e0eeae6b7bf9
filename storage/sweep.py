"""The engine's selection queries: which open leads have a next check due (commands/sweep.py)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col

from storage.tables import Lead

__all__ = ["due_lead_ids"]


def due_lead_ids(session: Session, *, now: datetime, limit: int) -> list[int]:
    """Open leads whose next check has come, oldest first: an index range scan on
    (is_open, next_check_at) (`ix_lead_open_next_check`), whatever the number of open leads.

    A Core query on the session's connection, ids only: no ORM objects for a list of integers."""
    query = (sa.select(col(Lead.id))
             .where(col(Lead.is_open) == sa.true(), col(Lead.next_check_at) <= now)
             .order_by(col(Lead.next_check_at), col(Lead.id)).limit(limit))
    return [int(i) for i in session.connection().execute(query).scalars() if i is not None]
