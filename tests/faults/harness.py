"""The fault-injection harness: slabot's real processes (`slabot serve`, `slabot worker`) against the
fake Slack Web API over real HTTP on 127.0.0.1, on a real SQLite file or PostgreSQL.

The fake runs in the test process (tests/fakes/slack_api.py), so the tests read what reached
"Slack" directly: every accepted post (with the outbox id and lead id slabot puts in its message
metadata), every 429 the fake's per-channel limit answered, duplicates. The agreement is built
here: open around the clock in UTC (so nothing depends on the time of day the suite runs), one
team and one Slack channel per lane wanted.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
import yaml
from sqlmodel import col, select

from commands.context import Context
from commands.intake import Handoff, handoff_many
from sla.agreement import Agreement, load_agreement
from sla.clock import FixedClock, SystemClock
from sla.lead import LeadIn
from storage.db import Database
from storage.tables import Lead, OutboxMessage
from tests.conftest import EXAMPLE_AGREEMENT, EXAMPLE_LEAD, free_port
from tests.fakes.slack_api import FakeSlack, SlackMessage

ROOT = Path(__file__).resolve().parents[2]
INTAKE_TOKEN = "fault-suite-intake-token-0123456789abcdef"
SIGNING_SECRET = "fault-suite-signing-secret"
BOT_TOKEN = "xoxb-fault-suite"


def channel_id(i: int) -> str:
    return f"C0LANE{i:04d}"


def rep_id(i: int) -> str:
    return f"U0REP{i:05d}"


def write_agreement(path: Path, lanes: int) -> Agreement:
    """The example agreement, open 24/7 in UTC, with `lanes` teams: team i owns channel_id(i) and
    gets the leads with 1000 + 100 * i employees (lead_body(team=i))."""
    data = yaml.safe_load(EXAMPLE_AGREEMENT.read_text())
    data["timezone"] = "UTC"
    data["business_hours"] = {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                              "start": "00:00", "end": "23:59", "holidays": []}
    data["teams"] = [{
        "key": f"t{i}", "name": f"Team {i}", "channel": {"slack": channel_id(i)},
        "manager": {"name": f"Manager {i}", "email": f"manager{i}@acme.example", "slack": f"U0MGR{i:05d}"},
        "reps": [{"key": f"r{i}", "name": f"Rep {i}", "email": f"rep{i}@acme.example", "slack": rep_id(i),
                  "capacity_per_week": 100000}],
    } for i in range(lanes)]
    data["routing"]["rules"] = [{"when": {"employees_at_least": 1000 + 100 * i}, "team": f"t{i}"}
                                for i in range(lanes - 1, 0, -1)] + [{"team": "t0"}]
    data["digests"] = []
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_agreement(path)


def lead_body(n: int, *, team: int, hot: bool = True) -> dict[str, Any]:
    """A workable lead for team `team`: hot (first touch within 15m) or standard (2h)."""
    body: dict[str, Any] = json.loads(EXAMPLE_LEAD.read_text())
    body.pop("received_at", None)
    body.update(external_id=f"fault-{n}", email=f"lead{n}@globex.example", employees=1000 + 100 * team + 50)
    if not hot:
        body.update(activities=[{"type": "demo_requested"}], page_visits=1)
    return body


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def kill(self, sig: signal.Signals) -> int | None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        try:
            return self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait(timeout=10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@dataclass
class Stack:
    """One deployment under test: the fake Slack, a database, an agreement, and slabot processes."""

    tmp: Path
    fake: FakeSlack
    db_url: str
    lanes: int
    agreement: Agreement = field(init=False)
    db: Database = field(init=False)
    procs: list[Proc] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.agreement_path = self.tmp / "agreement.yaml"
        self.agreement = write_agreement(self.agreement_path, self.lanes)
        self.db = Database(self.db_url)
        self.db.upgrade()

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "TEAMS_", "SLABOT_", "HUBSPOT_"))}
        env.update(DATABASE_URL=self.db_url, SLABOT_AGREEMENT=str(self.agreement_path),
                   SLABOT_INTAKE_TOKEN=INTAKE_TOKEN, SLACK_BOT_TOKEN=BOT_TOKEN,
                   SLACK_SIGNING_SECRET=SIGNING_SECRET, SLACK_API_URL=self.fake.base_url,
                   PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        return env

    def start(self, name: str, *args: str) -> Proc:
        log = self.tmp / f"{name}-{len(self.procs)}.log"
        handle = log.open("wb")
        popen = subprocess.Popen([sys.executable, "-m", "bot.cli", *args], cwd=ROOT, env=self.env,
                                 stdout=handle, stderr=subprocess.STDOUT)
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def worker(self) -> Proc:
        return self.start("worker", "worker")

    def web(self) -> tuple[Proc, str]:
        port = free_port()
        proc = self.start("web", "serve", "--no-scheduler", "--port", str(port))
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _ready(url) or _died(proc), 60, "the web process to answer /healthz")
        assert proc.popen.poll() is None, proc.output()
        return proc, url

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.popen.poll() is None:
                proc.kill(signal.SIGKILL)
        self.db.dispose()

    # --- the database, as the test sees it ------------------------------------------------

    def context(self, clock: Any = None) -> Context:
        return Context(db=self.db, agreement=self.agreement, clock=clock or SystemClock(), platforms=("slack",))

    def queue_leads(self, bodies: list[dict[str, Any]], *, at: datetime | None = None) -> list[int]:
        """Hand leads off in the test process (the same code path as `slabot import`), routed at `at`."""
        ctx = self.context(FixedClock(at) if at else None)
        ids: list[int] = []
        for start in range(0, len(bodies), 200):
            batch = [Handoff(LeadIn.model_validate(b), actor="import") for b in bodies[start:start + 200]]
            ids += [r.lead.id for r in handoff_many(ctx, batch) if r.lead.id is not None]
        return ids

    def outbox(self, **where: Any) -> list[OutboxMessage]:
        with self.db.read() as session:
            query = select(OutboxMessage)
            for name, value in where.items():
                query = query.where(getattr(OutboxMessage, name) == value)
            return list(session.execute(query.order_by(col(OutboxMessage.id))).scalars())

    def lead(self, lead_id: int) -> Lead:
        with self.db.read() as session:
            found = session.get(Lead, lead_id)
            assert found is not None
            return found

    def outbox_status_counts(self) -> dict[str, int]:
        with self.db.read() as session:
            rows = session.execute(select(OutboxMessage.status, sa.func.count())
                                   .group_by(col(OutboxMessage.status))).all()
        return {str(s): int(n) for s, n in rows}


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _died(proc: Proc) -> bool:
    return proc.popen.poll() is not None


def wait_for(predicate: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll for an explicit condition; fail with `what` when it does not hold in time."""
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")
        time.sleep(0.1)


def card_posts(fake: FakeSlack) -> dict[int, list[SlackMessage]]:
    """Accepted card posts by lead id (from the message metadata slabot attaches)."""
    by_lead: dict[int, list[SlackMessage]] = {}
    for message in fake.posts():
        payload = message.event_payload
        if "lead_id" in payload:
            by_lead.setdefault(int(payload["lead_id"]), []).append(message)
    return by_lead


def post_times(fake: FakeSlack) -> dict[int, float]:
    """Monotonic time (the fake's clock, the test process's) each lead's first card was accepted."""
    times: dict[int, float] = {}
    for call in fake.calls_to("chat.postMessage"):
        if call.status != 200 or call.error:
            continue
        metadata = call.params.get("metadata") or {}
        lead_id = (metadata.get("event_payload") or {}).get("lead_id") if isinstance(metadata, dict) else None
        if lead_id is not None:
            times.setdefault(int(lead_id), call.at)
    return times


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


class LoadGenerator:
    """Posts leads to the web process at a steady rate from a thread; keeps only what was
    acknowledged (201) with the time of the acknowledgement."""

    def __init__(self, url: str, lanes: int, per_second: float, start: int = 0) -> None:
        self.url, self.lanes, self.interval = url, lanes, 1.0 / per_second
        self.next = start
        self.acked: dict[int, float] = {}
        self.refused = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LoadGenerator:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def burst(self, count: int) -> None:
        """Post `count` leads at once (round-robin over the channels), from the calling thread."""
        headers = {"Authorization": f"Bearer {INTAKE_TOKEN}"}
        with httpx.Client(base_url=self.url, timeout=10, headers=headers) as client:
            for _ in range(count):
                with self._lock:
                    n = self.next
                    self.next += 1
                response = client.post("/api/v1/leads", json=lead_body(n, team=n % self.lanes))
                assert response.status_code == 201, response.text
                self.acked[int(response.json()["id"])] = time.monotonic()

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {INTAKE_TOKEN}"}
        with httpx.Client(base_url=self.url, timeout=10, headers=headers) as client:
            due = time.monotonic()
            while not self._stop.is_set():
                with self._lock:
                    n = self.next
                    self.next += 1
                try:
                    response = client.post("/api/v1/leads", json=lead_body(n, team=n % self.lanes))
                    if response.status_code == 201:
                        self.acked[int(response.json()["id"])] = time.monotonic()
                    else:
                        self.refused += 1
                except httpx.HTTPError:
                    self.refused += 1
                due += self.interval
                self._stop.wait(max(0.0, due - time.monotonic()))


def iter_gaps(fake: FakeSlack) -> Iterator[float]:
    """Seconds between consecutive accepted posts in each channel."""
    by_channel: dict[str, list[float]] = {}
    for call in fake.calls_to("chat.postMessage"):
        if call.status == 200 and not call.error:
            by_channel.setdefault(str(call.params.get("channel")), []).append(call.at)
    for times in by_channel.values():
        yield from (b - a for a, b in itertools.pairwise(times))


def nudge_due(lead: Lead, fraction: float = 0.5, window: timedelta = timedelta(minutes=15)) -> datetime:
    """When the ladder's first step comes due for a hot lead, on the 24/7 calendar of this harness."""
    assert lead.routed_at is not None
    return lead.routed_at + window * fraction
