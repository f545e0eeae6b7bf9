"""The outbox claim on SQLite and PostgreSQL: exactly-once claims, a cap per lane, stale recovery."""

from __future__ import annotations

from datetime import timedelta

from sla.clock import FixedClock
from storage.db import Database
from storage.outbox import PER_LANE, STALE_CLAIM, claim_batch, enqueue, mark_done


def fill(db: Database, now: object, channel: str, count: int, start: int = 0) -> None:
    with db.write() as session:
        for i in range(start, start + count):
            assert enqueue(session, dedupe_key=f"{channel}:{i}", kind="channel", platform="slack", target=channel,
                           now=now, payload={"text": str(i)})  # type: ignore[arg-type]
        assert not enqueue(session, dedupe_key=f"{channel}:{start}", kind="channel", platform="slack",
                           target=channel, now=now)  # type: ignore[arg-type]


def test_a_claim_takes_at_most_a_lane_s_worth_per_channel(any_db: Database, clock: FixedClock) -> None:
    now = clock.now()
    fill(any_db, now, "C-busy", PER_LANE * 3)
    fill(any_db, now, "C-quiet", 4)
    with any_db.write() as session:
        first = claim_batch(session, worker="w1", now=now)
    busy = [r for r in first if r.target == "C-busy"]
    assert len(busy) == PER_LANE and len(first) == PER_LANE + 4
    assert [r.payload["text"] for r in busy] == [str(i) for i in range(PER_LANE)]   # oldest first
    with any_db.write() as session:
        second = claim_batch(session, worker="w2", now=now)
    # The next claim gets the next slice of the busy lane, never a row w1 holds.
    assert {r.id for r in second}.isdisjoint({r.id for r in first})
    assert [r.payload["text"] for r in second] == [str(i) for i in range(PER_LANE, 2 * PER_LANE)]


def test_rows_of_a_dead_worker_are_claimed_again_after_the_stale_window(any_db: Database, clock: FixedClock) -> None:
    now = clock.now()
    fill(any_db, now, "C1", 2)
    with any_db.write() as session:
        rows = claim_batch(session, worker="dead", now=now)
        assert mark_done(session, message_id=rows[0].id or 0, worker="dead", now=now)
    with any_db.write() as session:
        assert claim_batch(session, worker="w2", now=now + STALE_CLAIM - timedelta(seconds=1)) == []
    with any_db.write() as session:
        again = claim_batch(session, worker="w2", now=now + STALE_CLAIM + timedelta(seconds=1))
    assert [r.id for r in again] == [rows[1].id] and again[0].attempts == 2
    with any_db.write() as session:   # the dead worker can no longer settle what it lost
        assert not mark_done(session, message_id=rows[1].id or 0, worker="dead", now=now)
