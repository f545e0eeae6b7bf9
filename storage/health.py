"""Operational gauges read at scrape time (`/metrics`): each is one index range, never a table scan."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage.outbox import status_counts
from storage.tables import Lead


@dataclass(frozen=True)
class Backlog:
    """What an operator watches to see delivery fall behind (issue: cards late after a crash)."""

    outbox: dict[str, int]          # rows pending, sending, dead
    overdue_steps: int              # open leads with an SLA step due and not yet fired
    oldest_overdue_s: float         # how late the oldest of them is (0 when none)


def backlog(session: Session, *, now: datetime) -> Backlog:
    """Outbox rows by status (index on status) and open leads whose next SLA step (nudge, escalation,
    claim timeout, cadence reminder) is due and has not fired (index on is_open, next_check_at).
    Steps waiting for business hours are not counted: their next check is the opening."""
    count, oldest = session.execute(
        select(sa.func.count(), sa.func.min(col(Lead.next_check_at)))
        .where(col(Lead.is_open) == sa.true(), col(Lead.next_check_at) <= now)
    ).one()
    late = 0.0
    if oldest is not None:
        oldest_at = oldest if isinstance(oldest, datetime) else datetime.fromisoformat(str(oldest))
        if oldest_at.tzinfo is None:
            oldest_at = oldest_at.replace(tzinfo=now.tzinfo)
        late = max(0.0, (now - oldest_at).total_seconds())
    return Backlog(outbox=status_counts(session), overdue_steps=int(count or 0), oldest_overdue_s=late)
