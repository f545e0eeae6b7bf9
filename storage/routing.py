"""Routing state: each team's round-robin cursor, the reps' away status and their current loads."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
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


def last_reps(session: Session, *, teams: list[str], now: datetime, lock: bool) -> dict[str, str | None]:
    """The cursors of several teams in one query (a batch of handoffs). With `lock`, on PostgreSQL
    the rows are made first and locked in team order, so two writers locking overlapping teams
    queue behind each other instead of deadlocking."""
    keys = sorted(set(teams))
    query = (select(RoutingCursor.team, RoutingCursor.last_rep).where(col(RoutingCursor.team).in_(keys))
             .order_by(col(RoutingCursor.team)))
    if lock and session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
        found = {str(team): rep for team, rep in session.execute(query).all()}
        missing = [t for t in keys if t not in found]
        if not missing:
            return {team: found[team] for team in keys}
        # Teams routed to for the first time: make their rows, then lock them all in order.
        insert = postgresql.insert(RoutingCursor).on_conflict_do_nothing(index_elements=["team"])
        session.connection().execute(insert, [{"team": t, "last_rep": None, "updated_at": now} for t in missing])
    found = {str(team): rep for team, rep in session.execute(query).all()}
    return {team: found.get(team) for team in keys}


def save_cursors(session: Session, *, cursors: dict[str, str], now: datetime) -> None:
    """Several teams' cursors in one executemany (a batch of handoffs)."""
    if not cursors:
        return
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    insert = dialect.insert(RoutingCursor)
    statement = insert.on_conflict_do_update(index_elements=["team"], set_={
        "last_rep": insert.excluded.last_rep, "updated_at": insert.excluded.updated_at})
    session.connection().execute(statement, [{"team": team, "last_rep": rep, "updated_at": now}
                                             for team, rep in sorted(cursors.items())])


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
