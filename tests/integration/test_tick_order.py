"""`tick` sweeps before it delivers, and direct messages go before the cards waiting in the outbox:
a nudge due now is not held back by a backlog of cards (issue 10 item 2), in `slabot tick --now`
as in the scheduled tick."""

from __future__ import annotations

from bot.services import Services, build_services
from bot.worker.delivery import OutboxWorker
from bot.worker.tick import tick
from sla.agreement import Agreement
from sla.clock import FixedClock
from storage.db import Database
from tests.conftest import make_settings
from tests.integration.test_engine import RecordingTransport, lead_in, local, route


class PacedTransport(RecordingTransport):
    """Slack's pace: one post per second per channel (the worker's sleeps are recorded, not slept)."""

    def min_interval(self, kind: str) -> float:
        return 1.0


async def test_a_due_nudge_goes_out_before_a_backlog_of_cards(db: Database, agreement: Agreement,
                                                               clock: FixedClock) -> None:
    services: Services = build_services(make_settings(database_url=db.url, console=True), clock=clock,
                                        agreement=agreement, db=db)
    transport = PacedTransport()
    services.transports["console"] = transport
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    services.worker = OutboxWorker(services.ctx, services.transports, sleep=sleep)
    hot = route(services.ctx, clock, local(2026, 11, 24, 10, 0))          # first nudge due at 10:07:30
    assert (await tick(services, now=local(2026, 11, 24, 10, 0, 1))).delivered.sent == 1
    for n in range(20):                                                   # 20 cards, in both team channels
        route(services.ctx, clock, local(2026, 11, 24, 10, 7), lead_in(f"Lead N{n}", hot=False,
                                                                        employees=50 if n % 2 else 2000))
    report = await tick(services, now=local(2026, 11, 24, 10, 8))

    assert report.errors == [] and report.sweep.nudges == 1 and report.delivered.sent == 21
    sent = transport.sent[1:]
    nudge = next(i for i, (kind, _, _) in enumerate(sent) if kind == "dm")
    channels = {target for kind, target, _ in sent if kind == "post"}
    # The nudge went out in the first round, before any channel's second card.
    assert nudge < len(channels), sent
    assert hot.id is not None
    assert slept and max(slept) <= 1.0          # the cards were paced, one per second per channel
