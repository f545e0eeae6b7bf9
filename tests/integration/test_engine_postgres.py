"""Two workers ticking one database at the same instants, many times over: each nudge, escalation,
claim timeout and digest happens exactly once (PostgreSQL: SKIP LOCKED + conditional UPDATEs +
unique keys; the same run on one SQLite file for comparison)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import col, select

from commands.context import Context
from commands.digest import queue_due_digests
from commands.sweep import SweepReport, sweep
from sla.agreement import Agreement
from sla.clock import FixedClock
from sla.lifecycle import Action
from storage.db import Database
from storage.tables import JobRun, LeadEvent, OutboxMessage
from tests.conftest import fresh_postgres, postgres_url
from tests.integration.test_engine import act, lead_in, local, route

#: Monday 2026-11-23, 08:25 to 10:05 New York time every 30 s: digests at 08:30 and 09:00, the
#: ladders of leads routed the Friday evening before, claim timeouts, reassignments.
INSTANTS = [local(2026, 11, 23, 8, 25) + timedelta(seconds=30 * i) for i in range(200)]
REPEATS = 2


@dataclass
class Outcome:
    outbox: list[str]
    kinds: Counter[str]
    digest_targets: list[str]
    events: Counter[str]
    digest_runs: int
    nudges: int = 0
    claim_timeouts: int = 0
    reassigned: int = 0
    digests: list[str] = field(default_factory=list)


def make_db(kind: str, directory: Path) -> Database:
    if kind == "sqlite":
        directory.mkdir()
        db = Database(f"sqlite:///{directory / 'race.db'}")
        db.upgrade()
        return db
    url = postgres_url()
    if not url:
        pytest.skip("no PostgreSQL: set SLABOT_TEST_POSTGRES_URL")
    return fresh_postgres(url)


def seed(ctx: Context, clock: FixedClock) -> None:
    """Twenty leads routed Friday 2026-11-20 from 17:50 EST over both teams: some claimed (their
    ladder runs to the reassigning step), some never claimed (claim timeouts), some touched
    (cadence), hot (15m) and standard (2h) tiers."""
    for i in range(20):
        at = local(2026, 11, 20, 17, 50) + timedelta(seconds=17 * i)
        lead = route(ctx, clock, at, lead_in(f"Race L{i}", hot=i % 3 != 2, employees=2400 if i % 4 == 0 else 60))
        assert lead.id is not None and lead.owner is not None
        if i % 5 in (1, 2):
            act(ctx, clock, at + timedelta(minutes=1), lead.id, Action.CLAIM, lead.owner)
        elif i % 5 == 3:
            act(ctx, clock, at + timedelta(minutes=1), lead.id, Action.LOG_CALL, lead.owner)


def run_workers(contexts: list[Context]) -> tuple[list[SweepReport], list[str], list[BaseException]]:
    """Every context ticks every instant REPEATS times, all contexts at once (a barrier per round)."""
    reports: list[SweepReport] = []
    queued: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(contexts))

    def work(ctx: Context) -> None:
        try:
            for at in INSTANTS:
                for _ in range(REPEATS):
                    barrier.wait(timeout=60)
                    report = sweep(ctx, now=at)
                    keys = queue_due_digests(ctx, now=at)
                    with lock:
                        reports.append(report)
                        queued.extend(keys)
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread
            barrier.abort()
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=work, args=(c,)) for c in contexts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    return reports, queued, errors


def outcome(db: Database, reports: list[SweepReport], queued: list[str]) -> Outcome:
    with db.read() as session:
        rows = session.execute(select(OutboxMessage).order_by(col(OutboxMessage.id))).scalars().all()
        events = session.execute(select(LeadEvent.type)).scalars().all()
        runs = session.execute(select(JobRun).where(col(JobRun.job) == "digest")).scalars().all()
    assert all(not r.errors for r in reports), [r.errors for r in reports if r.errors]
    return Outcome(outbox=sorted(r.dedupe_key for r in rows),
                   kinds=Counter(r.kind for r in rows),
                   digest_targets=sorted(r.target for r in rows if r.kind == "digest"),
                   events=Counter(events),
                   digest_runs=len(runs), nudges=sum(r.nudges for r in reports),
                   claim_timeouts=sum(r.claim_timeouts for r in reports),
                   reassigned=sum(r.reassigned for r in reports), digests=sorted(queued))


def scenario(kind: str, tmp_path: Path, agreement: Agreement, workers: int) -> Outcome:
    seed_db = make_db(kind, tmp_path / f"workers-{workers}")
    clock = FixedClock(INSTANTS[0])
    seed(Context(db=seed_db, agreement=agreement, clock=clock, platforms=("console",)), clock)
    dbs = [Database(seed_db.url) for _ in range(workers)]
    try:
        contexts = [Context(db=d, agreement=agreement, clock=FixedClock(INSTANTS[0]), platforms=("console",))
                    for d in dbs]
        reports, queued, errors = run_workers(contexts)
        assert errors == []
        return outcome(seed_db, reports, queued)
    finally:
        for d in dbs:
            d.dispose()
        seed_db.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def kind(request: pytest.FixtureRequest) -> Iterator[str]:
    yield str(request.param)


def test_two_workers_send_each_nudge_and_digest_exactly_once(kind: str, tmp_path: Path,
                                                             agreement: Agreement) -> None:
    alone = scenario(kind, tmp_path, agreement, workers=1)
    # The scenario really exercises the ladder, escalations, claim timeouts and both digests.
    assert alone.events["nudge"] >= 20 and alone.events["claim_timeout"] >= 5
    assert alone.reassigned >= 5 and alone.digest_runs == 4 and len(alone.digests) == 4

    together = scenario(kind, tmp_path, agreement, workers=2)
    assert together.outbox == alone.outbox                  # the same messages, none twice
    # Which rep a reassignment picks may differ with the interleaving (round robin); how many
    # messages of each kind go out may not.
    assert together.kinds == alone.kinds and together.digest_targets == alone.digest_targets
    assert together.events == alone.events                  # no step recorded twice either
    assert together.digest_runs == 4 and together.digests == alone.digests
    assert (together.nudges, together.claim_timeouts, together.reassigned) == (
        alone.nudges, alone.claim_timeouts, alone.reassigned)
