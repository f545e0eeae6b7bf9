"""The transactional outbox: queue chat side effects with the change that caused them, claim and
settle them exactly once across workers."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from storage.db import affected
from storage.tables import MessageRef, OutboxMessage

#: A row claimed longer ago than this belongs to a worker that died: it may be claimed again.
STALE_CLAIM = timedelta(minutes=5)
#: Rows one claim takes per channel. A worker sends a lane's rows one after another (Slack allows
#: about 1 post/s per channel), so a lane must finish well inside STALE_CLAIM: otherwise another
#: worker would take over rows still waiting in a live worker's lane and post them twice.
PER_LANE = 30


_ENQUEUE: dict[str, Any] = {}


def _enqueue_statement(dialect: str) -> Any:
    """INSERT ... ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, built once per dialect (RETURNING,
    not rowcount: PostgreSQL reports rowcount -1 for INSERT ... RETURNING)."""
    if dialect not in _ENQUEUE:
        insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(OutboxMessage)
        _ENQUEUE[dialect] = insert.on_conflict_do_nothing(index_elements=["dedupe_key"]).returning(
            col(OutboxMessage.id))
    return _ENQUEUE[dialect]


def enqueue(session: Session, *, dedupe_key: str, kind: str, platform: str, target: str,
            now: datetime, payload: dict[str, Any] | None = None, lead_id: int | None = None,
            not_before: datetime | None = None) -> bool:
    """Queue one effect; False if an effect with this key was queued before (sent or not)."""
    statement = _enqueue_statement(session.get_bind().dialect.name)
    row = {"dedupe_key": dedupe_key, "kind": kind, "platform": platform, "target": target, "lead_id": lead_id,
           "payload": payload or {}, "status": "pending", "attempts": 0, "next_attempt_at": not_before or now,
           "created_at": now}
    return session.execute(statement, row).first() is not None


def claim_batch(session: Session, *, worker: str, now: datetime, limit: int = 5000,
                per_lane: int = PER_LANE) -> list[OutboxMessage]:
    """Claim due rows for this worker.

    Here lay dragons: two workers may run this at once. On PostgreSQL the SELECT skips rows
    another worker has locked; the conditional UPDATE below is the real guard on both databases
    (a row is ours only if the UPDATE that moves it to `sending` matched it).
    """
    stale = now - STALE_CLAIM
    due = sa.or_(
        sa.and_(col(OutboxMessage.status) == "pending", col(OutboxMessage.next_attempt_at) <= now),
        sa.and_(col(OutboxMessage.status) == "sending", col(OutboxMessage.claimed_at) < stale),
    )
    lane = (col(OutboxMessage.platform), col(OutboxMessage.target))
    ranked = select(OutboxMessage.id, sa.func.row_number().over(partition_by=lane, order_by=col(OutboxMessage.id))
                    .label("rank")).where(due).subquery()
    first_of_each_lane = select(ranked.c.id).where(ranked.c.rank <= per_lane)
    query = select(OutboxMessage.id).where(col(OutboxMessage.id).in_(first_of_each_lane)) \
        .order_by(col(OutboxMessage.id)).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = list(session.execute(query).scalars())
    if not ids:
        return []
    session.execute(
        sa.update(OutboxMessage).where(col(OutboxMessage.id).in_(ids), due)
        .values(status="sending", claimed_by=worker, claimed_at=now,
                attempts=OutboxMessage.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    rows = session.execute(
        select(OutboxMessage).where(col(OutboxMessage.id).in_(ids),
                                    col(OutboxMessage.claimed_by) == worker,
                                    col(OutboxMessage.claimed_at) == now,
                                    col(OutboxMessage.status) == "sending")
        .order_by(col(OutboxMessage.id))
    ).scalars().all()
    return list(rows)


def mark_done(session: Session, *, message_id: int, worker: str, now: datetime) -> bool:
    result = session.execute(
        sa.update(OutboxMessage)
        .where(col(OutboxMessage.id) == message_id, col(OutboxMessage.claimed_by) == worker,
               col(OutboxMessage.status) == "sending")
        .values(status="done", done_at=now, last_error=None)
    )
    return bool(affected(result))


def retry_later(session: Session, *, message_id: int, worker: str, at: datetime, error: str,
                give_up: bool = False) -> None:
    session.execute(
        sa.update(OutboxMessage)
        .where(col(OutboxMessage.id) == message_id, col(OutboxMessage.claimed_by) == worker)
        .values(status="dead" if give_up else "pending", next_attempt_at=at,
                last_error=error[:500], claimed_by=None, claimed_at=None)
    )


def supersede_older_cards(session: Session, *, lead_id: int, platform: str, newer_than: int,
                          now: datetime) -> None:
    """A card row renders the lead's *current* state, so older pending card rows add nothing."""
    session.execute(
        sa.update(OutboxMessage)
        .where(col(OutboxMessage.lead_id) == lead_id, col(OutboxMessage.platform) == platform,
               col(OutboxMessage.kind) == "card", col(OutboxMessage.status) == "pending",
               col(OutboxMessage.id) < newer_than)
        .values(status="done", done_at=now, last_error="superseded")
    )


def get_message_ref(session: Session, *, lead_id: int, platform: str) -> MessageRef | None:
    return session.execute(
        select(MessageRef).where(col(MessageRef.lead_id) == lead_id, col(MessageRef.platform) == platform)
    ).scalars().first()


def save_message_ref(session: Session, *, lead_id: int, platform: str, channel: str,
                     message_id: str, now: datetime) -> None:
    dialect = session.get_bind().dialect.name
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(MessageRef)
    session.execute(insert.values(lead_id=lead_id, platform=platform, channel=channel,
                                  message_id=message_id, posted_at=now)
                    .on_conflict_do_nothing(index_elements=["lead_id", "platform"]))


def pending_count(session: Session) -> int:
    return int(session.execute(
        select(sa.func.count()).select_from(OutboxMessage)
        .where(col(OutboxMessage.status).in_(["pending", "sending"]))
    ).scalar_one())
