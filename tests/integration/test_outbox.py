"""The outbox claim on SQLite and PostgreSQL: exactly-once claims, a few seconds' worth per lane,
one worker per lane, short leases renewed while working, claims given back on a clean stop."""

from __future__ import annotations

from datetime import datetime, timedelta

from sla.clock import FixedClock
from storage.db import Database
from storage.health import backlog
from storage.outbox import LEASE, PER_LANE, claim_batch, enqueue, mark_done, release, renew, status_counts


def fill(db: Database, now: datetime, channel: str, count: int, start: int = 0, kind: str = "channel") -> None:
    with db.write() as session:
        for i in range(start, start + count):
            assert enqueue(session, dedupe_key=f"{channel}:{i}", kind=kind, platform="slack", target=channel,
                           now=now, payload={"text": str(i)})
        assert not enqueue(session, dedupe_key=f"{channel}:{start}", kind=kind, platform="slack",
                           target=channel, now=now)


def claim(db: Database, worker: str, now: datetime, **kwargs: object) -> list:  # type: ignore[type-arg]
    with db.write() as session:
        return claim_batch(session, worker=worker, now=now, **kwargs)  # type: ignore[arg-type]


def test_a_claim_takes_a_few_seconds_worth_per_channel_and_one_worker_holds_a_lane(
        any_db: Database, clock: FixedClock) -> None:
    now = clock.now()
    fill(any_db, now, "C-busy", PER_LANE * 3)
    fill(any_db, now, "C-quiet", 2)
    first = claim(any_db, "w1", now)
    busy = [r for r in first if r.target == "C-busy"]
    assert len(busy) == PER_LANE and len(first) == PER_LANE + 2
    assert [r.payload["text"] for r in busy] == [str(i) for i in range(PER_LANE)]   # oldest first
    # A second worker never sends to a channel the first one holds (that would double the rate) ...
    fill(any_db, now, "C-new", 1)
    second = claim(any_db, "w2", now)
    assert [r.target for r in second] == ["C-new"]
    # ... while the holder keeps taking that channel's next rows, per platform's own pace.
    more = claim(any_db, "w1", now, per_lane={"slack": 2})
    assert [r.payload["text"] for r in more] == [str(PER_LANE), str(PER_LANE + 1)]
    assert {r.id for r in more}.isdisjoint({r.id for r in first})


def test_messages_go_before_the_cards_waiting_in_the_same_lane(any_db: Database, clock: FixedClock) -> None:
    now = clock.now()
    fill(any_db, now, "C1", 4, kind="card")
    fill(any_db, now, "C1", 1, start=10, kind="channel")     # an escalation in the team channel
    rows = claim(any_db, "w1", now, per_lane=2)
    assert [(r.kind, r.payload["text"]) for r in rows] == [("channel", "10"), ("card", "0")]


def test_rows_of_a_dead_worker_are_claimed_again_once_its_lease_lapses(any_db: Database, clock: FixedClock) -> None:
    now = clock.now()
    fill(any_db, now, "C1", 2)
    rows = claim(any_db, "dead", now)
    with any_db.write() as session:
        assert mark_done(session, message_id=rows[0].id or 0, worker="dead", now=now)
    assert claim(any_db, "w2", now + LEASE - timedelta(seconds=1)) == []
    again = claim(any_db, "w2", now + LEASE + timedelta(seconds=1))
    assert [r.id for r in again] == [rows[1].id] and again[0].attempts == 2
    with any_db.write() as session:   # the dead worker can no longer settle what it lost
        assert not mark_done(session, message_id=rows[1].id or 0, worker="dead", now=now)


def test_a_renewed_lease_keeps_rows_and_lane_and_tells_what_was_lost(any_db: Database, clock: FixedClock) -> None:
    now = clock.now()
    fill(any_db, now, "C1", 2)
    rows = claim(any_db, "w1", now)
    ids = {r.id or 0 for r in rows}
    later = now + LEASE - timedelta(seconds=2)
    with any_db.write() as session:
        assert renew(session, worker="w1", now=later, ids=ids, lanes=[("slack", "C1")]) == ids
    # Past the first lease but within the renewed one: nobody else may take them.
    assert claim(any_db, "w2", now + LEASE + timedelta(seconds=1)) == []
    stolen = claim(any_db, "w2", later + LEASE + timedelta(seconds=1))
    assert {r.id for r in stolen} == ids
    with any_db.write() as session:
        assert renew(session, worker="w1", now=later + LEASE, ids=ids, lanes=[("slack", "C1")]) == set()


def test_a_clean_stop_gives_claims_back_at_once(any_db: Database, clock: FixedClock) -> None:
    now = clock.now()
    fill(any_db, now, "C1", 3)
    rows = claim(any_db, "w1", now)
    with any_db.write() as session:
        assert mark_done(session, message_id=rows[0].id or 0, worker="w1", now=now)
        assert release(session, worker="w1", now=now, ids=[r.id or 0 for r in rows]) == 2
    # Another worker takes them at the same instant, and the attempt that never happened is not counted.
    again = claim(any_db, "w2", now)
    assert [r.id for r in again] == [r.id for r in rows[1:]]
    assert [r.attempts for r in again] == [1, 1]


def test_backlog_counts_outbox_rows_by_status(any_db: Database, clock: FixedClock) -> None:
    now = clock.now()
    fill(any_db, now, "C1", 3)
    rows = claim(any_db, "w1", now, per_lane=1)
    with any_db.read() as session:
        assert status_counts(session) == {"pending": 2, "sending": 1, "dead": 0}
        seen = backlog(session, now=now)
    assert seen.outbox == {"pending": 2, "sending": 1, "dead": 0} and len(rows) == 1
    assert seen.overdue_steps == 0 and seen.oldest_overdue_s == 0.0
