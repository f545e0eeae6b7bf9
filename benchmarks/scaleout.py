"""Scale-out on PostgreSQL: intake with one and with two `slabot serve --no-scheduler` processes
(stateless web replicas) and a separate `slabot worker`, all on one throwaway PostgreSQL
(tests.support.postgres), with Slack pointed at the fake (tests.fakes.slack_api, its own process).

Per configuration, on a fresh server: LEADS handoffs as fast as 64 connections to each web
process go, spread evenly over them; printed: the rate, and the CPU seconds the web processes used per 1,000
leads (user + system, from /proc/PID/stat before and after). Then the worker delivers the cards;
counted on the fake: each channel must hold exactly the cards queued for it (none lost, none
posted twice).

This machine has two cores shared by the database, the app and the load, so the rate cannot
double here; what must hold is that the cost per lead does not rise from one web process to two
(no global lock, no hot row, no retry storm): target <= 1.15 x the one-process cost (the shared
machine's noise between runs is about that).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

from benchmarks.burst import channel_of
from benchmarks.common import EXAMPLE_AGREEMENT, ROOT, Row, free_port
from benchmarks.intake import TOKEN, _fire, cpu_seconds, server
from storage.tables import OutboxMessage
from tests.support.postgres import throwaway_postgres

TOLERANCE = 1.15
IDLE_WINDOW = 3.0
CHANNELS = 100


@contextmanager
def fake_slack() -> Iterator[str]:
    """The fake Slack in its own process; yields its API base URL."""
    process = subprocess.Popen([sys.executable, "-m", "tests.fakes.slack_api", "--port", "0"], cwd=ROOT,
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    try:
        if not url:
            raise RuntimeError("the fake Slack did not start")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def fake_stats(api_url: str) -> dict[str, Any]:
    with urllib.request.urlopen(api_url.removesuffix("/api/") + "/_fake/stats", timeout=10) as response:
        stats: dict[str, Any] = json.loads(response.read())
        return stats


def environment(db_url: str, slack_url: str, agreement: Path) -> dict[str, str]:
    return {"DATABASE_URL": db_url, "SLABOT_AGREEMENT": str(agreement), "SLABOT_INTAKE_TOKEN": TOKEN,
            "SLACK_BOT_TOKEN": "xoxb-bench", "SLACK_SIGNING_SECRET": "bench-signing-secret",
            "SLACK_API_URL": slack_url, "SLABOT_LOG_LEVEL": "WARNING"}


def queued_cards(db_url: str) -> dict[str, int]:
    """Cards queued per channel (the outbox holds one row per card, sent or not)."""
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as connection:
            table = OutboxMessage.__table__   # type: ignore[attr-defined]
            rows = connection.execute(sa.select(table.c.target, sa.func.count()).where(table.c.kind == "card")
                                      .group_by(table.c.target)).all()
    finally:
        engine.dispose()
    return {str(target): int(n) for target, n in rows}


async def _spread(urls: list[str], leads: int, prefix: str) -> tuple[int, int]:
    """`leads` handoffs over `urls` (an equal share each, over 64 connections to each: a replica
    added is a replica as busy, so each one's group commit sees batches as large as one alone
    would), each lead's campaign routing it to one of the CHANNELS teams: (answered, errors)."""
    share = leads // len(urls)

    def campaign(i: int) -> dict[str, Any]:
        return {"campaign": f"t{i % CHANNELS}"}

    runs = [_fire(url, 20000 / len(urls), share / (20000 / len(urls)), f"{prefix}-{n}", 64, campaign)
            for n, url in enumerate(urls)]
    done = await asyncio.gather(*runs)
    return sum(len(lat) for lat, _ in done), sum(errors for _, errors in done)


def write_agreement(path: Path) -> Path:
    """The example agreement with CHANNELS teams, each in its own channel and routed by `campaign:
    t{i}` (benchmarks.burst's): Slack takes about a post per second per channel, so the cards of a
    few thousand leads are delivered in under a minute."""
    data: dict[str, Any] = yaml.safe_load(EXAMPLE_AGREEMENT.read_text())
    teams = []
    for i in range(CHANNELS):
        reps = [{"key": f"r{i}{s}", "name": f"Rep {i}{s}", "slack": f"U0R{i:03d}{s.upper()}0",
                 "capacity_per_week": 100000} for s in ("a", "b")[: 1 + i % 2]]
        teams.append({"key": f"t{i}", "name": f"Team {i}", "channel": {"slack": channel_of(i)},
                      "manager": {"name": f"Manager {i}", "slack": f"U0M{i:03d}000"}, "reps": reps})
    data["teams"] = teams
    data["routing"]["rules"] = [{"when": {"campaign": f"t{i}"}, "team": f"t{i}"} for i in range(CHANNELS)]
    data["routing"]["rules"].append({"team": "t0"})
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def one_configuration(web: int, leads: int) -> dict[str, Any]:
    with (tempfile.TemporaryDirectory() as tmp, throwaway_postgres() as db_url, fake_slack() as slack_url,
          ExitStack() as stack):
        env = environment(db_url, slack_url, write_agreement(Path(tmp) / "agreement.yaml"))
        upgrade = subprocess.run([sys.executable, "-m", "bot.cli", "db", "upgrade"], cwd=ROOT,
                                 env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
        if upgrade.returncode != 0:
            raise RuntimeError(f"db upgrade failed: {upgrade.stderr[-2000:]}")
        servers = []
        for _ in range(web):
            port = free_port()
            servers.append(stack.enter_context(server(
                [sys.executable, "-m", "bot.cli", "serve", "--no-scheduler", "--port", str(port)], env, port,
                pin=False)))
        worker = subprocess.Popen([sys.executable, "-m", "bot.cli", "worker"], cwd=ROOT, env={**os.environ, **env},
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stack.callback(worker.wait, timeout=10)
        stack.callback(worker.terminate)
        urls = [url for url, _ in servers]
        asyncio.run(_spread(urls, 100 * web, "warm"))
        idle = sum(cpu_seconds(pid) for _, pid in servers)
        time.sleep(IDLE_WINDOW)        # what the web processes burn doing nothing, for the record
        cpu = sum(cpu_seconds(pid) for _, pid in servers)
        idle = (cpu - idle) / IDLE_WINDOW
        started = time.perf_counter()
        answered, errors = asyncio.run(_spread(urls, leads, "lead"))
        elapsed = time.perf_counter() - started
        cpu = sum(cpu_seconds(pid) for _, pid in servers) - cpu
        expected = queued_cards(db_url)
        deadline = time.monotonic() + 300
        while True:
            stats = fake_stats(slack_url)
            posted: dict[str, int] = stats["per_channel"]
            if all(posted.get(ch, 0) >= n for ch, n in expected.items()) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        time.sleep(1.0)   # a late duplicate would show up now
        stats = fake_stats(slack_url)
        posted = stats["per_channel"]
        lost = sum(max(0, n - posted.get(ch, 0)) for ch, n in expected.items())
        duplicates = int(stats["duplicate_posts"]) + sum(max(0, posted.get(ch, 0) - n) for ch, n in expected.items())
        return {"web": web, "rate": answered / elapsed, "idle": idle, "cpu_per_1000": cpu / max(1, answered) * 1000,
                "answered": answered, "errors": errors, "cards": sum(expected.values()), "lost": lost,
                "duplicates": duplicates}


def run(quick: bool = False) -> list[Row]:
    leads = 1000 if quick else 4000
    one = one_configuration(1, leads)
    two = one_configuration(2, leads)
    rows = []
    for result in (one, two):
        rows.append(Row(f"scale-out on PostgreSQL: {result['web']} web process(es) + 1 worker",
                        f"{result['rate']:.0f} leads/s, web CPU {result['cpu_per_1000']:.2f} s per 1,000 leads "
                        f"(idle, the web processes burn {result['idle']:.3f} CPU s/s); "
                        f"{result['answered']} answered, {result['errors']} errors; {result['cards']} cards, "
                        f"{result['lost']} lost, {result['duplicates']} duplicates",
                        "0 errors, 0 lost, 0 duplicates",
                        result["errors"] == 0 and result["lost"] == 0 and result["duplicates"] == 0
                        and result["answered"] == leads))
    ratio = two["cpu_per_1000"] / one["cpu_per_1000"]
    rows.append(Row("scale-out: web CPU per lead, 2 processes vs 1", f"{ratio:.2f}x "
                    f"({two['cpu_per_1000']:.2f} vs {one['cpu_per_1000']:.2f} s per 1,000 leads)",
                    f"<= {TOLERANCE:.2f}x (does not rise)", ratio <= TOLERANCE))
    return rows


if __name__ == "__main__":
    from benchmarks.common import table

    print(table(run(quick="--quick" in sys.argv)))
