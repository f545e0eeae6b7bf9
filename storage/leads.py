"""Leads and their event log: insert, find, lock, compare-and-set, list.

Each function runs inside the caller's session; the caller (a command) owns the transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col, select

from storage.db import affected
from storage.tables import Lead, LeadEvent, MessageRef, OutboxMessage

_INSERT_EVENT = sa.insert(LeadEvent)
_INSERT_LEAD = sa.insert(Lead).returning(col(Lead.id))
_LEAD_COLUMNS = [c.name for c in Lead.__table__.columns if c.name != "id"]  # type: ignore[attr-defined]


def insert_lead(session: Session, *, lead: Lead) -> int:
    """Write a new lead in one Core INSERT and return its id. Intake is the hot path (hundreds a
    second): the statement is built and compiled once, with the values as parameters (an ORM flush
    or `.values()` costs more than the write itself)."""
    row = {name: getattr(lead, name) for name in _LEAD_COLUMNS}
    lead_id: int = session.execute(_INSERT_LEAD, row).scalar_one()
    return lead_id


def insert_event(session: Session, *, lead_id: int, at: datetime, actor: str, type: str,
                 data: dict[str, Any]) -> None:
    """A Core INSERT: the log is append-only, it never needs to be an object in the session."""
    session.execute(_INSERT_EVENT, {"lead_id": lead_id, "at": at, "actor": actor, "type": type, "data": data})


def find_duplicate(session: Session, *, external_id: str | None, idempotency_key: str | None) -> Lead | None:
    """The earlier lead with this idempotency key, else with this external id (both unique)."""
    conditions = []
    if external_id:
        conditions.append(col(Lead.external_id) == external_id)
    if idempotency_key:
        conditions.append(col(Lead.idempotency_key) == idempotency_key)
    if not conditions:
        return None
    found = session.execute(select(Lead).where(sa.or_(*conditions))).scalars().all()
    return next((lead for lead in found if idempotency_key and lead.idempotency_key == idempotency_key),
                found[0] if found else None)


def get_lead(session: Session, *, lead_id: int) -> Lead | None:
    return session.get(Lead, lead_id)


def lock_lead(session: Session, *, lead_id: int) -> Lead | None:
    """The lead, row-locked for this transaction on PostgreSQL (SQLite's BEGIN IMMEDIATE serializes)."""
    query = select(Lead).where(col(Lead.id) == lead_id)
    if session.get_bind().dialect.name != "sqlite":
        query = query.with_for_update()
    return session.execute(query).scalars().first()


def lead_due(session: Session, *, lead_id: int, now: datetime) -> Lead | None:
    """The open lead if its next check is due; on PostgreSQL skipped when another worker holds it."""
    query = select(Lead).where(col(Lead.id) == lead_id, col(Lead.is_open) == sa.true(),
                               col(Lead.next_check_at) <= now)
    if session.get_bind().dialect.name != "sqlite":
        query = query.with_for_update(skip_locked=True)
    return session.execute(query).scalars().first()


def lead_by_external_id(session: Session, *, external_id: str) -> Lead | None:
    return session.execute(select(Lead).where(col(Lead.external_id) == external_id)).scalars().first()


def bump_version(session: Session, *, lead_id: int, seen_version: int) -> bool:
    """Compare-and-set: version + 1 only if the lead is still at `seen_version`; False otherwise."""
    return bool(affected(session.execute(
        sa.update(Lead).where(col(Lead.id) == lead_id, col(Lead.version) == seen_version)
        .values(version=seen_version + 1)
        .execution_options(synchronize_session=False))))


def events_of(session: Session, *, lead_id: int, types: Sequence[str] | None = None,
              skip: Sequence[int] = ()) -> Sequence[LeadEvent]:
    """The lead's event log in the order it was written; only `types` if given, without `skip` ids."""
    where: list[Any] = [col(LeadEvent.lead_id) == lead_id]
    if types is not None:
        where.append(col(LeadEvent.type).in_(list(types)))
    if skip:
        where.append(col(LeadEvent.id).not_in(list(skip)))
    return session.execute(select(LeadEvent).where(*where).order_by(col(LeadEvent.id))).scalars().all()


def count_open(session: Session, *, owner: str) -> int:
    count: int = session.execute(
        select(sa.func.count()).select_from(Lead).where(col(Lead.owner) == owner, col(Lead.is_open))
    ).scalar_one()
    return count


def open_leads(session: Session, *, owner: str | None = None, teams: Sequence[str] | None = None,
               limit: int) -> tuple[int, Sequence[Lead]]:
    """(how many, the first `limit` by first-touch due date) of the open leads of an owner, of some
    teams, or all of them."""
    where: list[Any] = []
    if owner is not None:
        where.append(col(Lead.owner) == owner)
    if teams is not None:
        where.append(col(Lead.team).in_(list(teams)))
    base = select(Lead).where(col(Lead.is_open), *where)
    total: int = session.execute(select(sa.func.count()).select_from(base.subquery())).scalar_one()
    leads = session.execute(
        base.order_by(col(Lead.first_touch_due).is_(None), col(Lead.first_touch_due), col(Lead.id))
        .limit(limit)).scalars().all()
    return total, leads


def iso(at: datetime | None) -> str | None:
    """A time as the API and the event log write it: ISO 8601 in UTC with a Z."""
    return at.isoformat().replace("+00:00", "Z") if at else None


def add_event(session: Session, *, lead: Lead, at: datetime, actor: str, type: str, **data: Any) -> None:
    """Append to the lead's event log (the lead must have its id)."""
    assert lead.id is not None
    insert_event(session, lead_id=lead.id, at=at, actor=actor, type=type, data=data)


#: In a `claim_step` guard: the column must hold a value (IS NOT NULL).
NOT_NULL: Any = object()


def claim_step(session: Session, *, lead: Lead, guard: dict[str, Any], values: dict[str, Any]) -> bool:
    """`UPDATE lead SET values WHERE id = lead.id AND` every guard column still holds the value read
    (None: IS NULL; NOT_NULL: IS NOT NULL). True when it matched; the values are then on `lead` as
    its committed state. The engine's once-only guard: a step fires once across workers and replays."""
    assert lead.id is not None
    where: list[Any] = [col(Lead.id) == lead.id]
    for name, value in guard.items():
        column = getattr(Lead, name)
        where.append(column.is_(None) if value is None else column.is_not(None) if value is NOT_NULL
                     else column == value)
    changed = affected(session.execute(
        sa.update(Lead).where(*where).values(**values).execution_options(synchronize_session=False)))
    if changed:
        for name, value in values.items():
            set_committed_value(lead, name, value)
    return bool(changed)


def ever_shown(session: Session, *, lead_id: int) -> bool:
    """Whether a card of this lead was ever queued or posted, on any platform."""
    queued = session.execute(select(OutboxMessage.id).where(
        col(OutboxMessage.lead_id) == lead_id, col(OutboxMessage.kind) == "card").limit(1)).first()
    posted = session.execute(select(MessageRef.id).where(col(MessageRef.lead_id) == lead_id).limit(1)).first()
    return queued is not None or posted is not None


def owners_of(session: Session, *, lead_ids: Sequence[int]) -> dict[int, str | None]:
    """Each lead's current owner."""
    rows = session.execute(select(Lead.id, Lead.owner).where(col(Lead.id).in_(list(lead_ids))))
    return {int(lead_id): owner for lead_id, owner in rows}


def next_check_after(session: Session, *, now: datetime) -> datetime | None:
    """The soonest check due after `now` on an open lead (None: nothing is scheduled)."""
    due: datetime | None = session.execute(select(sa.func.min(Lead.next_check_at))
                                           .where(col(Lead.is_open), col(Lead.next_check_at) > now)).scalar()
    return due
