"""Group commit for the intake API: concurrent handoffs share one write transaction.

While one batch is being written, new requests queue up; the next batch takes them all (up to
MAX_BATCH). A lone request is a batch of one, so nothing waits for company. If a batch fails as a
whole, its handoffs are retried one by one, so a single bad lead fails only its own request.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import anyio

from commands.context import Context
from commands.intake import Handoff, IntakeResult, handoff_many

log = logging.getLogger("slabot.intake")
MAX_BATCH = 200


@dataclass
class _Pending:
    item: Handoff
    future: asyncio.Future[IntakeResult] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class IntakeBatcher:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._queue: asyncio.Queue[_Pending] | None = None
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: Handoff) -> IntakeResult:
        if self._queue is None or self._task is None or self._task.done():
            self._queue = asyncio.Queue()
            self._task = asyncio.create_task(self._drain(self._queue), name="intake-batcher")
        pending = _Pending(item)
        await self._queue.put(pending)
        return await pending.future

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _drain(self, queue: asyncio.Queue[_Pending]) -> None:
        while True:
            batch = [await queue.get()]
            while len(batch) < MAX_BATCH and not queue.empty():
                batch.append(queue.get_nowait())
            try:
                results = await anyio.to_thread.run_sync(handoff_many, self.ctx, [p.item for p in batch])
            except Exception:  # noqa: BLE001 - isolate the bad handoff, answer the rest
                if len(batch) > 1:
                    log.warning("a batch of %d handoffs failed; retrying them one by one", len(batch))
                for pending in batch:
                    await self._one(pending)
                continue
            for pending, result in zip(batch, results, strict=True):
                if not pending.future.done():
                    pending.future.set_result(result)

    async def _one(self, pending: _Pending) -> None:
        try:
            [result] = await anyio.to_thread.run_sync(handoff_many, self.ctx, [pending.item])
        except Exception as exc:  # noqa: BLE001 - surfaces as this request's 500
            if not pending.future.done():
                pending.future.set_exception(exc)
            return
        if not pending.future.done():
            pending.future.set_result(result)
