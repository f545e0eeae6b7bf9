"""Prometheus counters and latency histograms, one registry per app (no process globals)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from storage.health import Backlog


class Telemetry:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("slabot_http_requests_total", "HTTP requests", ["route", "status"],
                                registry=self.registry)
        self.latency = Histogram("slabot_http_request_seconds", "HTTP request latency", ["route"],
                                 registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
        self.deliveries = Counter("slabot_outbox_deliveries_total",
                                  "Outbox deliveries by platform and outcome (sent, updated, recovered, "
                                  "retried, dead)", ["platform", "outcome"], registry=self.registry)

    def watch_backlog(self, read: Callable[[], Backlog]) -> None:
        """Gauges of the outbox (rows pending, sending, dead) and of overdue SLA steps, read from the
        database at each scrape (`read` is a few index lookups)."""
        self.registry.register(_BacklogCollector(read))

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def install(self, app: FastAPI) -> None:
        app.add_middleware(_Measure, telemetry=self)


class _BacklogCollector(Collector):
    """The backlog gauges, computed when Prometheus scrapes (a database error leaves them out)."""

    def __init__(self, read: Callable[[], Backlog]) -> None:
        self.read = read

    def describe(self) -> list[Any]:
        return []   # collected only at scrape time, never at registration

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            backlog = self.read()
        except Exception:  # noqa: BLE001 - a scrape must not fail because the database is away
            logging.getLogger("slabot.telemetry").warning("could not read the outbox backlog for /metrics")
            return
        rows = GaugeMetricFamily("slabot_outbox_rows", "Outbox rows by status (pending, sending, dead)",
                                 labels=["status"])
        for status, count in sorted(backlog.outbox.items()):
            rows.add_metric([status], count)
        yield rows
        yield GaugeMetricFamily("slabot_nudges_overdue",
                                "Open leads with an SLA step (nudge, escalation, claim timeout, cadence "
                                "reminder) due and not fired yet", value=backlog.overdue_steps)
        yield GaugeMetricFamily("slabot_nudge_oldest_overdue_seconds",
                                "How late the oldest SLA step due and not fired yet is", value=backlog.oldest_overdue_s)


class _Measure:
    """Pure ASGI middleware: Starlette's BaseHTTPMiddleware would cost more than a handoff itself."""

    def __init__(self, app: Any, telemetry: Telemetry) -> None:
        self.app = app
        self.telemetry = telemetry

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_record(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.telemetry.latency.labels(route).observe(time.perf_counter() - started)
            self.telemetry.requests.labels(route, str(status)).inc()
