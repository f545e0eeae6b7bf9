"""The transactional outbox: queue chat side effects with the change that caused them, claim and
settle them exactly once across workers."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from storage.db import affected, deferred_rows
from storage.tables import MessageRef, OutboxLane, OutboxMessage

#: How long a claim lasts unless renewed: a claimed row, and the lane (channel or person) it goes
#: to. The worker renews both every LEASE / 3 while it works, and gives them back when it stops; a
#: worker that died loses them after LEASE, so its rows go out again within LEASE plus one poll.
LEASE = timedelta(seconds=15)
#: Rows one claim takes per lane when the caller does not say: a few seconds of sending at Slack's
#: one post per second per channel. A claim is what a lane sends soon, not a backlog to sit on.
PER_LANE = 5
#: Lanes one claim looks at (lanes with a direct message or a channel message first).
MAX_LANES = 500
#: Claims on PostgreSQL take this transaction-level advisory lock: two workers' claims run one
#: after the other, so a lane's lease and its rows are always decided together (SQLite gets the
#: same from BEGIN IMMEDIATE).
_CLAIM_LOCK_KEY = 0x51AB0_0B0C5

Lane = tuple[str, str]


_ENQUEUE: dict[str, Any] = {}


def _enqueue_statement(dialect: str) -> Any:
    """INSERT ... ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, built once per dialect (RETURNING,
    not rowcount: PostgreSQL reports rowcount -1 for INSERT ... RETURNING)."""
    if dialect not in _ENQUEUE:
        insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(OutboxMessage)
        _ENQUEUE[dialect] = insert.on_conflict_do_nothing(index_elements=["dedupe_key"]).returning(
            col(OutboxMessage.id))
    return _ENQUEUE[dialect]


#: Where `enqueue_batch` collects a session's effects until it writes them in one executemany.
_BUFFER = "slabot.outbox_buffer"


def enqueue(session: Session, *, dedupe_key: str, kind: str, platform: str, target: str,
            now: datetime, payload: dict[str, Any] | None = None, lead_id: int | None = None,
            not_before: datetime | None = None) -> bool:
    """Queue one effect; False if an effect with this key was queued before (sent or not). Inside
    `enqueue_batch` the row waits for the batch's executemany, and the answer is True."""
    row = {"dedupe_key": dedupe_key, "kind": kind, "platform": platform, "target": target, "lead_id": lead_id,
           "payload": payload or {}, "status": "pending", "attempts": 0, "next_attempt_at": not_before or now,
           "created_at": now}
    buffer: list[dict[str, Any]] | None = session.info.get(_BUFFER)
    if buffer is not None:
        buffer.append(row)
        return True
    statement = _enqueue_statement(session.get_bind().dialect.name)
    return session.execute(statement, row).first() is not None


_OUTBOX_TABLE: sa.Table = OutboxMessage.__table__  # type: ignore[attr-defined]
_ENQUEUE_MANY: dict[str, Any] = {}


@contextmanager
def enqueue_batch(session: Session) -> Iterator[None]:
    """Collect the effects enqueued meanwhile and queue them in one executemany (INSERT ... ON
    CONFLICT (dedupe_key) DO NOTHING, in the order they were enqueued) when the block ends without
    an error: a batch of handoffs queues its cards in one statement, not one round trip each.
    Nothing in the block may need to know whether an effect was new (`enqueue` answers True)."""
    def write(rows: list[dict[str, Any]]) -> None:
        dialect = session.get_bind().dialect.name
        if dialect not in _ENQUEUE_MANY:
            insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(_OUTBOX_TABLE)
            _ENQUEUE_MANY[dialect] = insert.on_conflict_do_nothing(index_elements=["dedupe_key"])
        session.connection().execute(_ENQUEUE_MANY[dialect], rows)

    with deferred_rows(session, _BUFFER, write):
        yield


def _due(now: datetime) -> sa.ColumnElement[bool]:
    """Rows a claim may take: pending and due, or `sending` under a lease that lapsed (its worker died)."""
    return sa.or_(
        sa.and_(col(OutboxMessage.status) == "pending", col(OutboxMessage.next_attempt_at) <= now),
        sa.and_(col(OutboxMessage.status) == "sending", col(OutboxMessage.claimed_at) < now - LEASE),
    )


def _priority() -> sa.ColumnElement[int]:
    """Direct messages, channel messages and digests before cards: a nudge never queues behind a
    backlog of cards, in a lane or across lanes."""
    return sa.case((col(OutboxMessage.kind) == "card", 1), else_=0)


def _lane_in(lanes: Collection[Lane]) -> sa.ColumnElement[bool]:
    return sa.tuple_(col(OutboxMessage.platform), col(OutboxMessage.target)).in_(list(lanes))


def claim_batch(session: Session, *, worker: str, now: datetime, per_lane: int | Mapping[str, int] = PER_LANE,
                skip_lanes: Collection[Lane] = (), max_lanes: int = MAX_LANES) -> list[OutboxMessage]:
    """Claim due rows for `worker`, at most `per_lane` per lane (a number, or one per platform), in
    lanes it holds or can take; returned in sending order (messages before cards, then oldest first).

    Here lay dragons: several workers run this at once. A lane (platform, channel or person) is
    held by one worker at a time through its lease row in `outbox_lane`, so only that worker sends
    to it and the platform's per-channel rate is never doubled. Rows of a lane are taken only by
    its holder; rows still `sending` under a lapsed lease (a dead worker) are taken again, and the
    sender then looks for the earlier post before posting (bot.worker.delivery). `skip_lanes`: lanes the
    caller still has enough rows of.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CLAIM_LOCK_KEY})
    due = _due(now)
    lanes_query = (select(OutboxMessage.platform, OutboxMessage.target).where(due)
                   .group_by(col(OutboxMessage.platform), col(OutboxMessage.target))
                   .order_by(sa.func.min(_priority()), sa.func.min(col(OutboxMessage.id))).limit(max_lanes))
    if skip_lanes:
        lanes_query = lanes_query.where(sa.not_(_lane_in(skip_lanes)))
    wanted = sorted((str(p), str(t)) for p, t in session.execute(lanes_query).all())
    if not wanted:
        return []
    held = take_lanes(session, worker=worker, now=now, lanes=wanted)
    if not held:
        return []
    lane = (col(OutboxMessage.platform), col(OutboxMessage.target))
    ranked = (select(OutboxMessage.id, OutboxMessage.platform,
                     sa.func.row_number().over(partition_by=lane, order_by=(_priority(), col(OutboxMessage.id)))
                     .label("rank"))
              .where(due, _lane_in(held)).subquery())
    if isinstance(per_lane, int):
        cap: Any = per_lane
    else:
        cap = sa.case(*((ranked.c.platform == p, n) for p, n in per_lane.items()), else_=PER_LANE) \
            if per_lane else PER_LANE
    ids = list(session.execute(select(ranked.c.id).where(ranked.c.rank <= cap)).scalars())
    if not ids:
        return []
    claimed = list(session.execute(
        sa.update(OutboxMessage).where(col(OutboxMessage.id).in_(ids), due)
        .values(status="sending", claimed_by=worker, claimed_at=now, attempts=OutboxMessage.attempts + 1)
        .returning(col(OutboxMessage.id))
        .execution_options(synchronize_session=False)
    ).scalars())
    if not claimed:
        return []
    rows = session.execute(
        select(OutboxMessage).where(col(OutboxMessage.id).in_(claimed))
        .order_by(_priority(), col(OutboxMessage.id))
        .execution_options(populate_existing=True)
    ).scalars().all()
    return list(rows)


def take_lanes(session: Session, *, worker: str, now: datetime, lanes: Collection[Lane]) -> list[Lane]:
    """Hold (or keep holding) these lanes for LEASE; returns the ones `worker` holds now. A lane held
    by another worker under a live lease is left alone."""
    if not lanes:
        return []
    dialect = session.get_bind().dialect.name
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(OutboxLane)
    until = now + LEASE
    statement = insert.values([{"platform": p, "target": t, "holder": worker, "lease_until": until}
                               for p, t in sorted(lanes)])
    current = OutboxLane.__table__.c   # type: ignore[attr-defined]
    upsert = statement.on_conflict_do_update(
        index_elements=["platform", "target"],
        set_={"holder": statement.excluded.holder, "lease_until": statement.excluded.lease_until},
        where=sa.or_(current.holder == worker, current.holder.is_(None), current.lease_until < now),
    ).returning(current.platform, current.target)
    return [(str(p), str(t)) for p, t in session.execute(upsert).all()]


def renew(session: Session, *, worker: str, now: datetime, ids: Collection[int],
          lanes: Collection[Lane]) -> set[int]:
    """The holder is still working: extend its rows' and lanes' leases. Returns the ids it still
    holds (a row missing from the answer was taken by another worker after the lease lapsed: its
    sender must drop it)."""
    still: set[int] = set()
    id_list = sorted(ids)
    for start in range(0, len(id_list), 500):
        chunk = id_list[start:start + 500]
        still.update(int(i) for i in session.execute(
            sa.update(OutboxMessage)
            .where(col(OutboxMessage.id).in_(chunk), col(OutboxMessage.claimed_by) == worker,
                   col(OutboxMessage.status) == "sending")
            .values(claimed_at=now).returning(col(OutboxMessage.id))
            .execution_options(synchronize_session=False)).scalars())
    if lanes:
        current = OutboxLane.__table__.c   # type: ignore[attr-defined]
        session.execute(sa.update(OutboxLane)
                        .where(current.holder == worker,
                               sa.tuple_(current.platform, current.target).in_(sorted(lanes)))
                        .values(lease_until=now + LEASE))
    return still


def release(session: Session, *, worker: str, now: datetime, ids: Collection[int] = (),
            lanes: Collection[Lane] | None = None) -> int:
    """Give claims back at once (a worker stopping, or a tick that ran out of time): rows not sent
    go back to `pending`, due now, and the attempt they were claimed for is not counted; lanes
    (all the worker holds when `lanes` is None) are free for any worker. Returns rows released."""
    released = 0
    id_list = sorted(ids)
    for start in range(0, len(id_list), 500):
        chunk = id_list[start:start + 500]
        released += affected(session.execute(
            sa.update(OutboxMessage)
            .where(col(OutboxMessage.id).in_(chunk), col(OutboxMessage.claimed_by) == worker,
                   col(OutboxMessage.status) == "sending")
            .values(status="pending", claimed_by=None, claimed_at=None,
                    attempts=sa.case((col(OutboxMessage.attempts) > 0, col(OutboxMessage.attempts) - 1),
                                     else_=0))
            .execution_options(synchronize_session=False)))
    current = OutboxLane.__table__.c   # type: ignore[attr-defined]
    query = sa.update(OutboxLane).where(current.holder == worker)
    if lanes is not None:
        if not lanes:
            return released
        query = query.where(sa.tuple_(current.platform, current.target).in_(sorted(lanes)))
    session.execute(query.values(holder=None, lease_until=now))
    return released


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


def status_counts(session: Session) -> dict[str, int]:
    """Rows pending, sending and dead (an index range on status: cheap at every scrape)."""
    counts = {"pending": 0, "sending": 0, "dead": 0}
    rows = session.execute(select(OutboxMessage.status, sa.func.count()).select_from(OutboxMessage)
                           .where(col(OutboxMessage.status).in_(list(counts)))
                           .group_by(col(OutboxMessage.status))).all()
    counts.update({str(status): int(n) for status, n in rows})
    return counts


def pending_count(session: Session) -> int:
    return int(session.execute(
        select(sa.func.count()).select_from(OutboxMessage)
        .where(col(OutboxMessage.status).in_(["pending", "sending"]))
    ).scalar_one())
