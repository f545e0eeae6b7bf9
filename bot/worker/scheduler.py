"""The periodic trigger: APScheduler calls `tick` every 30 s; `slabot worker` runs it with the outbox worker.

The tick (sweep and digests) and the outbox loop run side by side: the tick only wakes the loop,
so a backlog of cards never delays a nudge, and each lane has one pacer in the process.

APScheduler is only a trigger (research/reliability-and-performance.md section 3): it keeps no job
store, and correctness never depends on it firing exactly once. Every job claims its work in the
database (conditional updates, unique keys), so a second worker process, a restart or a tick that
runs late or twice sends nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot.services import Services
from bot.worker.tick import tick

__all__ = ["SHUTDOWN_GRACE_SECONDS", "TICK_JOB_ID", "TICK_SECONDS", "run_worker", "serve_worker", "start_scheduler"]

log = logging.getLogger("slabot.scheduler")

TICK_SECONDS = 30
TICK_JOB_ID = "slabot-tick"
#: How long a stopping worker waits for a tick in flight.
SHUTDOWN_GRACE_SECONDS = 30.0


class _Ticker:
    """The scheduled job: one tick, logged, never raising; remembers ticks in flight so a worker
    that is told to stop lets the current one finish."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.in_flight: set[asyncio.Task[object]] = set()

    async def run(self) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.in_flight.add(task)
        try:
            report = await tick(self.services)
        except Exception:
            # The scheduler must outlive any one failed tick; the next one retries everything.
            log.exception("tick failed")
            return
        finally:
            if task is not None:
                self.in_flight.discard(task)
        busy = report.delivered.sent or report.sweep.due or report.digests or report.errors
        for line in report.lines() if busy else []:
            log.info("%s", line)


def start_scheduler(services: Services) -> AsyncIOScheduler:
    """Start ticking on the running event loop, the first tick at once; returns the started scheduler
    (stop it with `.shutdown(wait=False)`).

    coalesce + max_instances=1: a tick that overruns or a loop that stalled never causes a burst of
    catch-up ticks; misfire_grace_time=60: a tick delayed by up to a minute still runs. UTC, so
    DST never skips or repeats a run (business-time rules live in the jobs, not in the trigger).
    """
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.add_job(_Ticker(services).run, trigger=IntervalTrigger(seconds=TICK_SECONDS, timezone=UTC),
                      id=TICK_JOB_ID, name="slabot tick", coalesce=True,
                      max_instances=1, misfire_grace_time=60, next_run_time=datetime.now(UTC),
                      replace_existing=True)
    scheduler.start()
    return scheduler


async def serve_worker(services: Services, *, stop: asyncio.Event | None = None,
                       poll_seconds: float = 1.0) -> None:
    """The outbox worker loop and the scheduler on this event loop until `stop` is set (or, when
    not given, until SIGTERM/SIGINT). The chat transports must already be in `services.transports`
    (the CLI builds them with `create_app(services)`)."""
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    if stop is None:
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)
                handled.append(sig)
    worker = services.worker or services.make_worker()
    worker.running = True   # before the first tick: it must wake this loop, not deliver beside it
    delivering = asyncio.create_task(worker.run_forever(poll_seconds=poll_seconds))
    scheduler = start_scheduler(services)
    log.info("worker %s running: outbox delivery and a tick every %s s", worker.worker_id, TICK_SECONDS)
    try:
        await stop.wait()
    finally:
        # No new ticks; the one running (if any) finishes its transactions and deliveries first.
        scheduler.pause()
        job = scheduler.get_job(TICK_JOB_ID)
        # A bound method: APScheduler runs coroutine functions on the loop, other callables in threads.
        ticker = getattr(job.func, "__self__", None) if job is not None else None
        if isinstance(ticker, _Ticker) and ticker.in_flight:
            await asyncio.wait(set(ticker.in_flight), timeout=SHUTDOWN_GRACE_SECONDS)
        scheduler.shutdown(wait=False)
        # Rows claimed and not yet sent go back to pending at once: the next worker (or this one,
        # restarted) sends them without waiting for a lease to lapse.
        await worker.stop()
        delivering.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await delivering
        for sig in handled:
            loop.remove_signal_handler(sig)
        log.info("worker %s stopped", worker.worker_id)


def run_worker(services: Services) -> None:
    """`slabot worker`: run `serve_worker` until SIGTERM or SIGINT."""
    asyncio.run(serve_worker(services))
