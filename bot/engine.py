"""The tick: every periodic job as one plain function of `now` (deliver, sweep, digests, deliver)."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from datetime import datetime

import anyio

from bot.delivery import DeliveryReport, OutboxWorker
from bot.services import Services
from commands.digest import queue_due_digests
from commands.engine import SweepReport, sweep
from sla.clock import as_utc

__all__ = ["TickReport", "send_digests_now", "tick"]

log = logging.getLogger("slabot.tick")


@dataclass
class TickReport:
    """What one tick did, for `slabot tick` and the logs."""

    at: datetime
    delivered_before: DeliveryReport = field(default_factory=DeliveryReport)
    sweep: SweepReport = field(default_factory=SweepReport)
    digests: list[str] = field(default_factory=list)
    delivered_after: DeliveryReport = field(default_factory=DeliveryReport)
    errors: list[str] = field(default_factory=list)

    @property
    def delivered(self) -> DeliveryReport:
        total = DeliveryReport()
        total.add(self.delivered_before)
        total.add(self.delivered_after)
        return total

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


async def tick(services: Services, *, now: datetime | None = None) -> TickReport:
    """Deliver the outbox, fire due nudges and escalations, queue due digests, deliver again.

    `now` given (`slabot tick --now`, tests): everything is stamped with that instant and a replay
    of the same instant sends nothing new (every job claims its work in the database). `now` None
    (the scheduler): the services' clock. A failing step is logged and reported; the other steps
    still run, so an outage of one platform never stops the nudges.
    """
    at = as_utc(now) if now is not None else services.ctx.now()
    report = TickReport(at=at)
    worker = _worker(services)
    try:
        report.delivered_before = await worker.deliver_due(now)
    except Exception as exc:
        log.exception("tick: outbox delivery failed")
        report.errors.append(f"delivery: {type(exc).__name__}: {exc}")
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
    try:
        # What the sweep and the digests just queued goes out in this tick, not the next.
        report.delivered_after = await worker.deliver_due(now)
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
