"""The outbox worker: delivers queued cards and messages to chat, paced per channel, retried
with backoff, never twice.

How "never twice" holds when a worker dies between a post and its bookkeeping: every post carries
the outbox row id (Slack message metadata). A claim is a short lease (storage.outbox.LEASE) that
the worker renews while it holds the row; a row found still `sending` under a lapsed lease was
claimed by a dead worker. Before posting it again, the transport is asked whether a message with
that id is already in the channel, and if so its reference is stored instead of posting.

Pacing: one pacer per lane (channel or person) in a process, and one process per lane at a time
(the lane lease in the database), so neither a tick running beside the delivery loop nor a second
worker doubles the platform's per-channel rate.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import anyio

from bot.presentation.cards import Card
from bot.presentation.presenters import lead_card
from commands.context import Context
from storage.outbox import (
    LEASE,
    claim_batch,
    get_message_ref,
    mark_done,
    release,
    renew,
    retry_later,
    save_message_ref,
    supersede_older_cards,
)
from storage.tables import Lead, OutboxMessage

log = logging.getLogger("slabot.delivery")

#: After this many failed attempts a row is parked as `dead` (kept, counted, never dropped).
MAX_ATTEMPTS = 15
PERMANENT_ATTEMPTS = 3
#: A rate limit longer than this releases the row instead of holding the lane.
MAX_INLINE_WAIT = 30.0


class TransportError(Exception):
    """A send failed. `retry_after` comes from the platform (429); `permanent` means retrying
    cannot help (unknown channel, revoked token)."""

    def __init__(self, message: str, *, retry_after: float | None = None, permanent: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.permanent = permanent


@dataclass(frozen=True)
class Posted:
    channel: str
    message_id: str


class Transport(Protocol):
    """One chat platform as the worker sees it. Implementations: bot.slack, bot.teams, console."""

    platform: str

    def min_interval(self, kind: str) -> float:
        """Seconds between two sends to the same channel or conversation."""
        ...

    async def post_card(self, channel: str, card: Card, *, outbox_id: int) -> Posted: ...

    async def update_card(self, ref: Posted, card: Card) -> None: ...

    async def find_posted(self, channel: str, *, outbox_id: int, since: datetime) -> Posted | None:
        """A message this outbox row already posted, if the platform can tell (else None)."""
        ...

    async def send_message(self, kind: str, target: str, payload: dict[str, Any], *,
                           outbox_id: int) -> Posted | None: ...


@dataclass
class DeliveryReport:
    sent: int = 0
    updated: int = 0
    retried: int = 0
    dead: int = 0
    recovered: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: DeliveryReport) -> None:
        self.sent += other.sent
        self.updated += other.updated
        self.retried += other.retried
        self.dead += other.dead
        self.recovered += other.recovered
        self.errors += other.errors


def backoff(attempts: int, rng: random.Random) -> float:
    """Exponential backoff with full jitter around the nominal delay, capped at 5 minutes."""
    nominal = min(300.0, 2.0 ** min(attempts, 9))
    return nominal * rng.uniform(0.5, 1.5)


#: A claim takes about this many seconds of sending per lane: what the lane sends soon, never a
#: backlog to sit on (a worker that dies holds back at most this much, for one lease).
CLAIM_AHEAD_S = 5.0
#: Most rows one lane claims at once, whatever the platform's pace.
MAX_PER_LANE = 50
#: A lane with more rows than this waiting in this process is not claimed for again yet.
REFILL_BELOW = 2
#: A row is not sent when its lease was last renewed longer ago than this: another worker may have
#: taken it by now (the lease is LEASE; renewals run every LEASE / 3).
SAFE_LEASE_S = LEASE.total_seconds() - 4.0
#: The delivery loop claims at most this often (a claim is one short write transaction).
MIN_CLAIM_INTERVAL_S = 0.25
#: How long a stopping worker lets the sends in flight finish before it exits.
STOP_GRACE_S = 10.0


@dataclass
class _Job:
    row: OutboxMessage
    fixed_now: datetime | None
    report: DeliveryReport
    done: asyncio.Future[None]
    claimed: float


@dataclass
class _Lane:
    key: tuple[str, str]
    queue: deque[_Job] = field(default_factory=deque)
    current: _Job | None = None
    task: asyncio.Task[None] | None = None
    #: Monotonic time before which the next send may not start (pacing, 429s).
    ready_at: float = 0.0


async def close_transports(transports: Iterable[Transport]) -> None:
    """Close what a transport keeps open between sends (Slack's kept-alive connections): a stopping
    worker, or a one-shot command (`slabot tick`, `digest --send`) when it is done."""
    for transport in transports:
        close = getattr(transport, "aclose", None)
        if close is not None:
            try:
                await close()
            except Exception:
                log.exception("could not close the %s transport's connections", transport.platform)


class OutboxWorker:
    """Delivers the outbox: one lane per channel or person, one pacer per lane in this process.

    A single claimer (the loop of `run_forever`, or `deliver_due` for a tick) takes a few seconds'
    worth of rows per lane from the database and hands them to the lane's pacer; the pacer sends
    them one after the other at the platform's pace. Claims are leases renewed while this worker
    holds the rows (`storage.outbox.renew`) and given back when it stops (`stop`).
    """

    def __init__(self, ctx: Context, transports: dict[str, Transport], *, worker_id: str | None = None,
                 rng: random.Random | None = None, sleep: Any = asyncio.sleep,
                 on_outcome: Callable[[str, str], None] | None = None) -> None:
        self.ctx = ctx
        self.transports = transports
        self.worker_id = worker_id or f"w-{uuid.uuid4().hex[:10]}"
        self.rng = rng or random.Random()
        self._sleep = sleep
        self._on_outcome = on_outcome
        self._lanes: dict[tuple[str, str], _Lane] = {}
        #: When the platform last answered on a lane: pacing counts from there, not from the end of
        #: the bookkeeping after it (two write transactions, ~80 ms under a burst).
        self._answered: dict[tuple[str, str], float] = {}
        self._wake = asyncio.Event()
        self._refill = asyncio.Event()
        self._claiming: asyncio.Lock | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._renewed: float = 0.0
        self._background = DeliveryReport()
        self.running = False
        self.stopping = False

    def wake(self) -> None:
        """Called after a click or a handoff so the card goes out now, not at the next poll."""
        self._wake.set()

    # --- the loop ---------------------------------------------------------------------------

    async def run_forever(self, poll_seconds: float = 1.0) -> None:
        """Claim and deliver until `stop()`. Every lane paces itself; this loop only keeps lanes fed."""
        self.running = True
        loop = asyncio.get_running_loop()
        try:
            while not self.stopping:
                claimed_at = loop.time()
                try:
                    await self._claim_into_lanes(self.ctx.now(), None, self._background)
                except Exception:
                    log.exception("outbox claim failed; retrying at the next poll")
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=poll_seconds)
                except TimeoutError:
                    pass
                # Lanes running low wake this loop often under a backlog: a few claims a second at most.
                await asyncio.sleep(max(0.0, claimed_at + MIN_CLAIM_INTERVAL_S - loop.time()))
                self._wake.clear()
        finally:
            self.running = False

    async def stop(self, grace: float = STOP_GRACE_S) -> int:
        """Stop claiming; give back at once every claimed row not yet being sent (SIGTERM: another
        worker or the restarted one sends them without waiting for a lease to lapse); let the
        sends in flight finish for up to `grace` seconds; give back the lanes. Returns rows given
        back."""
        self.stopping = True
        self._wake.set()
        unstarted: list[_Job] = []
        for lane in self._lanes.values():
            unstarted.extend(lane.queue)
            lane.queue.clear()
        released = 0
        try:
            # Rows first; the lanes only once the sends in flight are done, so another worker
            # cannot post in a channel right after this one did.
            released = await anyio.to_thread.run_sync(self._release, [j.row.id for j in unstarted], self._no_lanes)
        except Exception:
            log.exception("could not give back %s claimed outbox rows; they go out after the lease", len(unstarted))
        for job in unstarted:
            _resolve(job)
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None and not lane.task.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=grace)
        try:
            await anyio.to_thread.run_sync(self._release, [], None)
        except Exception:
            log.exception("could not give back the outbox lanes; they lapse after the lease")
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        await close_transports(self.transports.values())
        log.info("outbox worker %s stopped: %s claimed row(s) given back", self.worker_id, released)
        return released

    async def deliver_due(self, now: datetime | None = None, *, budget: float | None = None) -> DeliveryReport:
        """Deliver everything due (as of `now`, or the clock), lanes in parallel, each at its pace,
        nudges before cards; return what was done. `budget`: stop claiming after this many seconds
        and give back what was claimed but not started (a scheduled tick never runs for minutes).

        With `now` given (a replayed `slabot tick --now`) each row is tried at most once: what this
        pass re-queues for later is not due at `now`."""
        report = DeliveryReport()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget if budget is not None else None
        waiting: set[asyncio.Future[None]] = set()
        seen: set[int] = set()
        mine: list[_Job] = []
        while not self.stopping:
            out_of_time = deadline is not None and loop.time() >= deadline
            if out_of_time:
                await self._give_back([job for job in mine if not job.done.done()])
            else:
                self._refill.clear()
                jobs = await self._claim_into_lanes(now or self.ctx.now(), now, report,
                                                    exclude=seen if now is not None else None)
                seen.update(job.row.id for job in jobs if job.row.id is not None)
                mine.extend(jobs)
                waiting.update(job.done for job in jobs)
            for job in mine:
                if job.done.done() and job.done.exception() is not None:
                    raise job.done.exception()  # type: ignore[misc]
            waiting = {f for f in waiting if not f.done()}
            if not waiting:
                break
            if out_of_time:
                await asyncio.wait(waiting)
                break
            # Claim again when a lane runs low (or every second), or stop when everything is done.
            everything = asyncio.ensure_future(asyncio.wait(waiting))
            refill = asyncio.ensure_future(self._refill.wait())
            await asyncio.wait({everything, refill}, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
            for task in (everything, refill):
                task.cancel()
        if not self.running and not self.stopping and not any(self._busy(lane) for lane in self._lanes.values()):
            # No loop keeps these lanes: free them, so a worker elsewhere need not wait for the lease.
            if self._heartbeat is not None:
                self._heartbeat.cancel()
            await anyio.to_thread.run_sync(self._release, [], None)
        return report

    # --- claiming ---------------------------------------------------------------------------

    def _per_lane(self) -> dict[str, int]:
        caps: dict[str, int] = {}
        for name, transport in self.transports.items():
            interval = transport.min_interval("card")
            ahead = MAX_PER_LANE if interval <= 0 else math.ceil(CLAIM_AHEAD_S / interval)
            caps[name] = max(1, min(MAX_PER_LANE, ahead))
        return caps

    async def _claim_into_lanes(self, at: datetime, fixed_now: datetime | None, report: DeliveryReport, *,
                                exclude: set[int] | None = None) -> list[_Job]:
        if self._claiming is None:
            self._claiming = asyncio.Lock()
        async with self._claiming:
            if self.stopping:
                return []
            full = [key for key, lane in self._lanes.items() if len(lane.queue) >= REFILL_BELOW]
            rows = await anyio.to_thread.run_sync(self._claim, at, full)
            loop = asyncio.get_running_loop()
            if rows:
                self._renewed = loop.time()
            jobs: list[_Job] = []
            for row in rows:
                if exclude is not None and row.id in exclude:
                    # Tried once in this pass already (a fixed-instant replay): back to pending, untouched.
                    again: list[int | None] = [row.id]
                    await anyio.to_thread.run_sync(self._release, again, self._no_lanes)
                    continue
                job = _Job(row=row, fixed_now=fixed_now, report=report, done=loop.create_future(),
                           claimed=loop.time())
                self._add(job)
                jobs.append(job)
            if jobs:
                self._ensure_heartbeat()
            return jobs

    def _claim(self, now: datetime, full: list[tuple[str, str]]) -> list[OutboxMessage]:
        with self.ctx.db.write() as session:
            rows = claim_batch(session, worker=self.worker_id, now=now, per_lane=self._per_lane(),
                               skip_lanes=full)
            unknown = [row for row in rows if row.platform not in self.transports]
            for row in unknown:
                assert row.id is not None
                retry_later(session, message_id=row.id, worker=self.worker_id, at=now + timedelta(minutes=1),
                            error=f"no {row.platform} transport configured in this process")
            if unknown:
                release(session, worker=self.worker_id, now=now,
                        lanes=sorted({(row.platform, row.target) for row in unknown}))
            return [row for row in rows if row.platform in self.transports]

    def _release(self, ids: list[int | None], lanes: list[tuple[str, str]] | None) -> int:
        with self.ctx.db.write() as session:
            return release(session, worker=self.worker_id, now=self.ctx.now(),
                           ids=[i for i in ids if i is not None], lanes=lanes)

    async def _give_back(self, jobs: list[_Job]) -> None:
        """Take jobs not started yet out of their lanes and give their rows back."""
        taken: list[_Job] = []
        for job in jobs:
            lane = self._lanes.get((job.row.platform, job.row.target))
            if lane is not None and job in lane.queue:
                lane.queue.remove(job)
                taken.append(job)
        if taken:
            await anyio.to_thread.run_sync(self._release, [j.row.id for j in taken], self._no_lanes)
        for job in taken:
            _resolve(job)

    def _add(self, job: _Job) -> None:
        key = (job.row.platform, job.row.target)
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane(key)
        if job.row.kind != "card":
            # A message goes ahead of the cards already waiting in its lane (an escalation in a
            # team channel must not wait behind that channel's backlog of cards).
            position = next((i for i, queued in enumerate(lane.queue) if queued.row.kind == "card"), len(lane.queue))
            lane.queue.insert(position, job)
        else:
            lane.queue.append(job)
        if lane.task is None or lane.task.done():
            lane.task = asyncio.get_running_loop().create_task(self._drive(lane))

    #: `_release(ids, lanes)` with this keeps every lane (None gives back all of them).
    _no_lanes: list[tuple[str, str]] = []

    @staticmethod
    def _busy(lane: _Lane) -> bool:
        return bool(lane.queue) or lane.current is not None

    # --- leases -----------------------------------------------------------------------------

    def _ensure_heartbeat(self) -> None:
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.get_running_loop().create_task(self._renew_forever())

    async def _renew_forever(self) -> None:
        """Renew the leases of everything this process holds every LEASE / 3, while it holds any."""
        interval = LEASE.total_seconds() / 3
        while True:
            await asyncio.sleep(interval)
            held = [lane for lane in self._lanes.values() if self._busy(lane)]
            if not held:
                return
            ids = {job.row.id for lane in held for job in ([lane.current] if lane.current else []) + list(lane.queue)
                   if job.row.id is not None}
            try:
                still = await anyio.to_thread.run_sync(self._renew, ids, [lane.key for lane in held])
            except Exception:
                log.exception("could not renew outbox leases; retrying")
                continue
            self._renewed = asyncio.get_running_loop().time()
            lost = ids - still
            if lost:
                log.warning("outbox worker %s lost %s claimed row(s) to another worker", self.worker_id, len(lost))
                for lane in held:
                    for job in [j for j in lane.queue if j.row.id in lost]:
                        lane.queue.remove(job)
                        _resolve(job)

    def _renew(self, ids: set[int], lanes: list[tuple[str, str]]) -> set[int]:
        with self.ctx.db.write() as session:
            return renew(session, worker=self.worker_id, now=self.ctx.now(), ids=ids, lanes=lanes)

    # --- one lane ---------------------------------------------------------------------------

    async def _drive(self, lane: _Lane) -> None:
        """The lane's pacer: sends its rows one after the other, never two at once, at the pace of
        the platform (counted from its last answer) and of its 429s."""
        loop = asyncio.get_running_loop()
        transport = self.transports[lane.key[0]]
        while lane.queue and not self.stopping:
            job = lane.queue.popleft()
            if len(lane.queue) < REFILL_BELOW:
                # The claimer takes this lane's next rows while this one goes out.
                self._wake.set()
                self._refill.set()
            lane.current = job
            try:
                await self._send(lane, transport, job, loop)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # noqa: BLE001 - handed to whoever awaits the row
                # Not a delivery failure (those are handled in _send): the process is going down.
                # The row stays claimed and its lease lapses, as when the process dies.
                if not job.done.done():
                    job.done.set_exception(exc)
                return
            finally:
                lane.current = None
                _resolve(job)

    async def _send(self, lane: _Lane, transport: Transport, job: _Job, loop: asyncio.AbstractEventLoop) -> None:
        row, report = job.row, job.report
        while True:
            wait = lane.ready_at - loop.time()
            if wait > 0:
                await self._sleep(wait)
            if loop.time() - max(self._renewed, job.claimed) > SAFE_LEASE_S:
                # The lease may have lapsed (renewals failing): another worker may hold this row now.
                log.warning("outbox %s: lease not renewed in time; leaving it to whoever holds it", row.id)
                return
            try:
                outcome = await self._deliver(transport, row, job.fixed_now)
                answered = self._answered.pop(lane.key, loop.time())
                lane.ready_at = answered + transport.min_interval(row.kind)
                self._count(report, row, outcome)
                return
            except TransportError as exc:
                if exc.retry_after is not None and exc.retry_after <= MAX_INLINE_WAIT and not exc.permanent:
                    # Rate limited: hold this lane only; other channels keep flowing.
                    lane.ready_at = loop.time() + exc.retry_after
                    self._count(report, row, "retried")
                    continue
                outcome = await anyio.to_thread.run_sync(self._fail, row, exc, job.fixed_now, report)
            except Exception as exc:  # noqa: BLE001 - connection errors, bugs in one row
                log.warning("delivery of outbox %s failed: %s", row.id, type(exc).__name__)
                outcome = await anyio.to_thread.run_sync(self._fail, row, TransportError(repr(exc)[:300]),
                                                         job.fixed_now, report)
            if self._on_outcome is not None:
                self._on_outcome(row.platform, outcome)
            return

    def _count(self, report: DeliveryReport, row: OutboxMessage, outcome: str) -> None:
        setattr(report, outcome, getattr(report, outcome) + 1)
        if self._on_outcome is not None:
            self._on_outcome(row.platform, outcome)

    def _fail(self, row: OutboxMessage, exc: TransportError, fixed_now: datetime | None,
              report: DeliveryReport) -> str:
        assert row.id is not None
        now = fixed_now or self.ctx.now()
        # A permanent error (unknown channel, revoked token) gets a few tries, for the case an admin
        # fixes it quickly, then the row is parked as dead: kept and counted, never silently dropped.
        give_up = row.attempts >= (PERMANENT_ATTEMPTS if exc.permanent else MAX_ATTEMPTS)
        delay = exc.retry_after if exc.retry_after is not None else backoff(row.attempts, self.rng)
        with self.ctx.db.write() as session:
            retry_later(session, message_id=row.id, worker=self.worker_id,
                        at=now + timedelta(seconds=delay), error=str(exc), give_up=give_up)
        report.errors.append(f"{row.dedupe_key}: {exc}")
        if give_up:
            report.dead += 1
            log.error("outbox %s parked as dead after %s attempts: %s", row.id, row.attempts, exc)
            return "dead"
        report.retried += 1
        return "retried"

    async def _deliver(self, transport: Transport, row: OutboxMessage, fixed_now: datetime | None) -> str:
        assert row.id is not None
        if row.kind != "card":
            recovered = None
            if row.attempts > 1 and row.claimed_at is not None:
                recovered = await transport.find_posted(row.target, outbox_id=row.id,
                                                        since=row.created_at)
            if recovered is None:
                await transport.send_message(row.kind, row.target, row.payload, outbox_id=row.id)
                self._mark_answered(row)
            await anyio.to_thread.run_sync(self._settle, row, None, fixed_now)
            return "recovered" if recovered else "sent"
        lead, ref = await anyio.to_thread.run_sync(self._load_card, row)
        if lead is None:
            await anyio.to_thread.run_sync(self._settle, row, None, fixed_now)
            return "sent"
        card = lead_card(self.ctx, lead)
        if ref is None and row.attempts > 1:
            found = await transport.find_posted(row.target, outbox_id=row.id, since=row.created_at)
            if found is not None:
                await anyio.to_thread.run_sync(self._settle, row, found, fixed_now)
                await transport.update_card(found, card)
                return "recovered"
        if ref is None:
            posted = await transport.post_card(row.target, card, outbox_id=row.id)
            self._mark_answered(row)
            await anyio.to_thread.run_sync(self._settle, row, posted, fixed_now)
            return "sent"
        await transport.update_card(ref, card)
        self._mark_answered(row)
        await anyio.to_thread.run_sync(self._settle, row, None, fixed_now)
        return "updated"

    def _mark_answered(self, row: OutboxMessage) -> None:
        self._answered[(row.platform, row.target)] = asyncio.get_running_loop().time()

    def _load_card(self, row: OutboxMessage) -> tuple[Lead | None, Posted | None]:
        assert row.lead_id is not None and row.id is not None
        with self.ctx.db.write() as session:
            supersede_older_cards(session, lead_id=row.lead_id, platform=row.platform,
                                  newer_than=row.id, now=self.ctx.now())
            lead = session.get(Lead, row.lead_id)
            ref = get_message_ref(session, lead_id=row.lead_id, platform=row.platform)
            return lead, (Posted(ref.channel, ref.message_id) if ref else None)

    def _settle(self, row: OutboxMessage, posted: Posted | None, fixed_now: datetime | None) -> None:
        """Record the delivery: the message reference (first post of a card) and `done`."""
        assert row.id is not None
        now = fixed_now or self.ctx.now()
        with self.ctx.db.write() as session:
            if posted is not None and row.lead_id is not None:
                save_message_ref(session, lead_id=row.lead_id, platform=row.platform,
                                 channel=posted.channel, message_id=posted.message_id, now=now)
                lead = session.get(Lead, row.lead_id)
                if lead is not None and lead.card_posted_at is None and lead.routed_at is not None:
                    lead.card_posted_at = now
                    lead.system_delay_s = max(0.0, (now - lead.routed_at).total_seconds())
            mark_done(session, message_id=row.id, worker=self.worker_id, now=now)


def _resolve(job: _Job) -> None:
    if not job.done.done():
        job.done.set_result(None)
