"""Button-click acknowledgement latency: signed Slack `block_actions` at 50 concurrent clicks.

`slabot serve --no-scheduler` runs in its own process (SQLite, the example agreement, Slack
enabled with its Web API pointed at an in-process FakeSlack). Leads are handed off through the
API; then each lead's owner clicks Claim on its card and, in a second round, Log call (the
payloads carry the card version, as the real buttons do). Clicks go out open loop in batches of
CONCURRENCY simultaneous requests every INTERVAL seconds, on CONCURRENCY keep-alive connections
(pre-signed, so the load generator does little per request); a click's latency runs from its
batch's scheduled send time to its HTTP response (Slack's "ack"), so a server falling behind
cannot hide its queueing. Every click must be answered 200 and, once the server has caught up,
recorded on its lead (claimed, then one call logged).

Two payloads, on different leads of the same server: as Slack really sends a click on a message
button (with `message`, the whole card the button is on, rendered by bot.slack, and `state`), and
the minimal shape of tests/e2e (bolt-python's fixture without `message`). For scale, the same
batches of GET /healthz (no work at all) give the floor that HTTP and the load generator put
under every number.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sqlite3
import tempfile
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp

from benchmarks.common import EXAMPLE_AGREEMENT, EXAMPLE_LEAD, Row, percentile, serve
from benchmarks.memory import APP_ID, SIGNING_SECRET, TEAM_ID, OtherLoad, cpu_seconds, server_pid, signed
from bot.presentation.presenters import lead_card
from bot.slack.render import card_blocks, card_text
from commands.context import Context
from sla.agreement import Agreement, load_agreement
from sla.clock import SystemClock
from storage.db import Database
from storage.tables import Lead
from tests.fakes.slack_api import FakeSlack

TOKEN = "bench-token-of-at-least-32-characters"   # serve refuses shorter ones
CONCURRENCY = 50
INTERVAL = 0.5
TARGET_MS = 100.0


@dataclass(frozen=True)
class Card:
    lead_id: int
    user: str          # the owner's Slack id
    channel: str


def block_action(card: Card, action: str, version: int, n: int, message: dict[str, Any] | None = None) -> bytes:
    """One button click as Slack posts it (the shape of bolt-python's block_actions fixture). With
    `message`, also the message the button is on and the (empty) block state, as Slack really
    sends for a button on a message."""
    message_ts = f"1795000000.{card.lead_id:06d}"
    action_ts = f"{time.time():.6f}"
    body: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": card.user, "username": card.user.lower(), "name": card.user.lower(), "team_id": TEAM_ID},
        "api_app_id": APP_ID, "token": "verification_token",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": card.channel,
                      "is_ephemeral": False},
        "trigger_id": f"{int(time.time())}.{n}.trigger",
        "team": {"id": TEAM_ID, "domain": "acme"},
        "channel": {"id": card.channel, "name": "leads"},
        "response_url": f"https://hooks.slack.com/actions/{TEAM_ID}/{n}/bench",
        "actions": [{
            "action_id": f"lead.{action}", "block_id": "lead", "type": "button",
            "text": {"type": "plain_text", "text": "Button", "emoji": True},
            "value": json.dumps({"a": action, "lead": card.lead_id, "v": version}, separators=(",", ":")),
            "action_ts": action_ts,
        }],
    }
    if message is not None:
        body["message"] = {**message, "ts": message_ts}
        body["state"] = {"values": {}}
    return urlencode({"payload": json.dumps(body)}).encode()


def card_message(db_path: Path, agreement: Agreement, lead_id: int) -> dict[str, Any]:
    """The lead's card message as Slack would hold it (rendered by bot.slack from the database)."""
    db = Database(f"sqlite:///{db_path}")
    ctx = Context(db=db, agreement=agreement, clock=SystemClock(), platforms=("slack",))
    with db.read() as session:
        lead = session.get(Lead, lead_id)
    db.dispose()
    assert lead is not None
    card = lead_card(ctx, lead)
    return {"type": "message", "subtype": "bot_message", "text": card_text(card), "user": "UBOT00001",
            "bot_id": "B0BOT0001", "app_id": APP_ID, "team": TEAM_ID, "blocks": card_blocks(card)}


async def handoff(url: str, count: int, slack_ids: dict[str, str], channels: dict[str, str]) -> list[Card]:
    template: dict[str, Any] = json.loads(EXAMPLE_LEAD.read_text())
    cards: list[Card] = []
    connector = aiohttp.TCPConnector(limit=8)
    async with aiohttp.ClientSession(base_url=url, connector=connector,
                                     headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        async def one(i: int) -> None:
            lead = {**template, "external_id": f"click-{i}"}
            async with client.post("/api/v1/leads", json=lead) as response:
                body = await response.json()
                if response.status != 201:
                    raise RuntimeError(f"handoff failed: {response.status} {body}")
                cards.append(Card(int(body["id"]), slack_ids[body["rep"]], channels[body["team"]]))

        for start in range(0, count, 8):
            await asyncio.gather(*(one(i) for i in range(start, min(count, start + 8))))
    return sorted(cards, key=lambda c: c.lead_id)


async def fire(url: str, clicks: list[bytes] | None, *, batches: int = 0) -> tuple[list[float], int]:
    """Open-loop batches of CONCURRENCY clicks; latency from each batch's scheduled start.
    `clicks=None`: `batches` batches of GET /healthz instead (the floor of HTTP + load generator)."""
    prepared = [(body, signed(body)) for body in clicks] if clicks is not None else \
        [(b"", {})] * (batches * CONCURRENCY)
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=CONCURRENCY, force_close=False)
    async with aiohttp.ClientSession(base_url=url, connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=30)) as client:
        # Open the keep-alive connections first (connection setup is not part of an ack).
        async def ping() -> None:
            async with client.get("/healthz") as response:
                await response.read()
        await asyncio.gather(*(ping() for _ in range(CONCURRENCY)))

        async def one(body: bytes, headers: dict[str, str], scheduled: float) -> None:
            nonlocal errors
            request = client.post("/slack/events", data=body, headers=headers) if clicks is not None else \
                client.get("/healthz")
            async with request as response:
                await response.read()
                latencies.append(time.perf_counter() - scheduled)
                if response.status != 200:
                    errors += 1

        async def batch(items: list[tuple[bytes, dict[str, str]]], scheduled: float) -> None:
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await asyncio.gather(*(one(b, h, scheduled) for b, h in items))

        start = time.perf_counter() + 0.05
        groups = [prepared[i:i + CONCURRENCY] for i in range(0, len(prepared), CONCURRENCY)]
        # The load generator's own garbage collection would stall it for tens of ms (a full
        # collection of this process's heap) and show up as server latency: not while timing.
        gc.collect()
        gc.disable()
        try:
            await asyncio.gather(*(batch(items, start + k * INTERVAL) for k, items in enumerate(groups)))
        finally:
            gc.enable()
    return latencies, errors


def recorded(db_path: Path, cards: list[Card], timeout: float = 30.0) -> tuple[int, float]:
    """How many leads show both clicks (claimed and one call logged), waiting for the server."""
    ids = ",".join(str(c.lead_id) for c in cards)
    started = time.perf_counter()
    done = 0
    while time.perf_counter() - started < timeout:
        with closing(sqlite3.connect(db_path)) as connection:
            done = int(connection.execute(
                f"SELECT count(*) FROM lead WHERE id IN ({ids}) AND claimed_at IS NOT NULL AND calls = 1 "
                "AND state = 'working'").fetchone()[0])
        if done == len(cards):
            break
        time.sleep(0.1)
    return done, time.perf_counter() - started


@dataclass(frozen=True)
class Measured:
    latencies: list[float]
    errors: int
    sent: float          # seconds to send every click
    done: int            # leads showing both clicks
    waited: float        # seconds from the last ack until they all did
    cpu_ms: float        # server CPU per click
    api_calls: int
    note: str


def measure(url: str, pid: int, fake: FakeSlack, db_path: Path, timed: list[Card],
            message: dict[str, Any] | None) -> Measured:
    clicks = [block_action(c, "claim", 1, i, message) for i, c in enumerate(timed)]
    clicks += [block_action(c, "log_call", 2, len(timed) + i, message) for i, c in enumerate(timed)]
    load, calls = OtherLoad(), fake.stats()["calls"]
    started, cpu = time.perf_counter(), cpu_seconds(pid)
    latencies, errors = asyncio.run(fire(url, clicks))
    sent = time.perf_counter() - started
    done, waited = recorded(db_path, timed)
    cpu_ms = (cpu_seconds(pid) - cpu) / len(clicks) * 1000
    return Measured(latencies, errors, sent, done, waited, cpu_ms, fake.stats()["calls"] - calls, load.note())


def run(quick: bool = False) -> list[Row]:
    total = 200 if quick else 1000
    per = total // 2                      # leads per variant: each gets a claim and a call
    agreement = load_agreement(EXAMPLE_AGREEMENT)
    slack_ids = {r.key: r.slack or "" for r in agreement.all_reps()}
    channels = {t.key: t.channel.slack or "" for t in agreement.teams}
    with tempfile.TemporaryDirectory() as tmp, FakeSlack() as fake:
        db_path = Path(tmp) / "clicks.db"
        env = {"DATABASE_URL": f"sqlite:///{db_path}", "SLABOT_AGREEMENT": str(EXAMPLE_AGREEMENT),
               "SLABOT_INTAKE_TOKEN": TOKEN, "SLACK_BOT_TOKEN": "xoxb-bench",
               "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": fake.base_url}
        with serve(env, "--no-scheduler") as url:
            pid = server_pid(url)
            asyncio.run(fire(url, None, batches=2))          # warm-up
            floor, _ = asyncio.run(fire(url, None, batches=6))
            cards = asyncio.run(handoff(url, 2 * per + CONCURRENCY, slack_ids, channels))
            message = card_message(db_path, agreement, cards[0].lead_id)
            warm, full, minimal = cards[:CONCURRENCY], cards[CONCURRENCY:CONCURRENCY + per], cards[CONCURRENCY + per:]
            # Warm-up: one batch of each action on other leads (first-use imports, caches).
            asyncio.run(fire(url, [block_action(c, "claim", 1, i, message) for i, c in enumerate(warm)]))
            time.sleep(0.5)              # let the warm claims land before their calls
            asyncio.run(fire(url, [block_action(c, "log_call", 2, i, message) for i, c in enumerate(warm)]))
            results = {
                "as Slack sends it": measure(url, pid, fake, db_path, full, message),
                "minimal, as in tests/e2e": measure(url, pid, fake, db_path, minimal, None),
            }
    size_full = len(block_action(cards[0], "claim", 1, 0, message))
    size_min = len(block_action(cards[0], "claim", 1, 0))
    rows = []
    for (label, m), size in zip(results.items(), (size_full, size_min), strict=True):
        p50, p99 = percentile(m.latencies, 0.5) * 1000, percentile(m.latencies, 0.99) * 1000
        ok = p99 < TARGET_MS and m.errors == 0 and m.done == per
        rows.append(Row(
            f"click ack, {CONCURRENCY} concurrent, payload {label} ({size / 1024:.1f} KB)",
            f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {max(m.latencies) * 1000:.1f} ms over {len(m.latencies)} "
            f"clicks (batches every {INTERVAL:g} s, {m.sent:.1f} s); {m.errors} errors; {m.done}/{per} leads "
            f"claimed+called ({m.waited:.1f} s after the last ack); server CPU {m.cpu_ms:.1f} ms/click; "
            f"{m.api_calls} Slack API calls; same batches of GET /healthz: p99 "
            f"{percentile(floor, 0.99) * 1000:.1f} ms{m.note}",
            f"p99 < {TARGET_MS:.0f} ms", ok))
    return rows
