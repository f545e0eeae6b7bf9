"""The running service's parts, built once from settings and shared by routes, workers and the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import Request

from bot.http.intake import IntakeBatcher
from bot.http.telemetry import Telemetry
from bot.settings import Settings
from bot.worker.delivery import OutboxWorker, Transport
from commands.context import Context
from sla.agreement import Agreement, load_agreement
from sla.clock import Clock, SystemClock
from storage.db import Database
from storage.metrics import Status


@dataclass
class Services:
    settings: Settings
    ctx: Context
    telemetry: Telemetry = field(default_factory=Telemetry)
    transports: dict[str, Transport] = field(default_factory=dict)
    worker: OutboxWorker | None = None
    intake: IntakeBatcher = field(init=False)

    def __post_init__(self) -> None:
        self.intake = IntakeBatcher(self.ctx)
        self.telemetry.watch_backlog(self._backlog)

    def _backlog(self) -> Any:
        from storage.health import backlog

        with self.ctx.db.read() as session:
            return backlog(session, now=self.ctx.now())

    def wake_worker(self) -> None:
        if self.worker is not None:
            self.worker.wake()

    def make_worker(self, worker_id: str | None = None) -> OutboxWorker:
        deliveries = self.telemetry.deliveries
        self.worker = OutboxWorker(self.ctx, self.transports, worker_id=worker_id,
                                   on_outcome=lambda platform, outcome: deliveries.labels(platform, outcome).inc())
        return self.worker

    def status(self, *, scope: str = "all", as_of: datetime | None = None) -> Status:
        from storage.metrics import status

        with self.ctx.db.read() as session:
            return status(session, agreement=self.ctx.agreement, calendar=self.ctx.calendar,
                          as_of=as_of or self.ctx.now(), scope=scope)

    def public_url(self, request: Request) -> str:
        """The URL as the caller addressed it (signature checks cover it)."""
        if self.settings.slabot_public_url:
            query = f"?{request.url.query}" if request.url.query else ""
            return self.settings.slabot_public_url.rstrip("/") + request.url.path + query
        return str(request.url)


def build_services(settings: Settings, *, clock: Clock | None = None, agreement: Agreement | None = None,
                   db: Database | None = None) -> Services:
    agreement = agreement or load_agreement(settings.slabot_agreement)
    db = db or Database(settings.database_url)
    ctx = Context(db=db, agreement=agreement, clock=clock or SystemClock(), platforms=settings.platforms())
    return Services(settings=settings, ctx=ctx)
