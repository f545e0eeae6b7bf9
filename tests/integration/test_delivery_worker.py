"""The outbox worker in one process, on a real database: a clean stop gives back unsent rows at
once (SIGTERM), and a lane held by one worker is not sent to by another (pacing across workers)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from sqlmodel import col, select

from bot.worker.delivery import OutboxWorker, Posted
from commands.context import Context
from storage.db import Database
from storage.outbox import enqueue
from storage.tables import OutboxLane, OutboxMessage
from tests.integration.test_engine import RecordingTransport


class Gated(RecordingTransport):
    """Every message to `held` waits for `gate`; `entered` says one is in flight."""

    def __init__(self, held: str) -> None:
        super().__init__()
        self.held = held
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    async def send_message(self, kind: str, target: str, payload: dict[str, Any], *,
                           outbox_id: int) -> Posted | None:
        if target == self.held:
            self.entered.set()
            await self.gate.wait()
        return await super().send_message(kind, target, payload, outbox_id=outbox_id)


def queue(ctx: Context, target: str, count: int, start: int = 0) -> None:
    with ctx.db.write() as session:
        for i in range(start, start + count):
            enqueue(session, dedupe_key=f"{target}:{i}", kind="channel", platform="console", target=target,
                    now=ctx.now(), payload={"text": f"{target} {i}"})


def rows(db: Database, target: str) -> list[OutboxMessage]:
    with db.read() as session:
        return list(session.execute(select(OutboxMessage).where(col(OutboxMessage.target) == target)
                                    .order_by(col(OutboxMessage.id))).scalars())


async def until(predicate: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_a_stopping_worker_gives_back_what_it_has_not_sent(ctx: Context) -> None:
    queue(ctx, "#smb", 4)
    transport = Gated("#smb")
    worker = OutboxWorker(ctx, {"console": transport})
    running = asyncio.create_task(worker.run_forever(poll_seconds=0.05))
    await asyncio.wait_for(transport.entered.wait(), 10)          # the first message is in flight
    stopping = asyncio.create_task(worker.stop(grace=10))
    # The three not started go back to pending at once, their attempt not counted ...
    await until(lambda: [r.status for r in rows(ctx.db, "#smb")] == ["sending", "pending", "pending", "pending"])
    assert [r.attempts for r in rows(ctx.db, "#smb")][1:] == [0, 0, 0]
    transport.gate.set()                                          # ... the one in flight finishes.
    assert await asyncio.wait_for(stopping, 10) == 3
    await asyncio.wait_for(running, 10)
    assert [r.status for r in rows(ctx.db, "#smb")] == ["done", "pending", "pending", "pending"]
    assert transport.sent == [("channel", "#smb", "#smb 0")]
    with ctx.db.read() as session:                                # and the lane is free for anyone
        assert [lane.holder for lane in session.execute(select(OutboxLane)).scalars()] == [None]


async def test_a_second_worker_never_sends_to_a_lane_the_first_one_holds(ctx: Context) -> None:
    queue(ctx, "#smb", 1)
    first_transport = Gated("#smb")
    first = OutboxWorker(ctx, {"console": first_transport}, worker_id="first")
    running = asyncio.create_task(first.run_forever(poll_seconds=0.05))
    await asyncio.wait_for(first_transport.entered.wait(), 10)    # first is posting in #smb
    queue(ctx, "#smb", 1, start=1)
    queue(ctx, "#midmarket", 1)
    second_transport = RecordingTransport()
    report = await OutboxWorker(ctx, {"console": second_transport}, worker_id="second").deliver_due()
    # The second worker sent to the free channel only; #smb's rows wait for their lane's holder.
    assert report.sent == 1 and second_transport.sent == [("channel", "#midmarket", "#midmarket 0")]
    first_transport.gate.set()
    await until(lambda: [r.status for r in rows(ctx.db, "#smb")] == ["done", "done"])
    assert [r.claimed_by for r in rows(ctx.db, "#smb")] == ["first", "first"]
    await first.stop()
    await asyncio.wait_for(running, 10)
