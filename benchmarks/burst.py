"""A burst of 2,000 lead cards to 100 Slack channels against a fake enforcing 1 post/s/channel.

An agreement with CHANNELS teams (team t{i} in its own channel, one or two reps each, a routing
rule `campaign: t{i}` per team) gets LEADS handoffs straight into SQLite through
`commands.intake.handoff` with Slack enabled (untimed), which queues one card per lead in the
outbox. Then the real `OutboxWorker` delivers them through the real `SlackTransport` (built by
`create_app`), with Slack's Web API pointed at a FakeSlack with `rate_limit_per_channel = 1.0`:
a second post within a second in one channel is answered 429 + Retry-After: 1. The worker runs in
a fresh process (`python -m benchmarks.burst --deliver`), as it does in production, and the fake
in another (`--fake-slack`), so neither the fake's request handling nor this process's earlier
benchmarks share the worker's CPU, GIL or heap.

Two runs on copies of the same queued database: the fake's rate limit alone, and the same plus
429s (Retry-After: 1) injected with `fail_next` at three moments of the burst.

Timed: from the worker's first claim until the outbox is empty. The bound is the rate limit:
LEADS / CHANNELS posts per channel take (LEADS / CHANNELS - 1) s at best. A channel whose posts
were answered k injected 429s cannot finish before (posts - 1 + k) s (each 429 obliges it to wait
its Retry-After), so the injected run is also compared with that larger bound. Checked: no lead
lost (each has a MessageRef, each channel holds exactly its leads' posts), no duplicate post
(`duplicate_posts` of the fake, which spots a second post carrying the same outbox id), nothing
parked as dead.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import anyio
import sqlalchemy as sa
import yaml
from sqlmodel import col

from benchmarks.common import EXAMPLE_AGREEMENT, EXAMPLE_LEAD, ROOT, Row
from benchmarks.memory import OtherLoad
from bot.http.app import create_app
from bot.services import build_services
from bot.settings import Settings
from bot.worker.delivery import DeliveryReport, OutboxWorker
from commands.intake import handoff
from sla.agreement import Agreement, parse_agreement
from sla.lead import LeadIn
from storage.db import Database
from storage.outbox import pending_count
from storage.tables import MessageRef, OutboxMessage
from tests.fakes.slack_api import FakeSlack

RATE = 1.0
#: (seconds after the start, how many consecutive chat.postMessage calls answer 429 Retry-After: 1)
INJECTED_429 = ((2.0, 3), (7.0, 3), (12.0, 3))
POST = "chat.postMessage"


def channel_of(i: int) -> str:
    return f"C0BURST{i:03d}"


def burst_agreement(channels: int) -> Agreement:
    """The example agreement with `channels` teams, each routed by `campaign: t{i}`."""
    data: dict[str, Any] = yaml.safe_load(EXAMPLE_AGREEMENT.read_text())
    teams = []
    for i in range(channels):
        reps = [{"key": f"r{i}{s}", "name": f"Rep {i}{s}", "slack": f"U0R{i:03d}{s.upper()}0",
                 "capacity_per_week": 1000} for s in ("a", "b")[: 1 + i % 2]]
        teams.append({"key": f"t{i}", "name": f"Team {i}", "channel": {"slack": channel_of(i)},
                      "manager": {"name": f"Manager {i}", "slack": f"U0M{i:03d}000"}, "reps": reps})
    data["teams"] = teams
    data["routing"]["rules"] = [{"when": {"campaign": f"t{i}"}, "team": f"t{i}"} for i in range(channels)]
    data["routing"]["rules"].append({"team": "t0"})
    return parse_agreement(yaml.safe_dump(data, sort_keys=False), "burst-agreement.yaml")


# --- the fake Slack, in its own process -----------------------------------------------------------


def _fake_main(rate: float) -> None:
    """`python -m benchmarks.burst --fake-slack RATE`: serve a FakeSlack; commands on stdin."""
    with FakeSlack() as fake:
        fake.rate_limit_per_channel = rate
        print(fake.base_url, flush=True)
        for line in sys.stdin:
            command, _, arg = line.strip().partition(" ")
            if command == "fail":
                fake.fail_next(POST, status=429, retry_after=1, times=int(arg))
            elif command == "stats":
                limited = Counter(str(c.params.get("channel")) for c in fake.rejected)
                answered = Counter(str(c.params.get("channel")) for c in fake.calls_to(POST) if c.status == 429)
                injected = {ch: n - limited.get(ch, 0) for ch, n in answered.items()}
                print(json.dumps({**fake.stats(), "injected_per_channel": injected}), flush=True)
            elif command == "stop":
                return


class RemoteFake:
    """The FakeSlack in a child process (`_fake_main`), driven over its stdin and stdout."""

    def __init__(self, rate: float) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.burst", "--fake-slack", str(rate)], cwd=ROOT,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        assert self._process.stdin is not None and self._process.stdout is not None
        self._in, self._out = self._process.stdin, self._process.stdout
        self.base_url = self._out.readline().strip()
        if not self.base_url:
            raise RuntimeError("the fake Slack did not start")

    def fail_next(self, times: int) -> None:
        self._in.write(f"fail {times}\n")

    def stats(self) -> dict[str, Any]:
        self._in.write("stats\n")
        stats: dict[str, Any] = json.loads(self._out.readline())
        return stats

    def close(self) -> None:
        try:
            self._in.write("stop\n")
            self._in.close()
            self._process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self._process.kill()
            self._process.wait()


# --- one delivery run -----------------------------------------------------------------------------


@dataclass
class Outcome:
    elapsed: float
    retried: int
    stats: dict[str, Any]
    refs: int
    dead: int
    cpu: float           # CPU seconds the worker's process used while delivering
    note: str = ""       # other processes' load meanwhile, if any


async def _deliver(worker: OutboxWorker, fake: RemoteFake, db: Database,
                   injections: tuple[tuple[float, int], ...]) -> tuple[float, DeliveryReport]:
    async def inject() -> None:
        started = time.perf_counter()
        for at, times in injections:
            await asyncio.sleep(max(0.0, started + at - time.perf_counter()))
            fake.fail_next(times)

    def pending() -> int:
        with db.read() as session:
            return pending_count(session)

    injector = asyncio.create_task(inject())
    report = DeliveryReport()
    started = time.perf_counter()
    while True:
        report.add(await worker.deliver_due())
        if await anyio.to_thread.run_sync(pending) == 0:
            break
        await asyncio.sleep(0.05)      # only rows parked for later would get here
    elapsed = time.perf_counter() - started
    injector.cancel()
    return elapsed, report


def _deliver_main(path: Path, channels: int, inject: bool) -> None:
    """`python -m benchmarks.burst --deliver DB CHANNELS 0|1`: deliver the queued outbox of DB with
    a fresh worker process (as in production: not the load generator's process), print the Outcome."""
    agreement = burst_agreement(channels)
    fake = RemoteFake(RATE)
    try:
        db = Database(f"sqlite:///{path}")
        settings = Settings(_env_file=None, database_url=db.url,
                            slack_bot_token="xoxb-bench", slack_signing_secret="bench-secret",
                            slack_api_url=fake.base_url)
        services = build_services(settings, agreement=agreement, db=db)
        create_app(services)             # wires services.transports["slack"] (the real SlackTransport)
        worker = services.make_worker()
        cpu = time.process_time()
        elapsed, report = asyncio.run(_deliver(worker, fake, db, INJECTED_429 if inject else ()))
        cpu = time.process_time() - cpu
        stats = fake.stats()
        with db.read() as session:
            refs = session.execute(sa.select(sa.func.count()).select_from(MessageRef)).scalar_one()
            dead = session.execute(sa.select(sa.func.count()).select_from(OutboxMessage)
                                   .where(col(OutboxMessage.status) == "dead")).scalar_one()
        db.dispose()
    finally:
        fake.close()
    print(json.dumps(asdict(Outcome(elapsed, report.retried, stats, refs, dead, cpu))), flush=True)


def deliver_once(queued: Path, workdir: Path, channels: int, inject: bool) -> Outcome:
    """Deliver a copy of the queued database in a child process (`_deliver_main`)."""
    path = workdir / f"run-{len(list(workdir.iterdir()))}.db"
    shutil.copyfile(queued, path)
    load = OtherLoad()
    child = subprocess.run([sys.executable, "-m", "benchmarks.burst", "--deliver", str(path), str(channels),
                            "1" if inject else "0"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    if child.returncode != 0:
        raise RuntimeError(f"burst delivery failed: {child.stderr[-2000:]}")
    outcome = Outcome(**json.loads(child.stdout.strip().splitlines()[-1]))
    outcome.note = load.note()
    return outcome


def queue_burst(path: Path, agreement: Agreement, leads: int, channels: int) -> int:
    """Hand off `leads` leads (Slack enabled) into a fresh database; returns the cards queued."""
    template: dict[str, Any] = json.loads(EXAMPLE_LEAD.read_text())
    db = Database(f"sqlite:///{path}")
    db.upgrade()
    settings = Settings(_env_file=None, database_url=db.url,
                        slack_bot_token="xoxb-bench", slack_signing_secret="bench-secret")
    ctx = build_services(settings, agreement=agreement, db=db).ctx
    assert ctx.platforms == ("slack",)
    for n in range(leads):
        lead = LeadIn.model_validate({**template, "external_id": f"burst-{n}", "campaign": f"t{n % channels}"})
        result = handoff(ctx, lead)
        assert result.lead.team == f"t{n % channels}", result.lead.routing_reason
    with db.read() as session:
        queued = int(session.execute(sa.select(sa.func.count()).select_from(OutboxMessage)
                                     .where(col(OutboxMessage.status) == "pending")).scalar_one())
    db.dispose()       # the last connection checkpoints the WAL into the file we copy
    return queued


def _row(name: str, outcome: Outcome, *, leads: int, channels: int, queued: int, injected: int) -> Row:
    per_channel = leads // channels
    bound = (per_channel - 1) / RATE
    stats = outcome.stats
    posted: dict[str, int] = stats["per_channel"]
    missing = sum(max(0, per_channel - posted.get(channel_of(i), 0)) for i in range(channels))
    lost = max(leads - outcome.refs, missing)
    duplicates = max(int(stats["duplicate_posts"]), int(stats["accepted_posts"]) - leads)
    extra = max(stats["injected_per_channel"].values(), default=0)
    judged = bound + extra / RATE
    over = outcome.elapsed / judged - 1
    clean = lost == 0 and duplicates == 0 and outcome.dead == 0 and queued == leads
    text = f"{outcome.elapsed:.1f} s vs bound {bound:.0f} s ({outcome.elapsed / bound - 1:+.1%})"
    if injected:
        text += (f", vs {judged:.0f} s counting the Retry-After of the injected 429s (up to {extra} on one "
                 f"channel): {over:+.1%}")
    text += (f"; {stats['accepted_posts']} posted, {lost} lost, {duplicates} duplicates, {outcome.dead} dead; "
             f"429s: {injected} injected, {stats['rate_limited']} from pacing; worker CPU "
             f"{outcome.cpu / max(1, stats['accepted_posts']) * 1000:.1f} ms/post{outcome.note}")
    return Row(name, text, "<= bound + 10%, 0 lost, 0 duplicates", over <= 0.10 and clean)


def run(quick: bool = False) -> list[Row]:
    leads, channels = (400, 20) if quick else (2000, 100)
    agreement = burst_agreement(channels)
    injected = sum(times for _, times in INJECTED_429)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        queued_db = Path(tmp) / "queued.db"
        queued = queue_burst(queued_db, agreement, leads, channels)
        runs = Path(tmp) / "runs"
        runs.mkdir()
        label = f"burst: {leads:,} cards to {channels} channels at {RATE:g} post/s/channel"
        if not quick:
            outcome = deliver_once(queued_db, runs, channels, inject=False)
            rows.append(_row(label, outcome, leads=leads, channels=channels, queued=queued, injected=0))
        outcome = deliver_once(queued_db, runs, channels, inject=True)
        rows.append(_row(f"{label}, + {injected} injected 429s", outcome, leads=leads, channels=channels,
                         queued=queued, injected=injected))
    return rows


if __name__ == "__main__":
    if sys.argv[1:2] == ["--fake-slack"]:
        _fake_main(float(sys.argv[2]))
    elif sys.argv[1:2] == ["--deliver"]:
        _deliver_main(Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1")
