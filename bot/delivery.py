"""The outbox worker: delivers queued cards and messages to chat, paced per channel, retried
with backoff, never twice.

How "never twice" holds when a worker dies between a post and its bookkeeping: every post carries
the outbox row id (Slack message metadata). A row found still `sending` after STALE_CLAIM was
claimed by a dead worker; before posting again, the transport is asked whether a message with that
id is already in the channel, and if so its reference is stored instead of posting.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import anyio

from bot.cards import Card
from bot.presenters import lead_card
from commands.context import Context
from storage.outbox import (
    claim_batch,
    get_message_ref,
    mark_done,
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


class OutboxWorker:
    def __init__(self, ctx: Context, transports: dict[str, Transport], *, worker_id: str | None = None,
                 rng: random.Random | None = None, sleep: Any = asyncio.sleep) -> None:
        self.ctx = ctx
        self.transports = transports
        self.worker_id = worker_id or f"w-{uuid.uuid4().hex[:10]}"
        self.rng = rng or random.Random()
        self._sleep = sleep
        #: Monotonic time before which the next send to a lane may not start (pacing, 429s).
        self._lane_ready: dict[tuple[str, str], float] = defaultdict(float)
        #: When the platform last answered on a lane: pacing counts from there, not from the end of
        #: the bookkeeping after it (two write transactions, ~80 ms under a burst).
        self._answered: dict[tuple[str, str], float] = {}
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Called after a click or a handoff so the card goes out now, not at the next poll."""
        self._wake.set()

    async def run_forever(self, poll_seconds: float = 1.0) -> None:
        while True:
            try:
                await self.deliver_due()
            except Exception:
                log.exception("outbox delivery failed; retrying at the next poll")
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=poll_seconds)
            except TimeoutError:
                pass
            self._wake.clear()

    async def deliver_due(self, now: datetime | None = None) -> DeliveryReport:
        """Claim everything due and deliver it, lanes (one per channel) in parallel."""
        report = DeliveryReport()
        for _ in range(20):   # bounded: rows that keep failing wait for the next poll
            at = now or self.ctx.now()
            rows = await anyio.to_thread.run_sync(self._claim, at)
            if not rows:
                return report
            lanes: dict[tuple[str, str], list[OutboxMessage]] = defaultdict(list)
            for row in rows:
                lanes[(row.platform, row.target)].append(row)
            results = await asyncio.gather(*(self._run_lane(lane, items, now) for lane, items in lanes.items()))
            for result in results:
                report.add(result)
            if now is not None:
                # A replayed tick delivers what was due at `now` once, not what its own retries re-queue.
                return report
        return report

    def _claim(self, now: datetime) -> list[OutboxMessage]:
        # A token per claim, so two concurrent claims at the same instant (a frozen clock) never
        # mistake each other's rows for their own.
        token = f"{self.worker_id}:{uuid.uuid4().hex[:8]}"
        with self.ctx.db.write() as session:
            rows = claim_batch(session, worker=token, now=now)
            return [row for row in rows if row.platform in self.transports] + self._release_unknown(
                session, rows, now)

    def _release_unknown(self, session: Any, rows: list[OutboxMessage], now: datetime) -> list[OutboxMessage]:
        for row in rows:
            if row.platform not in self.transports:
                assert row.id is not None
                retry_later(session, message_id=row.id, worker=row.claimed_by or "", at=now + timedelta(minutes=1),
                            error=f"no {row.platform} transport configured in this process")
        return []

    async def _run_lane(self, lane: tuple[str, str], rows: list[OutboxMessage],
                        fixed_now: datetime | None) -> DeliveryReport:
        report = DeliveryReport()
        transport = self.transports[lane[0]]
        loop = asyncio.get_running_loop()
        for row in rows:
            while True:
                wait = self._lane_ready[lane] - loop.time()
                if wait > 0:
                    await self._sleep(wait)
                try:
                    outcome = await self._deliver(transport, row, fixed_now)
                    answered = self._answered.pop(lane, loop.time())
                    self._lane_ready[lane] = answered + transport.min_interval(row.kind)
                    setattr(report, outcome, getattr(report, outcome) + 1)
                    break
                except TransportError as exc:
                    if exc.retry_after is not None and exc.retry_after <= MAX_INLINE_WAIT and not exc.permanent:
                        # Rate limited: hold this lane only; other channels keep flowing.
                        self._lane_ready[lane] = loop.time() + exc.retry_after
                        report.retried += 1
                        continue
                    await anyio.to_thread.run_sync(self._fail, row, exc, fixed_now, report)
                    break
                except Exception as exc:  # noqa: BLE001 - connection errors, bugs in one row
                    log.warning("delivery of outbox %s failed: %s", row.id, type(exc).__name__)
                    await anyio.to_thread.run_sync(self._fail, row, TransportError(repr(exc)[:300]),
                                                   fixed_now, report)
                    break
        return report

    def _fail(self, row: OutboxMessage, exc: TransportError, fixed_now: datetime | None,
              report: DeliveryReport) -> None:
        assert row.id is not None
        now = fixed_now or self.ctx.now()
        # A permanent error (unknown channel, revoked token) gets a few tries, for the case an admin
        # fixes it quickly, then the row is parked as dead: kept and counted, never silently dropped.
        give_up = row.attempts >= (PERMANENT_ATTEMPTS if exc.permanent else MAX_ATTEMPTS)
        delay = exc.retry_after if exc.retry_after is not None else backoff(row.attempts, self.rng)
        with self.ctx.db.write() as session:
            retry_later(session, message_id=row.id, worker=row.claimed_by or "",
                        at=now + timedelta(seconds=delay), error=str(exc), give_up=give_up)
        if give_up:
            report.dead += 1
            log.error("outbox %s parked as dead after %s attempts: %s", row.id, row.attempts, exc)
        else:
            report.retried += 1
        report.errors.append(f"{row.dedupe_key}: {exc}")

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
            mark_done(session, message_id=row.id, worker=row.claimed_by or "", now=now)
