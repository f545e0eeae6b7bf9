"""The engine's nudge sweep (`commands.sweep.sweep`) over 100,000 open leads, on SQLite.

100,000 open leads are generated inside SQLite: worked leads routed over the last ten days whose
next check is in the future, plus a reserve of claimed-but-untouched standard leads (2 h window)
routed 65 business minutes before NOW. Before each timed run a fresh group of DUE reserve leads
gets its next check set to its 50% nudge (60 minutes after routing), so the sweep really fires one
nudge per due lead (claim the step, queue the rep's DM in the outbox, append the event, move the
next check) in its own write transaction. The clock is fixed at NOW, a Tuesday 14:00 in New York
(business hours), on the example agreement, with Slack as the enabled platform.

Reported: median (and max) wall time of RUNS sweeps with DUE leads due, and of RUNS sweeps with
none due, with the median CPU time of this process next to it (a wall time well above the CPU time
means the sweep waited: for the disk, or for a core another job was using).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import col

from benchmarks.common import EXAMPLE_AGREEMENT, Row
from benchmarks.memory import OtherLoad
from commands.context import Context
from commands.sweep import SweepReport, sweep
from sla.agreement import load_agreement
from sla.clock import FixedClock
from storage.db import Database
from storage.tables import Lead

#: Tuesday 2026-11-24 14:00 in New York.
NOW = datetime(2026, 11, 24, 19, 0, tzinfo=UTC)
OPEN_LEADS = 100_000
DUE = 10
RUNS = 7
TARGET_MS = 20.0
STAMP = "%Y-%m-%d %H:%M:%S.%f"      # how SQLite stores UTC instants (naive text)


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime(STAMP)


def populate(db: Database, *, total: int, reserve: int, version: str) -> None:
    """`total` open leads; ids 1..reserve are the untouched reserve (next check 30 days away)."""
    routed = NOW - timedelta(minutes=65)                 # 12:55 New York, same business day
    values = {
        "v": version, "total": total - 1, "reserve": reserve, "now": _stamp(NOW),
        "routed": _stamp(routed), "claimed": _stamp(routed + timedelta(minutes=2)),
        "claim_due": _stamp(routed + timedelta(minutes=10)), "due": _stamp(routed + timedelta(hours=2)),
        "later": _stamp(NOW + timedelta(days=30)),
    }
    with db.write() as session:
        session.execute(sa.text(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < :total) "
            "INSERT INTO lead (id, agreement_version, name, company, payload, handed_off_at, workable, score, "
            "score_reasons, reasons, value, tier, state, is_open, version, team, owner, previous_owners, "
            "routed_at, owner_since, claim_due, first_touch_due, sla_due, claimed_at, first_touch_at, "
            "first_touch_met, attempts, calls, emails, connects, last_attempt_at, next_check_at, "
            "nudge_steps_done, cadence_reminded, cadence_warned, owner_seq) "
            "SELECT i + 1, :v, 'Lead ' || i, 'Company ' || i, '{}', "
            # the reserve: routed 65 minutes ago, claimed, untouched, next check far away
            "CASE WHEN i < :reserve THEN :routed ELSE strftime('%Y-%m-%d %H:%M:%f000', :now, "
            "  '-' || (1 + i % 14400) || ' minutes') END, "
            "1, 30, '[]', '[]', 900, 'standard', "
            "CASE WHEN i < :reserve THEN 'claimed' ELSE 'working' END, 1, 2, "
            "CASE WHEN i % 2 = 0 THEN 'smb' ELSE 'midmarket' END, "
            "CASE WHEN i < :reserve THEN 'ana' WHEN i % 2 = 0 THEN 'ben' ELSE 'eve' END, '[]', "
            "CASE WHEN i < :reserve THEN :routed ELSE strftime('%Y-%m-%d %H:%M:%f000', :now, "
            "  '-' || (1 + i % 14400) || ' minutes') END, "
            "CASE WHEN i < :reserve THEN :routed ELSE strftime('%Y-%m-%d %H:%M:%f000', :now, "
            "  '-' || (1 + i % 14400) || ' minutes') END, "
            "CASE WHEN i < :reserve THEN :claim_due END, "
            "CASE WHEN i < :reserve THEN :due ELSE strftime('%Y-%m-%d %H:%M:%f000', :now, "
            "  '-' || (1 + i % 14400) || ' minutes', '+2 hours') END, "
            "CASE WHEN i < :reserve THEN :due ELSE strftime('%Y-%m-%d %H:%M:%f000', :now, "
            "  '-' || (1 + i % 14400) || ' minutes', '+2 hours') END, "
            "CASE WHEN i < :reserve THEN :claimed ELSE strftime('%Y-%m-%d %H:%M:%f000', :now, "
            "  '-' || (i % 14400) || ' minutes') END, "
            "CASE WHEN i < :reserve THEN NULL ELSE strftime('%Y-%m-%d %H:%M:%f000', :now, "
            "  '-' || (i % 14400) || ' minutes') END, "
            "CASE WHEN i < :reserve THEN NULL ELSE 1 END, "
            "CASE WHEN i < :reserve THEN 0 ELSE 1 + i % 4 END, "
            "CASE WHEN i < :reserve THEN 0 ELSE 1 + i % 4 END, 0, 0, "
            "CASE WHEN i < :reserve THEN NULL ELSE strftime('%Y-%m-%d %H:%M:%f000', :now, "
            "  '-' || (i % 14400) || ' minutes') END, "
            "CASE WHEN i < :reserve THEN :later ELSE strftime('%Y-%m-%d %H:%M:%f000', :now, "
            "  '+' || (1 + i % 20000) || ' minutes') END, "
            "0, CASE WHEN i < :reserve THEN 0 ELSE 1 + i % 4 END, 0, 1 FROM n"), values)


def make_due(db: Database, ids: list[int]) -> None:
    """Bring these reserve leads' 50% nudge (60 minutes after routing) due now."""
    due = _stamp(NOW - timedelta(minutes=5))
    with db.write() as session:
        session.execute(sa.update(Lead).where(col(Lead.id).in_(ids)).values(next_check_at=sa.literal(due)))


def _timed(ctx: Context) -> tuple[float, float, SweepReport]:
    """(wall ms, CPU ms of this process, report) of one sweep."""
    started, cpu = time.perf_counter(), time.process_time()
    report = sweep(ctx, now=NOW)
    return (time.perf_counter() - started) * 1000, (time.process_time() - cpu) * 1000, report


def run(quick: bool = False) -> list[Row]:
    runs = 5 if quick else RUNS
    agreement = load_agreement(EXAMPLE_AGREEMENT)
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'sweep.db'}")
        db.upgrade()
        populate(db, total=OPEN_LEADS, reserve=DUE * (runs + 1), version=agreement.version)
        ctx = Context(db=db, agreement=agreement, clock=FixedClock(NOW), platforms=("slack",))
        with db.read() as session:
            open_leads = session.execute(sa.select(sa.func.count()).select_from(Lead)
                                         .where(col(Lead.is_open) == sa.true())).scalar_one()

        # Warm up (imports, statement caches, SQLite pages) with one group, not counted.
        make_due(db, list(range(1, DUE + 1)))
        sweep(ctx, now=NOW)
        _timed(ctx)

        load = OtherLoad()
        busy: list[float] = []
        busy_cpu: list[float] = []
        fired: list[SweepReport] = []
        for k in range(1, runs + 1):
            make_due(db, list(range(k * DUE + 1, (k + 1) * DUE + 1)))
            ms, cpu, report = _timed(ctx)
            busy.append(ms)
            busy_cpu.append(cpu)
            fired.append(report)
        idle_runs = [_timed(ctx) for _ in range(runs)]
        idle = [ms for ms, _, _ in idle_runs]
        idle_cpu = [cpu for _, cpu, _ in idle_runs]
        note = load.note()
        db.dispose()

    bad = [r for r in fired if r.due != DUE or r.nudges != DUE or r.errors]
    nudges = sum(r.nudges for r in fired)
    dms = sum(r.notifications for r in fired)
    p50, worst = statistics.median(busy), max(busy)
    i50, iworst = statistics.median(idle), max(idle)
    return [
        Row(f"sweep, {DUE} of {open_leads:,} open leads due",
            f"median {p50:.1f} ms (CPU {statistics.median(busy_cpu):.1f}), max {worst:.1f} ms over {runs} runs "
            f"({nudges} nudges, {dms} DMs queued" + (f"; {len(bad)} runs did not fire every due lead" if bad else "")
            + f"){note}",
            f"< {TARGET_MS:.0f} ms", p50 < TARGET_MS and not bad),
        Row(f"sweep, none of {open_leads:,} open leads due",
            f"median {i50:.2f} ms (CPU {statistics.median(idle_cpu):.2f}), max {iworst:.2f} ms{note}",
            f"< {TARGET_MS:.0f} ms", i50 < TARGET_MS),
    ]
