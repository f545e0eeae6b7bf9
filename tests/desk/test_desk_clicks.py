"""A click on the desk is a click in chat: the same interaction service authorizes it, the same
compare-and-set refuses an out-of-date page like a stale card, the same words say why, and the Slack
card follows a desk click through the outbox (the app's own worker delivers it to a fake Slack)."""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from bot.http.app import create_app
from bot.services import Services
from bot.slack.transport import SlackTransport
from commands.interaction import STALE_CARD
from sla.agreement import Agreement
from sla.clock import FixedClock
from storage.db import Database
from storage.leads import get_lead
from tests.conftest import T0, LiveServer
from tests.desk.helpers import csrf_of, desk_services, hand_off, sign_in
from tests.e2e import slack_helpers as sh
from tests.fakes.slack_api import FakeSlack

CHANNEL = "C0MID00001"   # the example agreement's Mid-Market channel: Jane Doe's card goes there
EVE, MAYA = "U0EVE00001", "U0MAYA0001"   # Eve Adams owns the lead; Maya Lin is the Marketing VP


def eventually(check: Callable[[], Any], within: float = 10.0) -> Any:
    deadline = time.monotonic() + within
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        time.sleep(0.02)
    return result


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack(ts_start=int(T0.timestamp())) as server:
        yield server


@pytest.fixture
def live(db: Database, agreement: Agreement, clock: FixedClock,
         fake: FakeSlack) -> Iterator[tuple[LiveServer, Services]]:
    services = desk_services(db, agreement, clock, slack_bot_token=sh.BOT_TOKEN,
                             slack_signing_secret=sh.SIGNING_SECRET, slack_api_url=fake.base_url)
    app = create_app(services, run_worker=True)
    transport = services.transports["slack"]
    assert isinstance(transport, SlackTransport)
    transport.post_interval = 0.05   # behaviour, not Slack's pacing
    with LiveServer(app) as server:
        yield server, services


def press(client: httpx.Client, lead_id: int, action: str, *, version: int | None = None) -> str:
    """Press a button of the lead's desk page (its form as the page has it, or with an older
    version, as a page left open would send it); the words the desk then shows."""
    page = client.get(f"/desk/leads/{lead_id}")
    assert page.status_code == 200, page.text[:300]
    shown = int(re.findall(r'name="v" value="(\d+)"', page.text)[0])
    done = client.post(f"/desk/leads/{lead_id}/act", headers={"Origin": str(client.base_url).rstrip("/")},
                       data={"csrf": csrf_of(page.text), "a": action, "v": str(version or shown)})
    assert done.status_code == 303 and done.headers["location"] == f"/desk/leads/{lead_id}", done.text[:300]
    after = client.get(f"/desk/leads/{lead_id}")
    flash = re.search(r'<p class="flash" role="status">([^<]*)</p>', after.text)
    assert flash, "the desk said nothing after the click"
    return html.unescape(flash.group(1))


def click_in_slack(server: LiveServer, fake: FakeSlack, *, user: str, lead_id: int, action: str,
                   version: int) -> str:
    """The same button on the Slack card; the private answer Slack shows the person."""
    card = fake.posts(CHANNEL)[0]
    seen = len(fake.ephemerals)
    body = sh.block_action(user=user, channel=CHANNEL, message_ts=card.ts, action_id=f"lead.{action}",
                           value=json.dumps({"a": action, "lead": lead_id, "v": version}))
    ack = httpx.post(f"{server.url}/slack/events", content=body, headers=sh.signed_headers(body, content_type=sh.FORM))
    assert ack.status_code == 200
    note = eventually(lambda: fake.ephemerals[seen:])[0]
    assert note.user == user
    return str(note.text)


def test_a_desk_click_is_a_chat_click(live: tuple[LiveServer, Services], fake: FakeSlack) -> None:
    server, services = live
    lead = hand_off(server.url)   # routed to Eve Adams, Mid-Market
    card = eventually(lambda: fake.posts(CHANNEL))[0]

    # The Marketing VP may see every lead on the desk, but not claim one: refused on the desk in
    # the very words Slack uses for the same click, and nothing is recorded.
    with httpx.Client(base_url=server.url) as maya:
        sign_in(maya, services, server.url, "marketing_vp")
        refused = press(maya, lead["id"], "claim")
    assert refused == click_in_slack(server, fake, user=MAYA, lead_id=lead["id"], action="claim", version=1)
    assert refused == "Only the lead's owner or the team's manager can do that."

    # Eve claims on the desk: the Slack card in the channel is updated through the outbox.
    with httpx.Client(base_url=server.url) as eve:
        sign_in(eve, services, server.url, "rep:eve")
        assert press(eve, lead["id"], "claim") == "Claimed Jane Doe."
        claimed = eventually(lambda: (m := fake.message(CHANNEL, card.ts)) is not None and m.edits >= 1 and m)
        assert "Claimed" in json.dumps(claimed.blocks)

        # A desk page left open on the lead before the claim is a stale card: refused, same words.
        stale = press(eve, lead["id"], "log_call", version=1)
    assert stale == STALE_CARD
    assert stale == click_in_slack(server, fake, user=EVE, lead_id=lead["id"], action="log_call", version=1)
    with services.ctx.db.read() as session:
        stored = get_lead(session, lead_id=lead["id"])
    assert stored is not None and stored.owner == "eve" and stored.calls == 0
