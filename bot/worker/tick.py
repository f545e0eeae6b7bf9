"""The tick: every periodic job as one plain function of `now` (sweep, digests, then delivery).

Deadlines never wait behind delivery: the sweep (nudges, escalations, claim timeouts) and the
digests are queued first, and what they queue (direct messages) goes out before the cards waiting
in the outbox. When the process runs the outbox loop (`slabot worker`, `slabot serve`), the tick
only wakes it: delivery runs beside the ticks, paced per lane, and never holds the next sweep."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from datetime import datetime

import anyio

from bot.services import Services
from bot.worker.delivery import DeliveryReport, OutboxWorker
from commands.digest import queue_due_digests
from commands.sweep import SweepReport, sweep
from sla.clock import as_utc

__all__ = ["TICK_DELIVERY_BUDGET_S", "TickReport", "send_digests_now", "tick"]

log = logging.getLogger("slabot.tick")


@dataclass
class TickReport:
    """What one tick did, for `slabot tick` and the logs."""

    at: datetime
    sweep: SweepReport = field(default_factory=SweepReport)
    digests: list[str] = field(default_factory=list)
    delivered: DeliveryReport = field(default_factory=DeliveryReport)
    errors: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        at = self.at.isoformat().replace("+00:00", "Z")
        d = self.delivered
        lines = [f"tick as of {at}",
                 f"outbox: {d.sent} sent, {d.updated} card update(s), {d.recovered} recovered, "
                 f"{d.retried} to retry, {d.dead} dead"]
        lines += self.sweep.lines()
        lines.append(f"digests: {len(self.digests)} queued" + (f" ({', '.join(self.digests)})"
                                                               if self.digests else ""))
        lines += [f"delivery error: {e}" for e in d.errors]
        lines += [f"error: {e}" for e in self.errors]
        return lines


def _worker(services: Services) -> OutboxWorker:
    return services.worker or services.make_worker()


#: A scheduled tick in a process without the outbox loop delivers for at most this long, then
#: gives back what it claimed: the next tick (and its sweep) starts on time.
TICK_DELIVERY_BUDGET_S = 20.0


async def tick(services: Services, *, now: datetime | None = None) -> TickReport:
    """Fire due nudges and escalations, queue due digests, then deliver the outbox (nudges first).

    `now` given (`slabot tick --now`, tests): everything is stamped with that instant, the outbox
    is delivered to the end, and a replay of the same instant sends nothing new (every job claims
    its work in the database). `now` None (the scheduler): the services' clock; if the outbox loop
    runs in this process it is only woken, else delivery gets TICK_DELIVERY_BUDGET_S. A failing
    step is logged and reported; the other steps still run, so an outage of one platform never
    stops the nudges.
    """
    at = as_utc(now) if now is not None else services.ctx.now()
    report = TickReport(at=at)
    try:
        report.sweep = await anyio.to_thread.run_sync(functools.partial(sweep, services.ctx, now=at))
    except Exception as exc:
        log.exception("tick: sweep failed")
        report.errors.append(f"sweep: {type(exc).__name__}: {exc}")
    try:
        report.digests = await anyio.to_thread.run_sync(
            functools.partial(queue_due_digests, services.ctx, now=at))
    except Exception as exc:
        log.exception("tick: digests failed")
        report.errors.append(f"digests: {type(exc).__name__}: {exc}")
    worker = _worker(services)
    if now is None and worker.running:
        worker.wake()   # the outbox loop delivers what the sweep queued, beside the ticks
        return report
    try:
        report.delivered = await worker.deliver_due(now, budget=TICK_DELIVERY_BUDGET_S if now is None else None)
    except Exception as exc:
        log.exception("tick: outbox delivery failed")
        report.errors.append(f"delivery: {type(exc).__name__}: {exc}")
    return report


async def send_digests_now(services: Services, *, now: datetime) -> list[str]:
    """`slabot digest --send`: queue today's digest for every recipient of the agreement whatever
    the schedule (still once per recipient per local day), and deliver it. Returns the keys queued;
    empty when every recipient already had today's."""
    at = as_utc(now)
    queued = await anyio.to_thread.run_sync(
        functools.partial(queue_due_digests, services.ctx, now=at, force=True))
    if queued:
        await _worker(services).deliver_due(at)
    return queued
