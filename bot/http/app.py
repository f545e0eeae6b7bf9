"""The FastAPI app factory: the only place the HTTP API, Slack, Teams and the worker are wired."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from bot import desk
from bot.http import api
from bot.services import Services

log = logging.getLogger("slabot")


def create_app(services: Services, *, run_worker: bool = False, run_scheduler: bool = False) -> FastAPI:
    """`run_worker`: deliver the outbox in this process; `run_scheduler`: also run the periodic tick
    (nudges, digests). Tests drive both by hand instead."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tasks: list[asyncio.Task[None]] = []
        scheduler = None
        if run_worker:
            worker = services.make_worker()
            tasks.append(asyncio.create_task(worker.run_forever()))
        if run_scheduler:
            from bot.worker.scheduler import start_scheduler

            scheduler = start_scheduler(services)
        for hook in app.state.startup_hooks:
            await hook()
        # Everything loaded by now lives as long as the process: keep it out of full collections,
        # which otherwise take 100-130 ms each and stall every request in flight (click-ack p99).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            if scheduler is not None:
                scheduler.shutdown(wait=False)
            if run_worker and services.worker is not None:
                await services.worker.stop()   # claimed rows not yet sent go back to pending at once
            for task in tasks:
                task.cancel()
            for hook in app.state.shutdown_hooks:
                await hook()

    # /docs and /redoc are served by bot.http.apidocs from local files (FastAPI's own pages use a CDN).
    app = FastAPI(title="slabot", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.services = services
    app.state.startup_hooks = []
    app.state.shutdown_hooks = []
    services.telemetry.install(app)
    api.install(app)
    desk.install(app, services)   # the desk under /desk (bot/desk): pages, sign-in, clicks
    settings = services.settings
    if settings.console:
        from bot.console import ConsoleTransport

        services.transports["console"] = ConsoleTransport(services.ctx)
    if settings.slack_enabled:
        from bot.slack.app import install as install_slack

        services.transports["slack"] = install_slack(app, services)
    if settings.teams_enabled:
        from bot.teams.app import install as install_teams

        services.transports["teams"] = install_teams(app, services)
    if settings.slabot_smtp_url is not None and settings.slabot_smtp_from:
        from bot.email.transport import EmailTransport

        services.transports["email"] = EmailTransport.from_url(
            settings.slabot_smtp_url.get_secret_value(), settings.slabot_smtp_from, now=services.ctx.now)
    return app


def app_from_environment() -> FastAPI:
    """The app as `slabot serve` runs it in each worker process (settings from the environment)."""
    import os

    from bot.logs import configure_logging
    from bot.services import build_services
    from bot.settings import Settings

    settings = Settings()
    # Each `--workers` process is a fresh interpreter: it configures logging as the CLI did.
    configure_logging(level=settings.slabot_log_level, fmt=settings.slabot_log_format)
    run = os.environ.get("SLABOT_RUN_SCHEDULER", "1") == "1"
    return create_app(build_services(settings), run_worker=run, run_scheduler=run)
