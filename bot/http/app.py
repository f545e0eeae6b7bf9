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
from bot.worker.transports import add_local_transports

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
    if settings.slack_enabled:
        from bot.slack.app import install as install_slack

        services.transports["slack"] = install_slack(app, services)
    if settings.teams_enabled:
        from bot.teams.app import install as install_teams

        services.transports["teams"] = install_teams(app, services)
    add_local_transports(services)
    return app


def _from_environment(*, run_scheduler: bool) -> FastAPI:
    from bot.logs import configure_logging
    from bot.services import build_services
    from bot.settings import Settings

    settings = Settings()
    # Each `--workers` process is a fresh interpreter: it configures logging as the CLI did.
    configure_logging(level=settings.slabot_log_level, fmt=settings.slabot_log_format)
    return create_app(build_services(settings), run_worker=run_scheduler, run_scheduler=run_scheduler)


# uvicorn's factories (`slabot serve` names one by import path, so `--workers N` can import it in each
# process): `--no-scheduler` chooses the second instead of passing a flag through the environment.
def app_from_environment() -> FastAPI:
    """The app as `slabot serve` runs it in each worker process: web, outbox worker and scheduler."""
    return _from_environment(run_scheduler=True)


def web_app_from_environment() -> FastAPI:
    """The app as `slabot serve --no-scheduler` runs it: web only (a separate `slabot worker` ticks)."""
    return _from_environment(run_scheduler=False)
