"""The desk's queries (bot/desk): the lead queue with keyset pagination, one lead's history, the
people's away status, the speed-to-lead distribution, and the one-time sign-in links.

Keyset pagination: a page is "the next N leads after this one" in a fixed order (newest hand-off
first by id, or for the at-risk view the nearest deadline first), read from an index range, so
page 1,000 of a million leads costs what page 1 costs; no OFFSET.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage.tables import DeskSignin, Lead, LeadEvent, RepStatus

#: The speed-to-lead histogram's upper bounds in business minutes (the last bucket is open-ended).
SPEED_BUCKETS = (5, 15, 30, 60, 120, 240, 480)


@dataclass(frozen=True)
class LeadFilter:
    """What the queue shows. `owner`/`teams` restrict it to what the viewer may see (None: all)."""

    state: str | None = None
    team: str | None = None
    rep: str | None = None
    tier: str | None = None
    #: "breached": open, untouched, past the original deadline; "at_risk": open, untouched, deadline ahead.
    flag: str | None = None
    q: str | None = None
    owner: str | None = None
    teams: tuple[str, ...] | None = None
    #: With `owner`: also the unowned leads of this team (a rep may claim them).
    owner_team: str | None = None


def _where(f: LeadFilter, now: datetime) -> list[Any]:
    where: list[Any] = []
    if f.owner is not None and f.owner_team is not None:
        where.append(sa.or_(col(Lead.owner) == f.owner,
                            sa.and_(col(Lead.owner).is_(None), col(Lead.team) == f.owner_team)))
    elif f.owner is not None:
        where.append(col(Lead.owner) == f.owner)
    if f.teams is not None:
        where.append(col(Lead.team).in_(list(f.teams)))
    if f.state:
        where.append(col(Lead.state) == f.state)
    if f.team:
        where.append(col(Lead.team) == f.team)
    if f.rep:
        where.append(col(Lead.owner) == f.rep)
    if f.tier:
        where.append(col(Lead.tier) == f.tier)
    if f.flag == "breached":
        where += [col(Lead.is_open).is_(sa.true()), col(Lead.first_touch_at).is_(None), col(Lead.sla_due) < now]
    elif f.flag == "at_risk":
        where += [col(Lead.is_open).is_(sa.true()), col(Lead.first_touch_at).is_(None),
                  col(Lead.first_touch_due) >= now]
    if f.q:
        pattern = "%" + f.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append(sa.or_(col(Lead.name).ilike(pattern, escape="\\"),
                            col(Lead.company).ilike(pattern, escape="\\"),
                            col(Lead.email).ilike(pattern, escape="\\")))
    return where


def lead_page(session: Session, f: LeadFilter, *, now: datetime, after: str | None, limit: int) -> tuple[
        list[Lead], str | None]:
    """(up to `limit` leads, the cursor of the next page or None). The at-risk view runs nearest
    deadline first (time left before breach); every other view newest first."""
    where = _where(f, now)
    if f.flag == "at_risk":
        due, lead_id = col(Lead.first_touch_due), col(Lead.id)
        if after:
            at_text, _, id_text = after.partition("~")
            at, last = datetime.fromisoformat(at_text), int(id_text)
            where.append(sa.or_(due > at, sa.and_(due == at, lead_id > last)))
        query = select(Lead).where(*where).order_by(due, lead_id)
    else:
        if after:
            where.append(col(Lead.id) < int(after))
        query = select(Lead).where(*where).order_by(col(Lead.id).desc())
    rows = list(session.execute(query.limit(limit + 1)).scalars().all())
    more = len(rows) > limit
    rows = rows[:limit]
    if not more or not rows:
        return rows, None
    last_row = rows[-1]
    if f.flag == "at_risk":
        assert last_row.first_touch_due is not None
        return rows, f"{last_row.first_touch_due.isoformat()}~{last_row.id}"
    return rows, str(last_row.id)


def iter_leads(session: Session, f: LeadFilter, *, now: datetime, batch: int = 2000) -> Any:
    """Every lead the filter shows, in pages (the CSV export), without holding them all."""
    after: str | None = None
    while True:
        rows, after = lead_page(session, f, now=now, after=after, limit=batch)
        yield from rows
        if after is None:
            return


def get_lead(session: Session, lead_id: int) -> Lead | None:
    return session.get(Lead, lead_id)


def lead_events(session: Session, lead_id: int) -> Sequence[LeadEvent]:
    return session.execute(select(LeadEvent).where(col(LeadEvent.lead_id) == lead_id)
                           .order_by(col(LeadEvent.id))).scalars().all()


def rep_statuses(session: Session) -> dict[str, RepStatus]:
    return {row.rep: row for row in session.execute(select(RepStatus)).scalars().all()}


def open_counts(session: Session, reps: Sequence[str]) -> dict[str, int]:
    """Open leads per owner, for the given reps (index `ix_lead_owner_open`)."""
    if not reps:
        return {}
    rows = session.execute(select(col(Lead.owner), sa.func.count()).where(
        col(Lead.owner).in_(list(reps)), col(Lead.is_open).is_(sa.true())).group_by(col(Lead.owner))).all()
    return {str(owner): int(n) for owner, n in rows}


def speed_distribution(session: Session, *, start: datetime, as_of: datetime,
                       teams: Sequence[str] | None = None) -> list[int]:
    """Leads routed in [start, as_of] and first touched by `as_of`, counted per speed-to-lead bucket
    (SPEED_BUCKETS, then one open bucket): len(SPEED_BUCKETS) + 1 counts, read from the covering
    `ix_lead_routed_metrics`."""
    speed = col(Lead.speed_to_lead_min)
    cases = []
    for i, bound in enumerate(SPEED_BUCKETS):
        cases.append((speed < bound, i))
    bucket = sa.case(*cases, else_=len(SPEED_BUCKETS))
    where: list[Any] = [col(Lead.routed_at) >= start, col(Lead.routed_at) <= as_of,
                        col(Lead.workable).is_(sa.true()), col(Lead.first_touch_at) <= as_of, speed.is_not(None)]
    if teams is not None:
        where.append(col(Lead.team).in_(list(teams)))
    counts = [0] * (len(SPEED_BUCKETS) + 1)
    for index, n in session.execute(select(bucket, sa.func.count()).where(*where).group_by(bucket)).all():
        counts[int(index)] = int(n)
    return counts


# --- sign-in links --------------------------------------------------------------------------


def add_signin(session: Session, *, token_hash: str, person: str, next_path: str, now: datetime,
               expires_at: datetime) -> None:
    session.add(DeskSignin(token_hash=token_hash, person=person, next_path=next_path, created_at=now,
                           expires_at=expires_at))


def signin_for(session: Session, *, token_hash: str, now: datetime) -> DeskSignin | None:
    """The link if it may still be used (not spent, not expired), else None."""
    row: DeskSignin | None = session.execute(
        select(DeskSignin).where(col(DeskSignin.token_hash) == token_hash)).scalars().first()
    if row is None or row.used_at is not None or row.expires_at <= now:
        return None
    return row


def spend_signin(session: Session, *, token_hash: str, now: datetime) -> DeskSignin | None:
    """Spend the link once: a conditional UPDATE, so two concurrent posts cannot both sign in."""
    result = session.execute(
        sa.update(DeskSignin).where(col(DeskSignin.token_hash) == token_hash, col(DeskSignin.used_at).is_(None),
                                    col(DeskSignin.expires_at) > now).values(used_at=now))
    if getattr(result, "rowcount", 0) != 1:
        return None
    spent: DeskSignin | None = session.execute(
        select(DeskSignin).where(col(DeskSignin.token_hash) == token_hash)).scalars().first()
    return spent
