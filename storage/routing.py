"""Routing state: each team's round-robin cursor, the reps' away status and their current loads."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage.db import upsert
from storage.tables import Lead, RepStatus, RoutingCursor


def last_rep(session: Session, *, team: str, now: datetime, lock: bool) -> str | None:
    """The team's round-robin cursor. With `lock`, held for this transaction (SQLite: BEGIN
    IMMEDIATE already serializes writers; PostgreSQL: the cursor's row lock, the row made first)."""
    query = select(RoutingCursor.last_rep).where(col(RoutingCursor.team) == team)
    if lock and session.get_bind().dialect.name == "postgresql":
        upsert(session, RoutingCursor, {"team": team, "last_rep": None, "updated_at": now}, keys=("team",))
        query = query.with_for_update()
    last: str | None = session.execute(query).scalars().first()
    return last


def save_cursor(session: Session, *, team: str, rep: str, now: datetime) -> None:
    upsert(session, RoutingCursor, {"team": team, "last_rep": rep, "updated_at": now},
           keys=("team",), update=("last_rep", "updated_at"))


def is_away(status: RepStatus, now: datetime) -> bool:
    return status.away and (status.away_until is None or status.away_until > now)


def rep_status(session: Session, *, rep: str) -> RepStatus | None:
    return session.get(RepStatus, rep)


def rep_away(session: Session, *, rep: str, now: datetime) -> bool:
    status = session.get(RepStatus, rep)
    return status is not None and is_away(status, now)


def set_rep_status(session: Session, *, rep: str, away: bool, until: datetime | None, now: datetime) -> None:
    status = session.get(RepStatus, rep) or RepStatus(rep=rep, updated_at=now)
    status.away, status.away_until, status.updated_at = away, until if away else None, now
    session.add(status)


def rep_counts(session: Session, *, reps: list[str], week_start: datetime,
               now: datetime) -> dict[str, tuple[bool, int, int]]:
    """Per rep: (away, open leads, leads assigned since `week_start`). Two counts, each driven by an
    index on (owner, ...), so the cost follows the reps' current load, never their history."""
    open_counts = dict(session.execute(
        select(Lead.owner, sa.func.count()).where(col(Lead.owner).in_(reps), col(Lead.is_open).is_(True))
        .group_by(col(Lead.owner))).all())
    week_counts = dict(session.execute(
        select(Lead.owner, sa.func.count()).where(col(Lead.owner).in_(reps), col(Lead.owner_since) >= week_start)
        .group_by(col(Lead.owner))).all())
    away = {s.rep for s in session.execute(select(RepStatus).where(col(RepStatus.rep).in_(reps)))
            .scalars() if is_away(s, now)}
    return {k: (k in away, int(open_counts.get(k, 0)), int(week_counts.get(k, 0))) for k in reps}
