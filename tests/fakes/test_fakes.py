"""Tests of the fakes themselves, driven by the real clients slabot uses.

Slack: ``slack_sdk`` (async and sync clients). Connector: ``httpx`` with Teams-shaped bodies
and the Microsoft 365 Agents SDK ``ConnectorClient``. Whole file runs in a couple of seconds.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import httpx
import pytest
from microsoft_agents.activity import (
    Activity,
    ChannelAccount,
    ConversationAccount,
    ConversationParameters,
)
from microsoft_agents.hosting.core.connector.client.connector_client import ConnectorClient
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncConnectionErrorRetryHandler
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes import ManualClock
from tests.fakes.bot_connector import FakeBotConnector
from tests.fakes.slack_api import BOT_USER_ID, FakeSlack

TOKEN = "xoxb-test"
CHANNEL = "C0LEADS001"
TEAMS_CHANNEL = "19:abc@thread.tacv2"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
BOT = {"id": "28:c9e8c047-2a74-40a2-b28a-b162d5f5327c", "name": "slabot"}
LEAD_BLOCKS: list[dict[str, Any]] = [
    {"type": "header", "text": {"type": "plain_text", "text": "New lead: Acme Corp"}},
    {
        "type": "actions",
        "block_id": "lead:L-1001",
        "elements": [
            {
                "type": "button",
                "action_id": "lead.claim",
                "text": {"type": "plain_text", "text": "Claim"},
                "value": "L-1001",
            }
        ],
    },
]


def _metadata(**payload: Any) -> dict[str, Any]:
    return {"event_type": "slabot_lead_card", "event_payload": payload}


def _card(lead_id: str = "L-1001") -> dict[str, Any]:
    return {
        "contentType": "application/vnd.microsoft.card.adaptive",
        "content": {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.5",
            "body": [{"type": "TextBlock", "text": "New lead: Acme Corp", "wrap": True}],
            "actions": [
                {
                    "type": "Action.Execute",
                    "title": "Claim",
                    "verb": "lead.claim",
                    "data": {"leadId": lead_id},
                }
            ],
        },
    }


def _message_activity(conversation_id: str, text: str = "New lead") -> dict[str, Any]:
    return {
        "type": "message",
        "from": BOT,
        "conversation": {"id": conversation_id, "conversationType": "channel", "tenantId": TENANT},
        "channelId": "msteams",
        "text": text,
        "attachments": [_card()],
    }


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake
        assert fake.server_errors == []


@pytest.fixture
def connector() -> Iterator[FakeBotConnector]:
    with FakeBotConnector() as fake:
        yield fake
        assert fake.server_errors == []


@pytest.fixture
def http(connector: FakeBotConnector) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=connector.service_url, timeout=5) as client:
        yield client


def _client(slack: FakeSlack, **kwargs: Any) -> AsyncWebClient:
    return AsyncWebClient(token=TOKEN, base_url=slack.base_url, **kwargs)


# --------------------------------------------------------------------------------- Slack


@pytest.mark.asyncio
async def test_post_message_with_blocks_and_metadata(slack: FakeSlack) -> None:
    client = _client(slack)
    meta = _metadata(outbox_id="ob-1", lead_id="L-1001", kind="new")

    resp = await client.chat_postMessage(
        channel=CHANNEL, text="New lead", blocks=LEAD_BLOCKS, metadata=meta
    )

    assert resp["ok"] is True
    assert resp["channel"] == CHANNEL
    assert resp["message"]["blocks"] == LEAD_BLOCKS
    assert resp["message"]["metadata"] == meta
    stored = slack.messages[CHANNEL]
    assert [m.ts for m in stored] == [resp["ts"]]
    assert stored[0].blocks == LEAD_BLOCKS
    assert stored[0].metadata == meta
    assert stored[0].event_payload["outbox_id"] == "ob-1"
    (call,) = slack.calls_to("chat.postMessage")
    assert call.headers["authorization"] == f"Bearer {TOKEN}"
    assert call.params["metadata"] == meta
    assert slack.posts(CHANNEL)[0].text == "New lead"


@pytest.mark.asyncio
async def test_form_encoded_json_fields_are_decoded(slack: FakeSlack) -> None:
    client = _client(slack)
    meta = _metadata(lead_id="L-7", kind="reminder")

    resp = await client.api_call(
        "chat.postMessage",
        data={
            "channel": CHANNEL,
            "text": "form",
            "blocks": json.dumps(LEAD_BLOCKS),
            "metadata": json.dumps(meta),
        },
    )

    assert resp["ok"]
    assert slack.calls[-1].headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert slack.messages[CHANNEL][0].blocks == LEAD_BLOCKS
    assert slack.messages[CHANNEL][0].metadata == meta


@pytest.mark.asyncio
async def test_ts_unique_increasing_and_update_counts_edits(slack: FakeSlack) -> None:
    client = _client(slack)
    first = await client.chat_postMessage(channel=CHANNEL, text="one")
    second = await client.chat_postMessage(channel=CHANNEL, text="two")
    assert float(second["ts"]) > float(first["ts"])

    upd = await client.chat_update(channel=CHANNEL, ts=first["ts"], text="one (claimed)")
    await client.chat_update(channel=CHANNEL, ts=first["ts"], text="one (done)", blocks=[])

    assert upd["ok"] and upd["ts"] == first["ts"] and upd["channel"] == CHANNEL
    msg = slack.message(CHANNEL, first["ts"])
    assert msg is not None and msg.text == "one (done)" and msg.edits == 2
    assert slack.posts(CHANNEL)[0].text == "one"  # posts() keeps the original
    assert slack.stats()["updates"] == 2
    with pytest.raises(SlackApiError) as info:
        await client.chat_update(channel=CHANNEL, ts="1.000001", text="nope")
    assert info.value.response["error"] == "message_not_found"


@pytest.mark.asyncio
async def test_history_newest_first_with_metadata_and_oldest(slack: FakeSlack) -> None:
    client = _client(slack)
    sent = []
    for i in range(3):
        resp = await client.chat_postMessage(
            channel=CHANNEL, text=f"m{i}", metadata=_metadata(outbox_id=f"ob-{i}")
        )
        sent.append(resp["ts"])
    await client.chat_postMessage(channel=CHANNEL, text="reply", thread_ts=sent[0])

    with_meta = await client.conversations_history(channel=CHANNEL, include_all_metadata=True)
    plain = await client.conversations_history(channel=CHANNEL)
    newer = await client.conversations_history(
        channel=CHANNEL, oldest=sent[0], include_all_metadata=True
    )
    paged = await client.conversations_history(channel=CHANNEL, limit=2)

    assert [m["ts"] for m in with_meta["messages"]] == sent[::-1]
    assert with_meta["messages"][0]["metadata"]["event_payload"] == {"outbox_id": "ob-2"}
    assert with_meta["messages"][-1]["reply_count"] == 1
    assert all("metadata" not in m for m in plain["messages"])
    assert [m["text"] for m in newer["messages"]] == ["m2", "m1"]  # oldest is exclusive
    assert paged["has_more"] is True and len(paged["messages"]) == 2
    assert paged["response_metadata"]["next_cursor"]


@pytest.mark.asyncio
async def test_conversations_open_is_deterministic_and_dm_posts_are_stored(
    slack: FakeSlack,
) -> None:
    client = _client(slack)
    first = await client.conversations_open(users="U0ANA00001")
    again = await client.conversations_open(users=["U0ANA00001"])
    other = await client.conversations_open(users="U0BOB00002")

    dm = first["channel"]["id"]
    assert dm == again["channel"]["id"] == "D0ANA00001"
    assert other["channel"]["id"] != dm
    assert slack.dms["U0ANA00001"] == dm
    await client.chat_postMessage(channel=dm, text="You have a new lead")
    await client.chat_postMessage(channel="U0ANA00001", text="by user id")
    assert [m.text for m in slack.messages[dm]] == ["You have a new lead"]
    assert [m.text for m in slack.messages["U0ANA00001"]] == ["by user id"]


@pytest.mark.asyncio
async def test_files_upload_v2_end_to_end(slack: FakeSlack) -> None:
    client = _client(slack)
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4

    resp = await client.files_upload_v2(
        channel=CHANNEL, content=png, filename="chart.png", initial_comment="Weekly SLA"
    )

    assert resp["ok"]
    file_id = resp["file"]["id"]
    methods = [c.method for c in slack.calls]
    assert methods == ["files.getUploadURLExternal", "upload", "files.completeUploadExternal"]
    stored = slack.files[file_id]
    assert stored.content == png and stored.size == len(png) == stored.length
    assert stored.channels == [CHANNEL] and stored.completed
    assert stored.initial_comment == "Weekly SLA"
    assert slack.stats()["files_uploaded"] == 1


@pytest.mark.asyncio
async def test_upload_url_accepts_multipart(slack: FakeSlack) -> None:
    client = _client(slack)
    url = await client.files_getUploadURLExternal(filename="a.csv", length=3)
    async with aiohttp.ClientSession() as session:
        form = aiohttp.FormData()
        form.add_field("file", b"a,b", filename="a.csv", content_type="text/csv")
        async with session.post(url["upload_url"], data=form) as res:
            assert res.status == 200
            assert await res.text() == "OK - 3"
    assert slack.files[url["file_id"]].content == b"a,b"


@pytest.mark.asyncio
async def test_injected_429_has_retry_after(slack: FakeSlack) -> None:
    client = _client(slack)
    slack.fail_next("chat.postMessage", status=429, retry_after=7)

    with pytest.raises(SlackApiError) as info:
        await client.chat_postMessage(channel=CHANNEL, text="x")

    assert info.value.response.status_code == 429
    assert info.value.response.headers["Retry-After"] == "7"
    assert info.value.response["error"] == "ratelimited"
    assert (await client.chat_postMessage(channel=CHANNEL, text="x"))["ok"]
    stats = slack.stats()
    assert stats["rejected_429"] == 1 and stats["injected_failures"] == 1
    assert stats["accepted_posts"] == 1
    assert [c.status for c in slack.calls] == [429, 200]


@pytest.mark.asyncio
async def test_injected_http_status_and_slack_error(slack: FakeSlack) -> None:
    client = _client(slack)
    slack.fail_next("chat.update", status=503, times=2)
    slack.fail_next("chat.postMessage", status=200, error="is_archived")

    for _ in range(2):
        with pytest.raises(SlackApiError) as info:
            await client.chat_update(channel=CHANNEL, ts="1.1", text="x")
        assert info.value.response.status_code == 503
    with pytest.raises(SlackApiError) as info:
        await client.chat_postMessage(channel=CHANNEL, text="x")
    assert info.value.response.status_code == 200
    assert info.value.response["error"] == "is_archived"
    assert (await client.chat_postMessage(channel=CHANNEL, text="x"))["ok"]


@pytest.mark.asyncio
async def test_per_channel_rate_limit(slack: FakeSlack) -> None:
    client = _client(slack)
    slack.rate_limit_per_channel = 20.0  # one post per 50 ms per channel
    slack.clock = clock = ManualClock()   # time moves only when the test says so

    await client.chat_postMessage(channel=CHANNEL, text="1")
    with pytest.raises(SlackApiError) as info:
        await client.chat_postMessage(channel=CHANNEL, text="2 (too fast)")
    other = await client.chat_postMessage(channel="C0OTHER001", text="other channel")
    clock.advance(0.06)
    later = await client.chat_postMessage(channel=CHANNEL, text="3")

    assert info.value.response.status_code == 429
    assert info.value.response.headers["Retry-After"] == "1"
    assert other["ok"] and later["ok"]
    assert [m.text for m in slack.messages[CHANNEL]] == ["1", "3"]
    assert [c.params["text"] for c in slack.rejected] == ["2 (too fast)"]
    stats = slack.stats()
    assert stats["accepted_posts"] == 3
    assert stats["rejected_429"] == stats["rate_limited"] == 1
    assert stats["per_channel"] == {CHANNEL: 2, "C0OTHER001": 1}


@pytest.mark.asyncio
async def test_dropped_connection_raises_connection_error(slack: FakeSlack) -> None:
    slack.fail_next("chat.postMessage", status=0)
    client = _client(slack, retry_handlers=[])

    with pytest.raises(aiohttp.ClientConnectionError):
        await client.chat_postMessage(channel=CHANNEL, text="lost")

    assert slack.messages[CHANNEL] == []
    assert slack.calls[0].status == 0


@pytest.mark.asyncio
async def test_dropped_connection_is_retried_by_connection_error_handler(slack: FakeSlack) -> None:
    slack.fail_next("chat.postMessage", status=0)
    handler = AsyncConnectionErrorRetryHandler(
        interval_calculator=FixedValueRetryIntervalCalculator(fixed_internal=0.0)
    )
    client = _client(slack, retry_handlers=[handler])

    resp = await client.chat_postMessage(channel=CHANNEL, text="eventually")

    assert resp["ok"] and len(slack.calls_to("chat.postMessage")) == 2
    assert slack.stats()["accepted_posts"] == 1


@pytest.mark.asyncio
async def test_auth_errors_and_unknown_method(slack: FakeSlack) -> None:
    anonymous = AsyncWebClient(base_url=slack.base_url)
    with pytest.raises(SlackApiError) as info:
        await anonymous.auth_test()
    assert info.value.response["error"] == "not_authed"

    client = _client(slack)
    me = await client.auth_test()
    assert (me["user_id"], me["bot_id"], me["team_id"], me["team"]) == (
        BOT_USER_ID,
        "B0BOT0001",
        "T0ACME001",
        "Acme",
    )
    with pytest.raises(SlackApiError) as info:
        await client.api_call("reactions.add", json={"name": "eyes"})
    assert info.value.response["error"] == "unknown_method"

    slack.revoke(TOKEN)
    with pytest.raises(SlackApiError) as info:
        await client.auth_test()
    assert info.value.response["error"] == "invalid_auth"


@pytest.mark.asyncio
async def test_channel_not_found(slack: FakeSlack) -> None:
    slack.channel_not_found.add("C0GONE0001")
    with pytest.raises(SlackApiError) as info:
        await _client(slack).chat_postMessage(channel="C0GONE0001", text="x")
    assert info.value.response["error"] == "channel_not_found"
    assert slack.stats()["accepted_posts"] == 0


@pytest.mark.asyncio
async def test_duplicate_posts_are_counted(slack: FakeSlack) -> None:
    client = _client(slack)
    await client.chat_postMessage(channel=CHANNEL, text="a", metadata=_metadata(outbox_id=1))
    await client.chat_postMessage(channel=CHANNEL, text="b", metadata=_metadata(outbox_id=2))
    await client.chat_postMessage(
        channel=CHANNEL, text="c", metadata=_metadata(lead_id="L-1", kind="new")
    )
    await client.chat_postMessage(
        channel="C0OTHER001", text="d", metadata=_metadata(lead_id="L-1", kind="new")
    )
    assert slack.stats()["duplicate_posts"] == 0

    dup = await client.chat_postMessage(channel=CHANNEL, text="e", metadata=_metadata(outbox_id=1))
    await client.chat_postMessage(
        channel=CHANNEL, text="f", metadata=_metadata(lead_id="L-1", kind="new")
    )

    assert slack.stats()["duplicate_posts"] == 2
    assert slack.duplicates[0] == (CHANNEL, dup["ts"], ("outbox_id", "1"))


@pytest.mark.asyncio
async def test_users_directory(slack: FakeSlack) -> None:
    slack.users = {
        "U0ANA00001": {"email": "ana@acme.example", "tz": "America/New_York", "name": "ana"}
    }
    client = _client(slack)

    info = await client.users_info(user="U0ANA00001")
    by_email = await client.users_lookupByEmail(email="ANA@acme.example")

    assert info["user"]["profile"]["email"] == "ana@acme.example"
    assert info["user"]["tz"] == "America/New_York"
    assert by_email["user"]["id"] == "U0ANA00001"
    with pytest.raises(SlackApiError) as err:
        await client.users_lookupByEmail(email="nobody@acme.example")
    assert err.value.response["error"] == "users_not_found"
    with pytest.raises(SlackApiError) as err:
        await client.users_info(user="U0NOBODY01")
    assert err.value.response["error"] == "user_not_found"


@pytest.mark.asyncio
async def test_views_and_ephemeral(slack: FakeSlack) -> None:
    client = _client(slack)
    modal = {
        "type": "modal",
        "callback_id": "lead.reassign",
        "title": {"type": "plain_text", "text": "Reassign"},
        "blocks": [],
    }
    home = {
        "type": "home",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*Queue*"}}],
    }

    opened = await client.views_open(trigger_id="123.456.abc", view=modal)
    updated = await client.views_update(view_id=opened["view"]["id"], view=modal)
    await client.views_publish(user_id="U0ANA00001", view=home)
    eph = await client.chat_postEphemeral(channel=CHANNEL, user="U0ANA00001", text="Only you")

    assert opened["view"]["id"].startswith("V") and opened["view"]["callback_id"] == "lead.reassign"
    assert updated["view"]["id"] == opened["view"]["id"]
    assert [v.method for v in slack.views] == ["views.open", "views.update", "views.publish"]
    assert slack.views[0].view == modal and slack.views[0].trigger_id == "123.456.abc"
    assert slack.home_views["U0ANA00001"] == home
    assert eph["message_ts"] == slack.ephemerals[0].message_ts
    assert slack.messages[CHANNEL] == []  # ephemerals are not channel messages


@pytest.mark.asyncio
async def test_many_concurrent_posts_over_keep_alive(slack: FakeSlack) -> None:
    async with aiohttp.ClientSession() as session:
        client = _client(slack, session=session)

        async def post(i: int) -> str:
            resp = await client.chat_postMessage(
                channel=f"C{i % 10:09d}", text=str(i), metadata=_metadata(outbox_id=i)
            )
            return str(resp["ts"])

        stamps = await asyncio.gather(*(post(i) for i in range(200)))

    assert len(set(stamps)) == 200
    stats = slack.stats()
    assert stats["accepted_posts"] == 200 and stats["duplicate_posts"] == 0
    assert sorted(stats["per_channel"].values()) == [20] * 10


def test_sync_client_stats_endpoint_latency_and_stop() -> None:
    with FakeSlack(latency=0.05) as fake:
        client = WebClient(token="xoxp-user", base_url=fake.base_url)
        started = time.monotonic()
        assert client.chat_postMessage(channel=CHANNEL, text="sync")["ok"]
        assert time.monotonic() - started >= 0.05
        stats = httpx.get(f"{fake.root_url}/_fake/stats").json()
        assert stats["accepted_posts"] == 1
        base_url = fake.base_url
    with pytest.raises(httpx.ConnectError):
        httpx.post(f"{base_url}auth.test", headers={"Authorization": f"Bearer {TOKEN}"})


# ------------------------------------------------------------------------ Bot connector


def test_create_conversation_starts_a_thread(
    connector: FakeBotConnector, http: httpx.Client
) -> None:
    body = {
        "isGroup": True,
        "bot": BOT,
        "channelData": {"channel": {"id": TEAMS_CHANNEL}, "tenant": {"id": TENANT}},
        "tenantId": TENANT,
        "activity": _message_activity(TEAMS_CHANNEL),
    }

    res = http.post("v3/conversations", json=body)

    assert res.status_code == 201
    data = res.json()
    assert data["id"] == f"{TEAMS_CHANNEL};messageid={data['activityId']}"
    (first,) = connector.activities(data["id"])
    assert first.via == "create" and first.id == data["activityId"]
    assert first.attachment_contents[0]["type"] == "AdaptiveCard"
    assert first.channel_id == TEAMS_CHANNEL
    assert connector.created_conversations[0]["id"] == data["id"]
    assert connector.stats()["accepted_creates"] == 1


def test_send_and_reply_with_url_encoded_conversation_id(
    connector: FakeBotConnector, http: httpx.Client
) -> None:
    thread = "19:abc@thread.tacv2;messageid=1"
    encoded = "19%3Aabc%40thread.tacv2%3Bmessageid%3D1"

    sent = http.post(f"v3/conversations/{encoded}/activities", json=_message_activity(thread))
    reply = http.post(
        f"v3/conversations/{encoded}/activities/{sent.json()['id']}",
        json={**_message_activity(thread, "Claimed by Ana"), "replyToId": sent.json()["id"]},
    )

    assert sent.status_code == 201 and reply.status_code == 201
    assert sent.json()["id"] != reply.json()["id"]
    activities = connector.activities(thread)
    assert [a.via for a in activities] == ["send", "reply"]
    assert activities[1].reply_to_id == sent.json()["id"]
    assert activities[1].text == "Claimed by Ana"
    assert set(connector.conversations) == {thread}
    assert connector.calls[0].conversation_id == thread
    assert connector.calls[0].path == f"/amer/v3/conversations/{thread}/activities"


def test_update_activity_and_unknown_404(connector: FakeBotConnector, http: httpx.Client) -> None:
    sent = http.post(
        f"v3/conversations/{TEAMS_CHANNEL}/activities", json=_message_activity(TEAMS_CHANNEL)
    )
    activity_id = sent.json()["id"]
    new_body = {**_message_activity(TEAMS_CHANNEL, "Claimed"), "id": activity_id}

    res = http.put(f"v3/conversations/{TEAMS_CHANNEL}/activities/{activity_id}", json=new_body)
    missing = http.put(f"v3/conversations/{TEAMS_CHANNEL}/activities/999", json=new_body)

    assert res.status_code == 200 and res.json() == {"id": activity_id}
    assert missing.status_code == 404
    current = connector.activity(TEAMS_CHANNEL, activity_id)
    assert current is not None and current.text == "Claimed" and current.edits == 1
    (update,) = connector.updates()
    assert update.activity_id == activity_id and update.body["text"] == "Claimed"
    assert connector.stats()["accepted_updates"] == 1


def test_members_directory(connector: FakeBotConnector, http: httpx.Client) -> None:
    connector.members = {
        "29:ana": {
            "id": "29:ana",
            "name": "Ana Ruiz",
            "aadObjectId": "aad-ana",
            "email": "ana@acme.example",
            "userPrincipalName": "ana@acme.example",
        },
        "29:bob": {"id": "29:bob", "name": "Bob", "aadObjectId": "aad-bob"},
    }
    conv = "19%3Aabc%40thread.tacv2"

    one = http.get(f"v3/conversations/{conv}/members/29%3Aana")
    everyone = http.get(f"v3/conversations/{conv}/members")
    page = http.get(f"v3/conversations/{conv}/pagedmembers", params={"pageSize": 1})
    rest = http.get(
        f"v3/conversations/{conv}/pagedmembers",
        params={"pageSize": 1, "continuationToken": page.json()["continuationToken"]},
    )
    missing = http.get(f"v3/conversations/{conv}/members/29%3Anobody")

    assert one.status_code == 200 and one.json()["email"] == "ana@acme.example"
    assert [m["id"] for m in everyone.json()] == ["29:ana", "29:bob"]
    assert [m["id"] for m in page.json()["members"]] == ["29:ana"]
    assert [m["id"] for m in rest.json()["members"]] == ["29:bob"]
    assert "continuationToken" not in rest.json()
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("kind", "status"), [("send", 429), ("update", 412), ("create", 502), ("members", 504)]
)
def test_fail_next_statuses(
    connector: FakeBotConnector, http: httpx.Client, kind: str, status: int
) -> None:
    sent = http.post(
        f"v3/conversations/{TEAMS_CHANNEL}/activities", json=_message_activity(TEAMS_CHANNEL)
    )
    requests = {
        "send": lambda: http.post(
            f"v3/conversations/{TEAMS_CHANNEL}/activities", json=_message_activity(TEAMS_CHANNEL)
        ),
        "update": lambda: http.put(
            f"v3/conversations/{TEAMS_CHANNEL}/activities/{sent.json()['id']}",
            json=_message_activity(TEAMS_CHANNEL, "edit"),
        ),
        "create": lambda: http.post(
            "v3/conversations",
            json={
                "isGroup": True,
                "bot": BOT,
                "tenantId": TENANT,
                "channelData": {"channel": {"id": TEAMS_CHANNEL}},
                "activity": _message_activity(TEAMS_CHANNEL),
            },
        ),
        "members": lambda: http.get(f"v3/conversations/{TEAMS_CHANNEL}/members"),
    }
    connector.fail_next(kind, status, times=2, retry_after=3)

    first, second, third = requests[kind](), requests[kind](), requests[kind]()

    assert first.status_code == second.status_code == status
    assert first.headers["Retry-After"] == "3"
    assert third.status_code in (200, 201)
    assert connector.stats()["injected_failures"] == 2


def test_dropped_connection(connector: FakeBotConnector, http: httpx.Client) -> None:
    connector.fail_next("send", 0)
    with pytest.raises(httpx.RemoteProtocolError):
        http.post(
            f"v3/conversations/{TEAMS_CHANNEL}/activities", json=_message_activity(TEAMS_CHANNEL)
        )
    ok = http.post(
        f"v3/conversations/{TEAMS_CHANNEL}/activities", json=_message_activity(TEAMS_CHANNEL)
    )
    assert ok.status_code == 201
    assert [c.status for c in connector.calls] == [0, 201]


def test_rate_limit_per_conversation_sliding_window(
    connector: FakeBotConnector, http: httpx.Client
) -> None:
    connector.rate_limit_per_conversation = 7
    connector.clock = ManualClock()      # all eleven posts fall in one window, however slow the machine
    url = f"v3/conversations/{TEAMS_CHANNEL}/activities"

    statuses = [http.post(url, json=_message_activity(TEAMS_CHANNEL)).status_code for _ in range(9)]
    limited = http.post(url, json=_message_activity(TEAMS_CHANNEL))
    other = http.post("v3/conversations/19:other@thread.tacv2/activities", json={"type": "message"})

    assert statuses == [201] * 7 + [429] * 2
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert other.status_code == 201
    stats = connector.stats()
    assert stats["accepted"] == 8 and stats["rejected_429"] == stats["rate_limited"] == 3
    assert stats["per_conversation"][TEAMS_CHANNEL] == 7
    assert len(connector.rejected) == 3


def test_rate_limit_window_slides(connector: FakeBotConnector, http: httpx.Client) -> None:
    connector.rate_limit_per_conversation = 10  # 10/s over a 0.2 s window = 2 per window
    connector.rate_limit_window = 0.2
    connector.clock = clock = ManualClock()
    url = f"v3/conversations/{TEAMS_CHANNEL}/activities"

    burst = [http.post(url, json={"type": "message"}).status_code for _ in range(3)]
    clock.advance(0.21)                  # the first post leaves the window
    after = http.post(url, json={"type": "message"}).status_code

    assert burst == [201, 201, 429]
    assert after == 201


def test_authorization_header_is_recorded(connector: FakeBotConnector, http: httpx.Client) -> None:
    url = f"v3/conversations/{TEAMS_CHANNEL}/activities"
    http.post(url, json={"type": "message", "text": "anonymous"})
    http.post(url, json={"type": "message"}, headers={"Authorization": "Bearer eyJ0eXAi"})
    connector.require_auth = True
    denied = http.post(url, json={"type": "message"})

    assert [c.has_authorization for c in connector.calls] == [False, True, False]
    assert denied.status_code == 401
    assert connector.stats()["calls_with_auth"] == 1


@pytest.mark.asyncio
async def test_agents_sdk_connector_client_anonymous(connector: FakeBotConnector) -> None:
    connector.members = {"29:ana": {"id": "29:ana", "name": "Ana Ruiz", "aadObjectId": "aad-ana"}}
    client = ConnectorClient(connector.service_url, "")  # "" = anonymous: no Authorization
    try:
        ops = client.conversations
        created = await ops.create_conversation(
            ConversationParameters(
                is_group=True,
                bot=ChannelAccount(**BOT),
                tenant_id=TENANT,
                channel_data={"channel": {"id": TEAMS_CHANNEL}},
                activity=Activity(type="message", text="New lead", attachments=[_card()]),
            )
        )
        assert created.id.startswith(f"{TEAMS_CHANNEL};messageid=")
        reply = await ops.reply_to_activity(
            created.id,
            created.activity_id,
            Activity(
                type="message",
                text="Claimed by Ana",
                conversation=ConversationAccount(id=created.id),
                reply_to_id=created.activity_id,
            ),
        )
        sent = await ops.send_to_conversation(created.id, Activity(type="message", text="ping"))
        await ops.update_activity(
            created.id, created.activity_id, Activity(type="message", text="New lead (claimed)")
        )
        members = await ops.get_conversation_members(created.id)
        member = await ops.get_conversation_member(created.id, "29:ana")
    finally:
        await client.close()

    assert reply.id and sent.id and reply.id != sent.id
    assert [a.text for a in connector.activities(created.id)] == [
        "New lead (claimed)",
        "Claimed by Ana",
        "ping",
    ]
    assert [m.id for m in members] == ["29:ana"] and member.name == "Ana Ruiz"
    assert not any(c.has_authorization for c in connector.calls)
    assert {c.kind for c in connector.calls} == {"create", "reply", "send", "update", "members"}
