"""Routing state: each team's round-robin cursor, the reps' away status and their current loads."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from storage.db import upsert
from storage.tables import Lead, RepStatus, RoutingCursor

_LEAD: sa.Table = Lead.__table__  # type: ignore[attr-defined]
_STATUS: sa.Table = RepStatus.__table__  # type: ignore[attr-defined]
_CURSOR: sa.Table = RoutingCursor.__table__  # type: ignore[attr-defined]
# Routing reads these once per batch of handoffs: built once, with the lists as expanding parameters
# (building and caching a statement per call cost more than running it).
_REPS: sa.BindParameter[str] = sa.bindparam("reps", expanding=True)
_OPEN_COUNTS = (sa.select(_LEAD.c.owner, sa.func.count()).where(_LEAD.c.owner.in_(_REPS), _LEAD.c.is_open.is_(True))
                .group_by(_LEAD.c.owner))
_WEEK_COUNTS = (sa.select(_LEAD.c.owner, sa.func.count())
                .where(_LEAD.c.owner.in_(_REPS), _LEAD.c.owner_since >= sa.bindparam("week_start"))
                .group_by(_LEAD.c.owner))
_AWAY = sa.select(_STATUS.c.rep, _STATUS.c.away, _STATUS.c.away_until).where(_STATUS.c.rep.in_(_REPS))
_CURSORS = (sa.select(_CURSOR.c.team, _CURSOR.c.last_rep)
            .where(_CURSOR.c.team.in_(sa.bindparam("teams", expanding=True))).order_by(_CURSOR.c.team))
_CURSORS_LOCKED = _CURSORS.with_for_update()


def _save_cursors_statement(insert: postgresql.Insert | sqlite.Insert) -> Any:
    return insert.on_conflict_do_update(index_elements=["team"], set_={
        "last_rep": insert.excluded.last_rep, "updated_at": insert.excluded.updated_at})


_SAVE_CURSORS = {"postgresql": _save_cursors_statement(postgresql.insert(_CURSOR)),
                 "sqlite": _save_cursors_statement(sqlite.insert(_CURSOR))}
_MAKE_CURSORS = postgresql.insert(_CURSOR).on_conflict_do_nothing(index_elements=["team"])


def _autoflush(session: Session) -> None:
    """What the ORM does before a query of its own: these Core reads must see the session's changes too."""
    if session.autoflush:
        session.flush()


def last_rep(session: Session, *, team: str, now: datetime, lock: bool) -> str | None:
    """The team's round-robin cursor. With `lock`, held for this transaction (SQLite: BEGIN
    IMMEDIATE already serializes writers; PostgreSQL: the cursor's row lock, the row made first)."""
    return last_reps(session, teams=[team], now=now, lock=lock)[team]


def last_reps(session: Session, *, teams: list[str], now: datetime, lock: bool) -> dict[str, str | None]:
    """The cursors of several teams in one query (a batch of handoffs). With `lock`, on PostgreSQL
    the rows are made first and locked in team order, so two writers locking overlapping teams
    queue behind each other instead of deadlocking."""
    keys = sorted(set(teams))
    _autoflush(session)
    connection = session.connection()
    query = _CURSORS
    if lock and connection.dialect.name == "postgresql":
        query = _CURSORS_LOCKED
        found = {str(team): rep for team, rep in connection.execute(query, {"teams": keys}).all()}
        missing = [t for t in keys if t not in found]
        if not missing:
            return {team: found[team] for team in keys}
        # Teams routed to for the first time: make their rows, then lock them all in order.
        connection.execute(_MAKE_CURSORS, [{"team": t, "last_rep": None, "updated_at": now} for t in missing])
    found = {str(team): rep for team, rep in connection.execute(query, {"teams": keys}).all()}
    return {team: found.get(team) for team in keys}


def save_cursors(session: Session, *, cursors: dict[str, str], now: datetime) -> None:
    """Several teams' cursors in one executemany (a batch of handoffs)."""
    if not cursors:
        return
    connection = session.connection()
    connection.execute(_SAVE_CURSORS["postgresql" if connection.dialect.name == "postgresql" else "sqlite"],
                       [{"team": team, "last_rep": rep, "updated_at": now} for team, rep in sorted(cursors.items())])


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
    _autoflush(session)
    connection = session.connection()
    open_counts: dict[str, int] = dict(connection.execute(_OPEN_COUNTS, {"reps": reps}).all())
    week_counts: dict[str, int] = dict(connection.execute(_WEEK_COUNTS, {"reps": reps, "week_start": week_start}).all())
    away = {rep for rep, is_set, until in connection.execute(_AWAY, {"reps": reps})
            if is_set and (until is None or until > now)}
    return {k: (k in away, int(open_counts.get(k, 0)), int(week_counts.get(k, 0))) for k in reps}
