"""Handoff latency at a fixed arrival rate (open loop: latency is measured from the scheduled
send time, so a slow server cannot hide its queueing) and sustained throughput, on SQLite."""

from __future__ import annotations

import asyncio
import gc
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.common import EXAMPLE_AGREEMENT, EXAMPLE_LEAD, Row, percentile, serve

TOKEN = "bench-token-of-at-least-32-characters"   # serve refuses shorter ones


async def _fire(url: str, rate: float, seconds: float, prefix: str, connections: int) -> tuple[list[float], int]:
    body: dict[str, Any] = json.loads(EXAMPLE_LEAD.read_text())
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(base_url=url, connector=connector, timeout=aiohttp.ClientTimeout(total=60),
                                     headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        start = time.perf_counter()
        total = int(rate * seconds)

        async def one(i: int) -> None:
            nonlocal errors
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            lead = {**body, "external_id": f"{prefix}-{i}", "employees": 20 + i % 3000}
            async with client.post("/api/v1/leads", json=lead) as response:
                await response.read()
                latencies.append(time.perf_counter() - scheduled)
                if response.status != 201:
                    errors += 1

        # This process's full GC (60-140 ms) would stall the load generator and count as server latency.
        gc.collect()
        gc.disable()
        try:
            await asyncio.gather(*(one(i) for i in range(total)))
        finally:
            gc.enable()
    return latencies, errors


def run(quick: bool = False) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {"DATABASE_URL": f"sqlite:///{Path(tmp) / 'bench.db'}", "SLABOT_AGREEMENT": str(EXAMPLE_AGREEMENT),
               "SLABOT_INTAKE_TOKEN": TOKEN}
        with serve(env, "--no-scheduler") as url:
            asyncio.run(_fire(url, 50, 1, "warm", 8))
            seconds = 5 if quick else 15
            lat, errors = asyncio.run(_fire(url, 100, seconds, "steady", 32))
            p50, p99 = percentile(lat, 0.5) * 1000, percentile(lat, 0.99) * 1000
            rows.append(Row("intake at 100 req/s, SQLite", f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, {errors} errors",
                            "p99 < 50 ms", p99 < 50 and errors == 0))
            count = 2000 if quick else 6000
            t0 = time.perf_counter()
            lat, errors = asyncio.run(_fire(url, 5000, count / 5000, "burst", 64))
            rate = len(lat) / (time.perf_counter() - t0)
            rows.append(Row("intake throughput (64 connections), SQLite",
                            f"{rate:.0f} leads/s over {len(lat)} leads, {errors} errors",
                            ">= 500 leads/s", rate >= 500 and errors == 0))
    return rows
