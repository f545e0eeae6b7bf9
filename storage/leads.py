"""Leads and their event log: insert, find, lock, compare-and-set, list.

Each function runs inside the caller's session; the caller (a command) owns the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic_core import PydanticUndefined
from sqlalchemy.orm import instrumentation
from sqlalchemy.orm.attributes import instance_state, set_committed_value
from sqlmodel import Session, col, select

from storage.db import affected, deferred_rows
from storage.tables import Lead, LeadEvent, MessageRef, OutboxMessage

_LEAD_TABLE: sa.Table = Lead.__table__  # type: ignore[attr-defined]
_EVENT_TABLE: sa.Table = LeadEvent.__table__  # type: ignore[attr-defined]
# Core statements on the tables (not the ORM entities: those go through the ORM's bulk machinery).
_INSERT_EVENT = _EVENT_TABLE.insert()
_INSERT_LEAD = _LEAD_TABLE.insert().returning(_LEAD_TABLE.c.id)
_INSERT_LEADS = _LEAD_TABLE.insert().returning(_LEAD_TABLE.c.id, sort_by_parameter_order=True)
#: SQLite: one multi-row INSERT ... RETURNING id, in whatever order SQLite returns them (see insert_leads).
_INSERT_LEADS_UNORDERED = _LEAD_TABLE.insert().returning(_LEAD_TABLE.c.id)
#: PostgreSQL: the batch's ids from the lead's sequence, then an executemany with the ids given.
_NEXT_LEAD_IDS = sa.text("SELECT nextval(pg_get_serial_sequence('lead', 'id')) FROM generate_series(1, :n)")
_INSERT_LEADS_WITH_IDS = _LEAD_TABLE.insert()
_LEAD_COLUMNS = [c.name for c in _LEAD_TABLE.columns if c.name != "id"]
#: Where `event_batch` collects the events of a session until it writes them in one executemany.
_EVENT_BUFFER = "slabot.event_buffer"


_LEAD_MANAGER = instrumentation.manager_of_class(Lead)


def _defaults() -> list[tuple[str, Any, Any]]:
    """(field, default, default factory) of each field of Lead."""
    return [(name, None if field.default is PydanticUndefined else field.default, field.default_factory)
            for name, field in Lead.model_fields.items()]


_LEAD_DEFAULTS = _defaults()


def new_lead(**values: Any) -> Lead:
    """A new (transient) Lead with these values and the model's defaults for the rest, built the way
    the ORM builds a row it loads: `Lead(...)` runs SQLModel's per-field __init__, about 25 times
    slower, and intake builds hundreds a second. Values are taken as given (intake validated them)."""
    if not _LEAD_MANAGER.mapper.configured:   # as Lead() would: set up the ORM's attributes first
        sa.orm.configure_mappers()
    lead: Lead = _LEAD_MANAGER.new_instance()
    attributes = lead.__dict__
    for name, default, factory in _LEAD_DEFAULTS:
        if name in values:
            attributes[name] = values[name]
        elif factory is not None:
            attributes[name] = factory()
        else:
            attributes[name] = default
    object.__setattr__(lead, "__pydantic_fields_set__", set(values))
    return lead


def set_values(lead: Lead, values: dict[str, Any]) -> None:
    """Write these values to the lead. A new lead not written yet (built by `new_lead`, in no session:
    `insert_lead(s)` writes it) takes them straight into its dict, as `new_lead` does: there is no
    change to track, and the ORM's attribute set costs more than the INSERT's share; any other lead
    through its attributes, so the session tracks and flushes them."""
    state = instance_state(lead)
    if state.key is None and state.session_id is None:
        lead.__dict__.update(values)
        lead.__pydantic_fields_set__.update(values)
        return
    for name, value in values.items():
        setattr(lead, name, value)


def insert_lead(session: Session, *, lead: Lead) -> int:
    """Write a new lead in one Core INSERT and return its id. Intake is the hot path (hundreds a
    second): the statement is built and compiled once, with the values as parameters (an ORM flush
    or `.values()` costs more than the write itself)."""
    [lead_id] = insert_leads(session, leads=[lead])
    return lead_id


def insert_leads(session: Session, *, leads: Sequence[Lead]) -> list[int]:
    """Write new leads in one executemany (multi-row INSERT ... RETURNING id, ids in the order of
    `leads`) and return their ids."""
    rows = [_row(lead) for lead in leads]
    connection = session.connection()
    if len(rows) == 1:
        return [int(connection.execute(_INSERT_LEAD, rows[0]).scalar_one())]
    if connection.dialect.name == "sqlite":
        # SQLAlchemy cannot promise RETURNING's order on SQLite, so `sort_by_parameter_order` would
        # send one INSERT per row. The writer holds the database's write lock (BEGIN IMMEDIATE) and
        # the rows go in in the order of their VALUES, each taking the next rowid (INTEGER PRIMARY
        # KEY: the largest plus one), so the ids in ascending order are the ids of `leads` in order.
        ids = sorted(int(i) for i in connection.execute(_INSERT_LEADS_UNORDERED, rows).scalars().all())
    elif connection.dialect.name == "postgresql":
        # A multi-row INSERT's text changes with its row count and is too long for psycopg's query
        # cache, which then parses its thousand placeholders in Python on every batch (it cost more
        # than the rest of the handoff). The ids come from the sequence in one query instead, and
        # the rows go in as one executemany of the single-row INSERT (cached, pipelined).
        ids = sorted(int(i) for i in connection.execute(_NEXT_LEAD_IDS, {"n": len(rows)}).scalars().all())
        connection.execute(_INSERT_LEADS_WITH_IDS, [{**row, "id": i} for row, i in zip(rows, ids, strict=True)])
    else:
        ids = [int(i) for i in connection.execute(_INSERT_LEADS, rows).scalars().all()]
    if len(ids) != len(rows):
        raise RuntimeError(f"{len(rows)} leads were written but {len(ids)} ids came back")
    return ids


def _row(lead: Lead) -> dict[str, Any]:
    """The lead's column values for an INSERT: read from the instance's dict (a lead built by
    `new_lead` holds every column there; the ORM's attribute access costs more than the write)."""
    values = lead.__dict__
    return {name: values[name] if name in values else getattr(lead, name) for name in _LEAD_COLUMNS}


def known_identities(session: Session, *, external_ids: Iterable[str],
                     idempotency_keys: Iterable[str]) -> tuple[set[str], set[str]]:
    """Which of these external ids, and which of these idempotency keys, a stored lead has (one query)."""
    ids, keys = sorted(set(external_ids)), sorted(set(idempotency_keys))
    conditions = []
    if ids:
        conditions.append(_LEAD_TABLE.c.external_id.in_(ids))
    if keys:
        conditions.append(_LEAD_TABLE.c.idempotency_key.in_(keys))
    if not conditions:
        return set(), set()
    rows = session.connection().execute(
        sa.select(_LEAD_TABLE.c.external_id, _LEAD_TABLE.c.idempotency_key).where(sa.or_(*conditions)))
    found_ids, found_keys = set(), set()
    for external_id, key in rows:
        found_ids.add(external_id)
        found_keys.add(key)
    return found_ids & set(ids), found_keys & set(keys)


def insert_event(session: Session, *, lead_id: int, at: datetime, actor: str, type: str,
                 data: dict[str, Any]) -> None:
    """A Core INSERT: the log is append-only, it never needs to be an object in the session.
    Inside `event_batch` the row waits for the batch's one executemany."""
    row = {"lead_id": lead_id, "at": at, "actor": actor, "type": type, "data": data}
    buffer: list[dict[str, Any]] | None = session.info.get(_EVENT_BUFFER)
    if buffer is not None:
        buffer.append(row)
        return
    session.connection().execute(_INSERT_EVENT, row)


@contextmanager
def event_batch(session: Session) -> Iterator[None]:
    """Collect the events appended meanwhile and write them in one executemany, in the order they
    were added (so each lead's log keeps its order), when the block ends without an error. Nothing
    in the block may read the events it adds."""
    with deferred_rows(session, _EVENT_BUFFER, lambda rows: session.connection().execute(_INSERT_EVENT, rows)):
        yield


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
