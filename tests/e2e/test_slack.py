"""Slack end to end: the real app under uvicorn, signed Slack requests over real HTTP, the outbox worker
delivering to a fake Slack Web API on 127.0.0.1 (which records, rate-limits and fails on demand)."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlparse

import httpx
import jsonschema  # type: ignore[import-untyped]
import pytest
from referencing import Registry, Resource
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from sqlmodel import col, select

from bot.http.app import create_app
from bot.services import Services, build_services
from bot.slack.app import SlackIntegration
from bot.slack.transport import OUTBOX_EVENT, SlackTransport
from bot.worker.delivery import OutboxWorker, Posted
from commands.registry import COMMANDS
from manifests.slack import slack_manifest
from sla.agreement import Agreement
from sla.clock import FixedClock
from storage.db import Database
from storage.tables import ChannelBinding, InboundReceipt, Lead, MessageRef, OutboxMessage, RepStatus
from tests.conftest import EXAMPLE_LEAD, FIXTURES, INTAKE_TOKEN, T0, LiveServer, make_settings
from tests.e2e import slack_helpers as sh
from tests.fakes.slack_api import FakeSlack, SlackMessage

AUTH = {"Authorization": f"Bearer {INTAKE_TOKEN}"}
MID, SMB = "C0MID00001", "C0SMB00001"
EVE, FAY, ANA, BEN = "U0EVE00001", "U0FAY00001", "U0ANA00001", "U0BEN00001"
DIEGO, PRIYA, SAM = "U0DIEGO001", "U0PRIYA001", "U0SAM00001"


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    # Slack's message timestamps follow the domain clock (T0), so "messages since this row was
    # created" means the same thing to the fake and to the worker.
    with FakeSlack(ts_start=int(T0.timestamp())) as server:
        yield server


def slack_services(db: Database, agreement: Agreement, clock: FixedClock, fake: FakeSlack,
                   **overrides: Any) -> Services:
    settings = make_settings(database_url=db.url, slack_bot_token=sh.BOT_TOKEN,
                             slack_signing_secret=sh.SIGNING_SECRET, slack_api_url=fake.base_url, **overrides)
    return build_services(settings, clock=clock, agreement=agreement, db=db)


@pytest.fixture
def services(db: Database, agreement: Agreement, clock: FixedClock, fake: FakeSlack) -> Services:
    return slack_services(db, agreement, clock, fake)


class Slack:
    """The running app as Slack and Marketing see it: signed requests in, API calls at the fake."""

    def __init__(self, server: LiveServer, services: Services, fake: FakeSlack, app: Any) -> None:
        self.server = server
        self.integration: SlackIntegration = app.state.slack
        self.services = services
        self.fake = fake
        self.http = httpx.AsyncClient(base_url=server.url, timeout=10)

    async def handoff(self, **changes: Any) -> dict[str, Any]:
        body = json.loads(EXAMPLE_LEAD.read_text())
        body.update(changes)
        response = await self.http.post("/api/v1/leads", json=body, headers=AUTH)
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    async def post(self, body: bytes, content_type: str, **headers: Any) -> httpx.Response:
        return await self.http.post("/slack/events", content=body,
                                    headers=sh.signed_headers(body, content_type=content_type, **headers))

    async def click(self, user: str, message: SlackMessage, action_id: str, *, value: str | None = None,
                    option: Callable[[dict[str, Any]], bool] | None = None) -> httpx.Response:
        """Click a button (or pick a select option) of the card as it is now in the channel."""
        element = element_of(message, action_id)
        if option is not None:
            chosen = next(o for o in element["options"] if option(json.loads(o["value"])))
            body = sh.block_action(user=user, channel=message.channel, message_ts=message.ts,
                                   action_id=action_id, selected=chosen["value"])
        else:
            body = sh.block_action(user=user, channel=message.channel, message_ts=message.ts,
                                   action_id=action_id, value=value or element["value"])
        response = await self.post(body, sh.FORM)
        assert response.status_code == 200, response.text
        return response

    async def command(self, user: str, text: str, channel: str = "C0CMD00001") -> dict[str, Any]:
        response = await self.post(sh.slash_command(user=user, channel=channel, text=text), sh.FORM)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def lead(self, lead_id: int) -> Lead:
        with self.services.ctx.db.read() as session:
            lead = session.get(Lead, lead_id)
        assert lead is not None
        return lead

    def outbox(self, **where: Any) -> list[OutboxMessage]:
        with self.services.ctx.db.read() as session:
            query = select(OutboxMessage).order_by(col(OutboxMessage.id))
            for key, value in where.items():
                query = query.where(getattr(OutboxMessage, key) == value)
            return list(session.execute(query).scalars())

    def ref(self, lead_id: int) -> MessageRef | None:
        with self.services.ctx.db.read() as session:
            return session.execute(select(MessageRef).where(col(MessageRef.lead_id) == lead_id)).scalars().first()


async def eventually(check: Callable[[], Any], within: float = 6.0) -> Any:
    """Poll until `check()` is truthy (clicks are processed after their acknowledgement)."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(0.02)


@pytest.fixture
async def slack(services: Services, fake: FakeSlack) -> AsyncIterator[Slack]:
    """The app with its outbox worker running, as in production."""
    app = create_app(services, run_worker=True)
    # Slack's 1 post/s/channel pacing also spaces the updates of one card; these tests click fast
    # and are about behaviour, not pacing (the 429 test below runs with the real interval).
    transport = services.transports["slack"]
    assert isinstance(transport, SlackTransport)
    transport.post_interval = 0.05
    with LiveServer(app) as server:
        client = Slack(server, services, fake, app)
        yield client
        await client.http.aclose()


@pytest.fixture
async def slack_manual(services: Services, fake: FakeSlack) -> AsyncIterator[Slack]:
    """The app without a worker: the test delivers the outbox itself."""
    app = create_app(services)
    with LiveServer(app) as server:
        client = Slack(server, services, fake, app)
        yield client
        await client.http.aclose()


def actions_block(message: SlackMessage) -> dict[str, Any] | None:
    return next((b for b in message.blocks or [] if b["type"] == "actions"), None)


def action_ids(message: SlackMessage) -> list[str]:
    block = actions_block(message)
    return [e["action_id"] for e in block["elements"]] if block else []


def element_of(message: SlackMessage, action_id: str) -> dict[str, Any]:
    block = actions_block(message)
    assert block is not None, "the card has no buttons"
    return next(e for e in block["elements"] if e["action_id"] == action_id)


def card_text(message: SlackMessage) -> str:
    return json.dumps(message.blocks, ensure_ascii=False)


def current(fake: FakeSlack, channel: str, ts: str) -> SlackMessage:
    message = fake.message(channel, ts)
    assert message is not None
    return message


async def posted_card(slack: Slack, channel: str, count: int = 1) -> SlackMessage:
    posts = await eventually(lambda: len(slack.fake.posts(channel)) >= count and slack.fake.posts(channel))
    return current(slack.fake, channel, posts[count - 1].ts)


async def edited(slack: Slack, message: SlackMessage, edits: int) -> SlackMessage:
    """The card once it has been updated `edits` times in all."""
    found: SlackMessage = await eventually(
        lambda: (m := slack.fake.message(message.channel, message.ts)) is not None and m.edits >= edits and m)
    return found


# --- the card ------------------------------------------------------------------------------


async def test_handoff_posts_one_card_with_blocks_metadata_and_reference(slack: Slack) -> None:
    lead = await slack.handoff()
    assert lead["team"] == "midmarket" and lead["rep"] == "eve"
    card = await posted_card(slack, MID)
    assert len(slack.fake.posts()) == 1 and slack.fake.stats()["duplicate_posts"] == 0
    row = slack.outbox(kind="card")[0]
    assert card.metadata == {"event_type": OUTBOX_EVENT,
                             "event_payload": {"outbox_id": row.id, "lead_id": lead["id"]}}
    text = card_text(card)
    assert "*Jane Doe*" in text and "VP Operations · Globex" in text
    assert "New: waiting to be claimed" in text and f"<@{EVE}>" in text
    assert "<https://crm.example/contacts/90210|Open in CRM>" in text
    assert "2,400 employees" in text and "Tue Nov 24, 10:15 EST" in text
    assert action_ids(card) == ["lead.claim", "lead.log_call", "lead.log_email", "lead.connected",
                                "lead.qualify", "lead.disqualify", "lead.recycle", "lead.reassign"]
    assert json.loads(element_of(card, "lead.claim")["value"]) == {"a": "claim", "lead": lead["id"], "v": 1}
    assert card.text.startswith("Lead Jane Doe")
    ref = await eventually(lambda: slack.ref(lead["id"]))
    assert (ref.channel, ref.message_id) == (MID, card.ts)
    assert slack.lead(lead["id"]).card_posted_at is not None
    # Lead e-mails and phone numbers never reach chat.
    assert "jane.doe@globex.example" not in text and "555 0100" not in text


async def test_lead_text_cannot_mention_or_link(slack: Slack) -> None:
    lead = await slack.handoff(external_id="evil-1", first_name="<!channel>", last_name="<@U0SAM00001>",
                               company="<https://evil.example|click me> & co", employees=200)
    card = await posted_card(slack, SMB)
    text = card_text(card) + card.text
    assert "<!channel>" not in text and "<@U0SAM00001>" not in text and "<https://evil" not in text
    assert "&lt;!channel&gt;" in text and "&amp; co" in text
    assert f"<@{ANA}>" in text   # the only mention is the owner's, made from the agreement's Slack id
    assert lead["rep"] == "ana"


# --- buttons -------------------------------------------------------------------------------


async def test_owner_works_a_lead_with_buttons_and_disqualifies_by_select(slack: Slack) -> None:
    lead = await slack.handoff()
    card = await posted_card(slack, MID)

    await slack.click(EVE, card, "lead.claim")
    card = await edited(slack, card, 1)
    assert "Claimed" in card_text(card)
    assert action_ids(card) == ["lead.log_call", "lead.log_email", "lead.connected", "lead.qualify",
                                "lead.disqualify", "lead.recycle", "lead.reassign"]
    assert json.loads(element_of(card, "lead.log_call")["value"])["v"] == 2

    await slack.click(EVE, card, "lead.log_call")
    card = await edited(slack, card, 2)
    assert "1 of 6 within 5 business days" in card_text(card) and "Working" in card_text(card)

    await slack.click(EVE, card, "lead.connected")
    card = await edited(slack, card, 3)
    assert "2 of 6 within 5 business days" in card_text(card) and "Connected" in card_text(card)
    assert slack.lead(lead["id"]).connects == 1

    await slack.click(EVE, card, "lead.disqualify", option=lambda p: p.get("reason") == "no_budget")
    card = await edited(slack, card, 4)
    stored = slack.lead(lead["id"])
    assert stored.state == "disqualified" and stored.disqualify_reason == "no_budget" and not stored.is_open
    assert "Disqualified" in card_text(card) and action_ids(card) == []
    assert "No budget" in card_text(card) and "no_budget" not in card_text(card)   # words, not keys
    # One post, every change an in-place update of that same message; nobody was told "no".
    assert len(slack.fake.posts()) == 1 and slack.fake.stats()["updates"] == 4
    assert slack.fake.ephemerals == []


async def test_opportunity_through_the_amount_modal(slack: Slack) -> None:
    lead = await slack.handoff()
    card = await posted_card(slack, MID)
    await slack.click(EVE, card, "lead.claim")
    card = await edited(slack, card, 1)

    await slack.click(EVE, card, "lead.qualify")
    view = (await eventually(lambda: slack.fake.views)).pop()
    assert view.method == "views.open" and view.view["callback_id"] == "lead.qualify.amount"
    assert "Jane Doe" in json.dumps(view.view["blocks"])
    metadata = view.view["private_metadata"]
    assert json.loads(metadata) == {"a": "qualify", "lead": lead["id"], "v": 2, "channel": MID}
    assert slack.lead(lead["id"]).state == "claimed"   # nothing recorded until the form is sent

    bad = await slack.post(sh.view_submission(user=EVE, private_metadata=metadata, amount="lots"), sh.FORM)
    assert bad.status_code == 200
    assert bad.json() == {"response_action": "errors", "errors": {"amount": "Enter a number, like 25000."}}
    assert slack.lead(lead["id"]).state == "claimed"

    for nonsense in ("nan", "1e400", "-5"):
        refused = await slack.post(sh.view_submission(user=EVE, private_metadata=metadata, amount=nonsense),
                                   sh.FORM)
        assert refused.json()["response_action"] == "errors", nonsense
    assert slack.lead(lead["id"]).state == "claimed"

    ok = await slack.post(sh.view_submission(user=EVE, private_metadata=metadata, amount="25000.5"), sh.FORM)
    assert ok.status_code == 200 and ok.text == ""
    card = await edited(slack, card, 2)
    stored = slack.lead(lead["id"])
    assert stored.state == "qualified" and stored.opportunity_amount == 25000.5
    assert "Opportunity" in card_text(card) and "25,000" in card_text(card) and action_ids(card) == []


async def test_a_failed_action_is_reported_not_swallowed(slack: Slack, monkeypatch: pytest.MonkeyPatch) -> None:
    lead = await slack.handoff()
    card = await posted_card(slack, MID)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("database unavailable")

    monkeypatch.setattr("commands.interaction.perform", broken)
    await slack.click(EVE, card, "lead.claim")
    note = await eventually(lambda: slack.fake.ephemerals)
    assert note[0].user == EVE and "nothing was recorded" in note[0].text
    assert slack.lead(lead["id"]).state == "routed"


async def test_a_click_is_acknowledged_before_the_action_runs(slack: Slack, monkeypatch: pytest.MonkeyPatch) -> None:
    # Slack retries any interaction not acknowledged within 3 s: the 200 may not wait for the work.
    from commands.actions import perform as real

    lead = await slack.handoff()
    card = await posted_card(slack, MID)
    entered, release = threading.Event(), threading.Event()

    def held(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        assert release.wait(30), "the test never released the action"
        return real(*args, **kwargs)

    monkeypatch.setattr("commands.interaction.perform", held)
    try:
        await slack.click(EVE, card, "lead.claim")     # answered while the action is still held
        await eventually(entered.is_set)
        assert slack.lead(lead["id"]).state == "routed"
    finally:
        release.set()
    await eventually(lambda: slack.lead(lead["id"]).state == "claimed")


async def test_click_by_someone_else_changes_nothing_and_is_told_why(slack: Slack) -> None:
    lead = await slack.handoff()
    card = await posted_card(slack, MID)
    await slack.click(FAY, card, "lead.claim")   # a teammate, not the owner
    note = await eventually(lambda: slack.fake.ephemerals)
    assert note[0].user == FAY and note[0].channel == MID
    assert "Only the lead's owner or the team's manager" in note[0].text
    stored = slack.lead(lead["id"])
    assert stored.state == "routed" and stored.version == 1 and stored.claimed_at is None
    # The opportunity form is not even offered to someone who may not use it.
    await slack.click(BEN, card, "lead.qualify", value=json.dumps({"a": "qualify", "lead": lead["id"], "v": 1}))
    await eventually(lambda: len(slack.fake.ephemerals) == 2)
    assert slack.fake.views == []
    # A card refresh would have been queued with the refusal, in the same transaction: once the outbox
    # is drained, nothing more can come.
    await eventually(lambda: all(row.status == "done" for row in slack.outbox()))
    assert slack.fake.stats()["updates"] == 0 and slack.lead(lead["id"]).version == 1


async def test_stale_card_click_is_refused_and_the_card_refreshed(slack: Slack) -> None:
    lead = await slack.handoff()
    card = await posted_card(slack, MID)
    await slack.click(EVE, card, "lead.claim")
    await edited(slack, card, 1)
    # A second copy of the card, still at version 1, offers "Log call" with the old version.
    stale = json.dumps({"a": "log_call", "lead": lead["id"], "v": 1})
    await slack.click(EVE, card, "lead.claim", value=stale)
    note = await eventually(lambda: slack.fake.ephemerals)
    assert "out of date" in note[0].text and note[0].user == EVE
    refreshed = await edited(slack, card, 2)
    assert slack.lead(lead["id"]).attempts == 0
    assert json.loads(element_of(refreshed, "lead.log_call")["value"])["v"] == 2
    # A double click on Claim is harmless too.
    await slack.click(EVE, card, "lead.claim", value=json.dumps({"a": "claim", "lead": lead["id"], "v": 2}))
    await eventually(lambda: len(slack.fake.ephemerals) == 2)
    assert "already claimed" in slack.fake.ephemerals[1].text
    assert slack.lead(lead["id"]).version == 2 and len(slack.fake.posts(MID)) == 1


async def test_manager_reassigns_with_the_select(slack: Slack) -> None:
    lead = await slack.handoff()
    card = await posted_card(slack, MID)
    options = [json.loads(o["value"]) for o in element_of(card, "lead.reassign")["options"]]
    assert [o.get("to") for o in options] == ["", "fay"]   # "next available", then the other reps

    await slack.click(FAY, card, "lead.reassign", option=lambda p: p.get("to") == "fay")
    await eventually(lambda: slack.fake.ephemerals)
    assert "Only the team's manager can reassign" in slack.fake.ephemerals[0].text
    assert slack.lead(lead["id"]).owner == "eve"

    await slack.click(DIEGO, card, "lead.reassign", option=lambda p: p.get("to") == "fay")
    card = await edited(slack, card, 1)
    assert slack.lead(lead["id"]).owner == "fay" and f"<@{FAY}>" in card_text(card)
    dm_channel = await eventually(lambda: slack.fake.dms.get(FAY))
    dm = await eventually(lambda: slack.fake.posts(dm_channel))
    assert "is now yours" in dm[0].text and dm[0].metadata["event_type"] == OUTBOX_EVENT


async def test_clicking_user_matched_by_email(slack: Slack) -> None:
    """Someone whose Slack id the agreement does not list is matched by the e-mail Slack reports."""
    slack.fake.users["U0EVE99999"] = {"email": "EVE@acme.example", "name": "eve2"}
    lead = await slack.handoff()
    card = await posted_card(slack, MID)
    await slack.click("U0EVE99999", card, "lead.claim")
    await edited(slack, card, 1)
    assert slack.lead(lead["id"]).state == "claimed"
    assert len(slack.fake.calls_to("users.info")) == 1
    await slack.click("U0EVE99999", current(slack.fake, MID, card.ts), "lead.log_email")
    await edited(slack, card, 2)
    assert len(slack.fake.calls_to("users.info")) == 1   # remembered, not looked up again


async def test_users_without_an_email_are_asked_about_again_a_day_later(slack: Slack, clock: FixedClock) -> None:
    lead = await slack.handoff()
    card = await posted_card(slack, MID)
    for clicks in (1, 2):
        await slack.click("U0STRANGER", card, "lead.claim")
        await eventually(lambda n=clicks: len(slack.fake.ephemerals) == n)   # type: ignore[misc]
    assert len(slack.fake.calls_to("users.info")) == 1   # user_not_found is remembered ...
    slack.fake.users["U0STRANGER"] = {"email": "eve@acme.example"}
    clock.advance(timedelta(days=2))                      # ... for a day
    await slack.click("U0STRANGER", card, "lead.claim")
    await eventually(lambda: slack.lead(lead["id"]).state == "claimed")
    assert len(slack.fake.calls_to("users.info")) == 2


# --- delivery: rate limits, errors, crashes ------------------------------------------------


def accepted_posts(fake: FakeSlack) -> list[Any]:
    return [c for c in fake.calls_to("chat.postMessage") if c.status == 200 and c.error is None]


async def test_429_storm_paces_per_channel_loses_and_duplicates_nothing(slack_manual: Slack) -> None:
    slack, fake = slack_manual, slack_manual.fake
    ids = [(await slack.handoff(external_id=f"smb-{i}", employees=200))["id"] for i in range(3)]
    ids += [(await slack.handoff(external_id=f"mid-{i}"))["id"] for i in range(2)]
    fake.rate_limit_per_channel = 1.0
    fake.fail_next("chat.postMessage", status=429, retry_after=1)   # whichever channel posts first

    waits: list[float] = []

    async def sleep(seconds: float) -> None:   # the worker's pacing and Retry-After waits, recorded
        waits.append(seconds)
        await asyncio.sleep(seconds)

    worker = OutboxWorker(slack.services.ctx, slack.services.transports, worker_id="test", sleep=sleep)
    report = await worker.deliver_due()

    assert report.sent == 5 and report.dead == 0 and report.retried >= 1
    stats = fake.stats()
    assert stats["per_channel"] == {SMB: 3, MID: 2} and stats["duplicate_posts"] == 0
    assert stats["rejected_429"] >= 1
    assert all(slack.ref(i) is not None for i in ids)
    assert {row.status for row in slack.outbox()} == {"done"}
    by_channel: dict[str, list[float]] = {}
    for call in accepted_posts(fake):
        by_channel.setdefault(call.params["channel"], []).append(call.at)
    for times in by_channel.values():
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert all(gap >= 0.95 for gap in gaps), gaps
    # The rate-limited channel waited; the other one kept flowing meanwhile.
    limited = next(c.params["channel"] for c in fake.calls_to("chat.postMessage") if c.status == 429)
    other = SMB if limited == MID else MID
    assert by_channel[other][0] < by_channel[limited][0]
    # No wait longer than the platform asked for (one post a second, Retry-After: 1), and no more
    # waits than posts after the first of each lane plus the one retry: nothing idles needlessly.
    assert waits and max(waits) <= 1.0
    assert len(waits) <= report.sent - len(by_channel) + report.retried


@pytest.mark.parametrize("failure", [503, 0], ids=["http-503", "dropped-connection"])
async def test_server_error_then_success_posts_once(slack_manual: Slack, clock: FixedClock, failure: int) -> None:
    slack, fake = slack_manual, slack_manual.fake
    lead = await slack.handoff()
    fake.fail_next("chat.postMessage", status=failure)
    first = await slack.services.make_worker().deliver_due()
    assert first.sent == 0 and first.retried == 1 and fake.posts() == []
    row = slack.outbox(kind="card")[0]
    assert row.status == "pending" and row.next_attempt_at > T0   # backed off, not dropped

    clock.advance(timedelta(minutes=10))
    second = await slack.services.make_worker().deliver_due()
    assert second.sent == 1 and len(fake.posts()) == 1 and fake.stats()["duplicate_posts"] == 0
    # Before posting again the worker looked for an earlier post of this row (there was none).
    assert len(fake.calls_to("conversations.history")) == 1
    assert slack.ref(lead["id"]) is not None


async def test_dropped_connection_on_an_update_is_retried_inline(slack_manual: Slack) -> None:
    slack, fake = slack_manual, slack_manual.fake
    lead = await slack.handoff()
    await slack.services.make_worker().deliver_due()
    card = fake.posts(MID)[0]
    await slack.click(EVE, current(fake, MID, card.ts), "lead.claim")
    await eventually(lambda: slack.lead(lead["id"]).state == "claimed")
    fake.fail_next("chat.update", status=0)
    report = await slack.services.make_worker().deliver_due()
    assert report.updated == 1 and report.retried == 0
    assert current(fake, MID, card.ts).edits == 1


async def test_worker_reuses_one_connection_and_closes_it_when_it_stops(slack_manual: Slack) -> None:
    """Against slack.com every new connection is a TLS handshake: the cards of a burst go over the
    same kept-alive connection, and a stopping worker closes it."""
    slack, fake = slack_manual, slack_manual.fake
    transport = slack.services.transports["slack"]
    assert isinstance(transport, SlackTransport)
    transport.post_interval = 0.05
    for n in range(4):
        await slack.handoff(external_id=f"keepalive-{n}")
    worker = slack.services.make_worker()
    report = await worker.deliver_due()
    assert report.sent == 4 and len(fake.posts()) == 4
    assert fake.connections == (1, 1)
    await worker.stop()
    await eventually(lambda: fake.connections == (1, 0))


class Killed(BaseException):
    """The process dies: nothing after this line runs, no error handler either."""


class CrashAfterPost(OutboxWorker):
    """A worker that dies right after Slack accepted a post, before it records the message ref."""

    def __init__(self, *args: Any, hard: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hard = hard

    def _settle(self, row: OutboxMessage, posted: Posted | None, fixed_now: datetime | None) -> None:
        if posted is not None:
            raise Killed() if self.hard else RuntimeError("worker died before bookkeeping")
        super()._settle(row, posted, fixed_now)


@pytest.mark.parametrize("hard", [False, True], ids=["error-after-post", "killed-after-post"])
async def test_crash_after_post_recovers_the_message_instead_of_posting_again(
        slack_manual: Slack, clock: FixedClock, hard: bool) -> None:
    slack, fake = slack_manual, slack_manual.fake
    lead = await slack.handoff()
    crashing = CrashAfterPost(slack.services.ctx, slack.services.transports, hard=hard)
    if hard:
        with pytest.raises(Killed):
            await crashing.deliver_due()
    else:
        await crashing.deliver_due()
    assert len(fake.posts(MID)) == 1 and slack.ref(lead["id"]) is None
    row = slack.outbox(kind="card")[0]
    assert row.status == ("sending" if hard else "pending")

    if hard:   # a claim younger than its lease (storage.outbox.LEASE) still belongs to the (dead) worker
        clock.advance(timedelta(seconds=10))
        idle = await slack.services.make_worker().deliver_due()
        assert idle.sent == idle.recovered == 0
    clock.advance(timedelta(minutes=10))
    report = await slack.services.make_worker().deliver_due()

    assert report.recovered == 1 and report.sent == 0
    assert len(accepted_posts(fake)) == 1 and fake.stats()["duplicate_posts"] == 0
    ts = fake.posts(MID)[0].ts
    ref = slack.ref(lead["id"])
    assert ref is not None and (ref.channel, ref.message_id) == (MID, ts)
    updates = fake.calls_to("chat.update")
    assert [(c.params["channel"], c.params["ts"]) for c in updates] == [(MID, ts)]
    assert slack.outbox(kind="card")[0].status == "done"


async def test_transport_messages_dm_channel_ephemeral_digest(services: Services, fake: FakeSlack) -> None:
    create_app(services)
    transport = services.transports["slack"]
    assert isinstance(transport, SlackTransport) and transport.min_interval("card") == 1.0
    dm = await transport.send_message("dm", ANA, {"text": "Ping <!here> & go"}, outbox_id=101)
    assert dm is not None and dm.channel == fake.dms[ANA]
    sent = fake.posts(dm.channel)[0]
    assert sent.text == "Ping &lt;!here&gt; &amp; go" and sent.metadata is not None
    assert sent.metadata["event_payload"]["outbox_id"] == 101
    assert await transport.find_posted(ANA, outbox_id=101, since=T0) == dm
    assert await transport.find_posted(ANA, outbox_id=999, since=T0) is None

    await transport.send_message("channel", SMB, {"text": "hello team"}, outbox_id=102)
    assert fake.posts(SMB)[0].text == "hello team"
    assert await transport.send_message("ephemeral", SMB, {"text": "just you", "user": BEN},
                                        outbox_id=103) is None
    assert [(e.user, e.text) for e in fake.ephemerals] == [(BEN, "just you")]

    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
    digest = {"title": "SLA digest, Tue Nov 24", "text": "Digest", "to": "user", "chart_png_b64": png,
              "sections": [{"heading": "Marketing", "lines": ["112 workable of 200 <b>"]},
                           {"heading": "Sales", "lines": ["worked 93%"]}]}
    posted = await transport.send_message("digest", SAM, digest, outbox_id=104)
    assert posted is not None and posted.channel == fake.dms[SAM]
    blocks = json.dumps(fake.posts(posted.channel)[0].blocks)
    assert "SLA digest, Tue Nov 24" in blocks and "*Marketing*" in blocks and "&lt;b&gt;" in blocks
    files = list(fake.files.values())
    assert len(files) == 1 and files[0].filename == "workable-vs-goal.png"
    assert files[0].channels == [posted.channel] and files[0].content.startswith(b"\x89PNG")


async def test_people_known_only_by_email_get_their_direct_messages(services: Services, fake: FakeSlack,
                                                                    agreement: Agreement) -> None:
    """The contract matches people by `slack:` id, else by e-mail: a nudge to a manager the agreement
    names only by e-mail reaches them through users.lookupByEmail (looked up once)."""
    from bot.worker.delivery import TransportError
    from commands.context import dm_target

    create_app(services)
    transport = services.transports["slack"]
    manager = agreement.team("smb").manager  # type: ignore[union-attr]
    assert manager is not None
    by_email = manager.model_copy(update={"slack": None})
    target = dm_target(by_email, "slack")
    assert target == "email:priya@acme.example"
    fake.users[PRIYA] = {"email": "priya@acme.example", "name": "priya"}
    for outbox_id in (201, 202):
        sent = await transport.send_message("dm", target, {"text": "Lead X is late"}, outbox_id=outbox_id)
        assert sent is not None and sent.channel == fake.dms[PRIYA]
    assert len(fake.calls_to("users.lookupByEmail")) == 1
    with pytest.raises(TransportError) as unknown:
        await transport.send_message("dm", "email:nobody@acme.example", {"text": "x"}, outbox_id=203)
    assert unknown.value.permanent and "nobody@acme.example" not in str(unknown.value)


@pytest.mark.parametrize(("error", "permanent"), [("channel_not_found", True), ("not_in_channel", True),
                                                  ("is_archived", True), ("internal_error", False)])
async def test_transport_maps_slack_errors(services: Services, fake: FakeSlack, error: str,
                                           permanent: bool) -> None:
    from bot.worker.delivery import TransportError

    create_app(services)
    transport = services.transports["slack"]
    fake.fail_next("chat.postMessage", status=200, error=error)
    with pytest.raises(TransportError) as raised:
        await transport.send_message("channel", SMB, {"text": "x"}, outbox_id=1)
    assert raised.value.permanent is permanent and raised.value.retry_after is None
    fake.fail_next("chat.postMessage", status=429, retry_after=7)
    with pytest.raises(TransportError) as limited:
        await transport.send_message("channel", SMB, {"text": "x"}, outbox_id=2)
    assert limited.value.retry_after == 7.0 and not limited.value.permanent
    fake.revoke(sh.BOT_TOKEN)
    with pytest.raises(TransportError) as revoked:
        await transport.send_message("channel", SMB, {"text": "x"}, outbox_id=3)
    assert revoked.value.permanent and "xoxb" not in str(revoked.value)


# --- events --------------------------------------------------------------------------------


async def test_event_retry_with_the_same_event_id_runs_once(slack: Slack) -> None:
    body = sh.app_home_opened(user=ANA, event_id="Ev0RETRY01")
    first = await slack.post(body, sh.JSON)
    retry = await slack.post(body, sh.JSON, retry_num=1)
    assert first.status_code == retry.status_code == 200
    await eventually(lambda: slack.fake.calls_to("views.publish"))
    # A first delivery that happens to carry a retry header (its original never arrived) still runs.
    other = await slack.post(sh.app_home_opened(user=BEN, event_id="Ev0RETRY02"), sh.JSON, retry_num=2)
    assert other.status_code == 200
    await eventually(lambda: len(slack.fake.calls_to("views.publish")) == 2)
    await asyncio.sleep(0.3)
    assert [c.params["user_id"] for c in slack.fake.calls_to("views.publish")] == [ANA, BEN]
    with slack.services.ctx.db.read() as session:
        keys = sorted(r.key for r in session.execute(select(InboundReceipt)).scalars())
    assert keys == ["Ev0RETRY01", "Ev0RETRY02"]


async def test_app_home_shows_open_leads_and_the_month(slack: Slack) -> None:
    lead = await slack.handoff(employees=200)
    assert lead["rep"] == "ana"
    await slack.post(sh.app_home_opened(user=ANA, event_id="Ev0HOME001"), sh.JSON)
    view = await eventually(lambda: slack.fake.home_views.get(ANA))
    text = json.dumps(view, ensure_ascii=False)
    assert view["type"] == "home"
    assert "Your open leads (1)" in text and "Jane Doe" in text and "first touch due Tue Nov 24, 10:15 EST" in text
    assert "SLA status for Ana Ruiz" in text and "of 40 workable leads delivered" in text
    assert "New: waiting to be claimed" in text and "routed" not in text and "cohort" not in text.lower()
    # The messages tab does not republish; a stranger is told they are not in the agreement.
    await slack.post(sh.app_home_opened(user=ANA, event_id="Ev0HOME002", tab="messages"), sh.JSON)
    await slack.post(sh.app_home_opened(user="U0STRANGER", event_id="Ev0HOME003"), sh.JSON)
    stranger = await eventually(lambda: slack.fake.home_views.get("U0STRANGER"))
    assert "not in the SLA agreement" in json.dumps(stranger)
    assert len(slack.fake.calls_to("views.publish")) == 2


# --- /sla ----------------------------------------------------------------------------------


async def test_sla_help_and_unknown(slack: Slack) -> None:
    helped = await slack.command(ANA, "help")
    assert helped["response_type"] == "ephemeral"
    for spec in COMMANDS:
        assert f"/sla {spec.usage}" in helped["text"]
    unknown = await slack.command(ANA, "frobnicate now")
    assert unknown["text"].startswith("Unknown command “frobnicate”") and "/sla leads" in unknown["text"]
    empty = await slack.command(ANA, "")
    assert "/sla status" in empty["text"]


async def test_sla_status_words(slack: Slack) -> None:
    await slack.handoff()
    await slack.handoff(external_id="smb-1", employees=200)
    everyone = await slack.command(SAM, "status")
    assert "SLA status for everyone" in everyone["text"]
    assert "Marketing: 2 of 200 workable leads delivered" in everyone["text"]
    assert "Sales:" in everyone["text"] and "Open breaches: none" in everyone["text"]
    mine = await slack.command(ANA, "status me")
    assert "SLA status for Ana Ruiz" in mine["text"] and "1 of 40 workable leads delivered" in mine["text"]
    manager = await slack.command(PRIYA, "status me")
    assert "SLA status for SMB Inbound" in manager["text"]
    team = await slack.command(BEN, "status team smb")
    assert "SLA status for SMB Inbound" in team["text"] and "of 120 workable leads delivered" in team["text"]
    nope = await slack.command(BEN, "status team nope")
    assert "There is no team “nope”" in nope["text"] and "smb (SMB Inbound)" in nope["text"]
    stranger = await slack.command("U0STRANGER", "status me")
    assert "not in the SLA agreement" in stranger["text"]


async def test_sla_leads_away_back(slack: Slack) -> None:
    lead = await slack.handoff(employees=200, company="Acme <Labs>")
    leads = await slack.command(ANA, "leads")
    assert f"#{lead['id']} Jane Doe (Acme &lt;Labs&gt;)" in leads["text"]
    assert "first touch due Tue Nov 24, 10:15 EST" in leads["text"]
    none = await slack.command(BEN, "leads")
    assert "none" in none["text"]

    away = await slack.command(ANA, "away until 2026-12-01")
    assert "You are away until Tue Dec 1, 09:00 EST" in away["text"]
    assert "Your 1 open lead stays with you" in away["text"]
    with slack.services.ctx.db.read() as session:
        status = session.get(RepStatus, "ana")
    assert status is not None and status.away and status.away_until == datetime(2026, 12, 1, 14, tzinfo=UTC)
    # While Ana is away, new SMB leads skip her.
    assert (await slack.handoff(external_id="smb-2", employees=200))["rep"] != "ana"
    past = await slack.command(ANA, "away until 2026-11-01")
    assert "not in the future" in past["text"]
    back = await slack.command(ANA, "back")
    assert "Welcome back" in back["text"]
    with slack.services.ctx.db.read() as session:
        status = session.get(RepStatus, "ana")
    assert status is not None and not status.away
    assert "Only reps" in (await slack.command(PRIYA, "away"))["text"]


async def test_sla_link_binds_the_channel_for_new_cards(slack: Slack) -> None:
    refused = await slack.command(ANA, "link smb", channel="C0NEWCHAN1")
    assert "Only the manager of SMB Inbound (Priya Shah) or the sales VP" in refused["text"]
    unknown = await slack.command(PRIYA, "link sales", channel="C0NEWCHAN1")
    assert "There is no team “sales”" in unknown["text"]
    linked = await slack.command(PRIYA, "link smb", channel="C0NEWCHAN1")
    assert linked["response_type"] == "in_channel" and "SMB Inbound" in linked["text"]
    with slack.services.ctx.db.read() as session:
        binding = session.execute(select(ChannelBinding)).scalars().one()
    assert (binding.team, binding.platform, binding.channel) == ("smb", "slack", "C0NEWCHAN1")
    await slack.handoff(external_id="smb-linked", employees=200)
    assert await posted_card(slack, "C0NEWCHAN1")
    assert slack.fake.posts(SMB) == []
    relinked = await slack.command(SAM, "link smb", channel="C0OTHER001")   # the sales VP may too
    assert relinked["response_type"] == "in_channel"
    with slack.services.ctx.db.read() as session:
        assert session.execute(select(ChannelBinding.channel)).scalars().all() == ["C0OTHER001"]


async def test_sla_digest_preview(slack: Slack) -> None:
    await slack.handoff()
    reply = await slack.command(SAM, "digest")
    assert reply["response_type"] == "ephemeral"
    text = reply["text"]
    if text.startswith("Working on it"):   # a slow machine: the preview follows through the outbox
        note = await eventually(lambda: slack.fake.ephemerals)
        text = note[0].text
    assert text.startswith("Preview (only you can see this): ")
    assert "daily SLA digest" in text


async def test_slow_sla_answer_is_acknowledged_then_delivered_through_the_outbox(slack: Slack) -> None:
    slack.integration.listeners.command_budget = 0.0
    reply = await slack.command(ANA, "status me", channel="C0CMD00001")
    assert reply == {"response_type": "ephemeral", "text": "Working on it: the answer follows in a moment."}
    note = await eventually(lambda: slack.fake.ephemerals)
    assert note[0].user == ANA and note[0].channel == "C0CMD00001"
    assert "SLA status for Ana Ruiz" in note[0].text and note[0].blocks


# --- request checks ------------------------------------------------------------------------


async def test_bad_signature_stale_timestamp_and_oversized_body(slack: Slack) -> None:
    body = sh.app_home_opened(user=ANA, event_id="Ev0FORGED1")
    forged = await slack.http.post("/slack/events", content=body, headers=sh.signed_headers(
        body, content_type=sh.JSON, secret="not-the-secret"))
    assert forged.status_code == 401
    stale = await slack.http.post("/slack/events", content=body, headers=sh.signed_headers(
        body, content_type=sh.JSON, timestamp=int(time.time()) - 6 * 60))
    assert stale.status_code == 401
    tampered_headers = sh.signed_headers(body, content_type=sh.JSON)
    tampered = await slack.http.post("/slack/events", content=body.replace(b"Ev0FORGED1", b"Ev0FORGED2"),
                                     headers=tampered_headers)
    assert tampered.status_code == 401
    huge = sh.slash_command(user=ANA, channel="C0CMD00001", text="x" * (256 * 1024))
    oversized = await slack.post(huge, sh.FORM)
    assert oversized.status_code == 413
    await asyncio.sleep(0.2)
    with slack.services.ctx.db.read() as session:
        assert session.execute(select(InboundReceipt)).scalars().all() == []
    assert slack.fake.calls_to("views.publish") == []


async def test_a_malformed_body_with_a_bad_signature_is_refused_as_unsigned(slack: Slack) -> None:
    """What is wrong with a body is said only to Slack: a forged one, readable or not, is a 401."""
    for body, content_type in ((b"{not json", sh.JSON), (b"[]", sh.JSON), (b"payload=%7Bnot", sh.FORM),
                               (b"payload=%5B%5D", sh.FORM), (b"payload=%FF%FE", sh.FORM),
                               (b"payload=%7B%7D", sh.FORM), (b'{"type": "event_callback"}', sh.JSON)):
        forged = await slack.http.post("/slack/events", content=body, headers=sh.signed_headers(
            body, content_type=content_type, secret="not-the-secret"))
        assert forged.status_code == 401, (body, forged.text)
        assert "JSON" not in forged.text and "payload" not in forged.text


async def test_url_verification_challenge(slack: Slack) -> None:
    body = (sh.PAYLOADS / "url_verification.json").read_bytes()
    challenge = json.loads(body)["challenge"]
    answered = await slack.post(body, sh.JSON)
    assert answered.status_code == 200 and answered.json() == {"challenge": challenge}


def test_signing_helper_matches_slacks_documented_example() -> None:
    vectors = json.loads((FIXTURES / "slack_payloads" / "signature_vectors.json").read_text())["vectors"]
    for vector in vectors:
        assert sh.signature(vector["signing_secret"], vector["x_slack_request_timestamp"],
                            vector["raw_body"].encode()) == vector["x_slack_signature"], vector["name"]


# --- Socket Mode ---------------------------------------------------------------------------


async def test_socket_mode_starts_with_the_app_and_uses_the_same_listeners(
        db: Database, agreement: Agreement, clock: FixedClock, fake: FakeSlack) -> None:
    services = slack_services(db, agreement, clock, fake, slack_app_token="xapp-1-test")
    app = create_app(services)
    integration: SlackIntegration = app.state.slack
    assert integration.socket_mode is not None and integration.socket_mode.handler is None   # built at startup
    with LiveServer(app) as server:
        # The client asks Slack (here: the fake) for a WebSocket URL with the app-level token.
        opened = await eventually(lambda: fake.calls_to("apps.connections.open"))
        assert opened[0].headers["authorization"] == "Bearer xapp-1-test"
        handler = integration.socket_mode.handler
        assert isinstance(handler, AsyncSocketModeHandler) and handler.app is integration.bolt
        # The HTTP endpoint still works alongside it.
        async with httpx.AsyncClient(base_url=server.url) as http:
            body = sh.slash_command(user=ANA, channel="C0CMD00001", text="help")
            reply = await http.post("/slack/events", content=body,
                                    headers=sh.signed_headers(body, content_type=sh.FORM))
        assert reply.status_code == 200 and "/sla status" in reply.json()["text"]
    task = integration.socket_mode.task
    assert task is not None and task.done()
    assert handler.client.closed


# --- the manifest --------------------------------------------------------------------------


def test_manifest_validates_and_points_at_real_routes(services: Services) -> None:
    schemas = FIXTURES / "slack_manifest_schema"
    root = json.loads((schemas / "manifest.schema.json").read_text())
    registry: Registry[Any] = Registry()
    for version in ("1.0.0", "2.0.0"):
        document = json.loads((schemas / f"manifest.schema.{version}.json").read_text())
        document.setdefault("$schema", "http://json-schema.org/draft-07/schema#")
        url = f"https://raw.githubusercontent.com/slackapi/manifest-schema/v0.5.0/schemas/manifest.schema.{version}.json"
        registry = registry.with_resource(url, Resource.from_contents(document))
    validator = jsonschema.Draft7Validator(root, registry=registry)
    # The validator really checks: the upstream "invalid" example fails it.
    assert not validator.is_valid(json.loads((schemas / "examples" / "manifest.v1.invalid.json").read_text()))

    manifest = slack_manifest("https://bot.example.com/")
    errors = [e.message for e in validator.iter_errors(manifest)]
    assert errors == []

    app = create_app(services)
    routes = {getattr(r, "path", None) for r in app.routes}
    urls = [manifest["settings"]["event_subscriptions"]["request_url"],
            manifest["settings"]["interactivity"]["request_url"],
            *[c["url"] for c in manifest["features"]["slash_commands"]]]
    for url in urls:
        assert url.startswith("https://bot.example.com/") and urlparse(url).path in routes
    (sla,) = [c for c in manifest["features"]["slash_commands"] if c["command"] == "/sla"]
    for spec in COMMANDS:
        assert spec.usage in sla["usage_hint"]
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {"commands", "chat:write", "im:write", "users:read", "users:read.email", "channels:history",
            "groups:history", "im:history", "files:write"} <= scopes
    assert "app_home_opened" in manifest["settings"]["event_subscriptions"]["bot_events"]
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    assert manifest["settings"]["socket_mode_enabled"] is False
    with pytest.raises(ValueError):
        slack_manifest("bot.example.com")


async def test_logs_hold_no_secrets_tokens_or_lead_contact_data(slack: Slack, caplog: pytest.LogCaptureFixture) -> None:
    """Everything a full flow logs at DEBUG, including SDK loggers, is free of credentials and of the
    lead's e-mail address and phone number (DESIGN 3.5)."""
    import logging

    caplog.set_level(logging.DEBUG)
    created = await slack.handoff(email="jane.secret@globex.example", phone="+1 555 0199")
    card = await posted_card(slack, MID)
    await slack.click(EVE, card, "lead.claim")
    await eventually(lambda: slack.lead(created["id"]).state == "claimed")
    await slack.click(FAY, await edited(slack, card, 1), "lead.log_call")   # refused: not the owner
    await slack.post(b"payload=%7B%7D", sh.FORM, secret="wrong-secret")    # a bad signature is logged
    await slack.command(EVE, "status")
    logged = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert logged, "nothing was logged: the test would prove nothing"
    for secret in ("jane.secret@globex.example", "555 0199", sh.BOT_TOKEN, sh.SIGNING_SECRET, INTAKE_TOKEN):
        assert secret not in logged, f"{secret!r} leaked into the logs"


async def test_sla_status_is_refused_privately_to_people_outside_the_agreement(slack: Slack) -> None:
    await slack.handoff()
    for words in ("status", "status team smb", "status me"):
        refused = await slack.command("U0STRANGER", words)
        assert refused["response_type"] == "ephemeral"   # only the person who asked sees it
        assert refused["text"].startswith("Sorry, you are not in the SLA agreement"), refused["text"]
        assert "SLA status for" not in refused["text"] and "Marketing:" not in refused["text"]
    assert "SLA status for everyone" in (await slack.command(SAM, "status"))["text"]


def test_no_bolt_warning_at_start_with_the_slack_settings_in_the_environment(
        db: Database, agreement: Agreement, clock: FixedClock, fake: FakeSlack, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    # `slabot serve` reads SLACK_BOT_TOKEN from the environment, and so does Bolt on its own.
    monkeypatch.setenv("SLACK_BOT_TOKEN", sh.BOT_TOKEN)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", sh.SIGNING_SECRET)
    with caplog.at_level(logging.DEBUG):
        create_app(slack_services(db, agreement, clock, fake))
    noise = [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.WARNING]
    assert noise == []
