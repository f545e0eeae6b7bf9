"""The Teams side of the outbox: posts lead cards as new channel threads, updates them in place,
and sends personal messages and digests, through the Agents SDK's connector client.

Every call goes to the serviceUrl stored when the bot saw the conversation (ConversationRef),
with a bot token from MSAL (none in anonymous test mode), under a short timeout. Failures become
`TransportError`s the OutboxWorker understands: throttling and gateway errors (429, 412, 5xx) and
connection errors are retryable, with Teams' Retry-After when it sends one; 400/401/403/404 are
permanent. Pacing: Teams allows 7 sends per second per conversation per bot, so one lane (a
channel or a person) gets at most that.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import aiohttp
import anyio
from microsoft_agents.activity import (
    Activity,
    Attachment,
    ChannelAccount,
    ConversationAccount,
    ConversationParameters,
)
from microsoft_agents.hosting.core.connector.teams import TeamsConnectorClient

from bot.presentation.cards import Card
from bot.teams import store
from bot.teams.auth import TeamsAuth, allow_long_conversation_ids
from bot.teams.render import linked_text, render_card, render_digest, reply_text
from bot.worker.delivery import Posted, TransportError
from commands.context import Context

log = logging.getLogger("slabot.teams")

ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
#: Teams: 7 messages per second per conversation (per bot), 8 per 2 s, 60 per 30 s.
SENDS_PER_SECOND = 7
_RETRYABLE = frozenset({408, 412, 429, 500, 502, 503, 504})
_PERMANENT = frozenset({400, 401, 403, 404})
_T = TypeVar("_T")


def card_activity(content: dict[str, Any], *, summary: str | None = None,
                  activity_id: str | None = None) -> Activity:
    """A message carrying one Adaptive Card. Built fresh, without timestamps, so it can also be
    used for updates (the SDK serialises updates without `mode="json"`: spike pitfall 8)."""
    fields: dict[str, Any] = {"type": "message",
                              "attachments": [Attachment(content_type=ADAPTIVE_CARD, content=content)]}
    if summary:
        fields["summary"] = summary[:250]
    if activity_id:
        fields["id"] = activity_id
    return Activity(**fields)


def text_activity(text: str) -> Activity:
    """A markdown message; `text` must already be escaped (render.reply_text)."""
    return Activity(type="message", text=text, text_format="markdown")


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds: a number, or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def error_for_status(what: str, status: int, headers: Mapping[str, str] | None) -> TransportError:
    retry_after = retry_after_seconds((headers or {}).get("Retry-After"))
    if status in _PERMANENT:
        return TransportError(f"{what}: Teams answered {status}", permanent=True)
    return TransportError(f"{what}: Teams answered {status}",
                          retry_after=retry_after if status in _RETRYABLE else None)


class TeamsTransport:
    """bot.worker.delivery.Transport for Microsoft Teams."""

    platform = "teams"

    def __init__(self, ctx: Context, auth: TeamsAuth, *, timeout: float = 15.0,
                 tenant_id: str | None = None) -> None:
        self.ctx = ctx
        self.auth = auth
        self.timeout = timeout
        self.tenant_id = tenant_id

    def min_interval(self, kind: str) -> float:
        return 1.0 / SENDS_PER_SECOND

    # --- Transport ---------------------------------------------------------------------------

    async def post_card(self, channel: str, card: Card, *, outbox_id: int) -> Posted:
        """A new thread in the team channel: POST /v3/conversations with channelData.channel.id.
        The thread's conversation id and the root activity id become the lead's MessageRef."""
        channel_id = store.base_conversation_id(channel)
        conv = await self._conversation(channel_id)
        tenant = conv.tenant_id or self.tenant_id
        params = self._conversation_parameters(
            conv, is_group=True, tenant=tenant, channel_data={"channel": {"id": channel_id}},
            activity=card_activity(render_card(card), summary=card.fallback))
        async with self._client(conv.service_url) as client:
            result = await self._guard("create thread", client.conversations.create_conversation(params))
        thread = result.id or ""
        activity_id = result.activity_id or thread.partition(";messageid=")[2]
        if not thread or not activity_id:
            # Posted, but we cannot address it: retrying would post a second thread.
            raise TransportError("Teams created the thread but returned no ids", permanent=True)
        return Posted(channel=thread, message_id=activity_id)

    async def update_card(self, ref: Posted, card: Card) -> None:
        """PUT .../conversations/{thread}/activities/{id} with the card rendered afresh."""
        conv = await self._conversation(ref.channel)
        activity = card_activity(render_card(card), summary=card.fallback, activity_id=ref.message_id)
        activity.conversation = ConversationAccount(id=ref.channel)
        async with self._client(conv.service_url) as client:
            await self._guard("update card",
                              client.conversations.update_activity(ref.channel, ref.message_id, activity))

    async def find_posted(self, channel: str, *, outbox_id: int, since: datetime) -> Posted | None:
        """Always None: Teams cannot look a message up by our outbox id.

        Slack messages carry the outbox id as metadata, so a worker that died between posting and
        recording can find its post again. The Bot Connector has no such search (reading channel
        history needs Microsoft Graph and more permissions), so Teams delivery is at-least-once:
        if a worker dies after Teams accepted a card but before the MessageRef was committed, the
        row is retried once the claim's lease lapses and the lead gets a second thread (and later
        updates go to the second one). The window is one HTTP round trip plus one commit.
        """
        return None

    async def send_message(self, kind: str, target: str, payload: dict[str, Any], *,
                           outbox_id: int) -> Posted | None:
        """`dm` (target: AAD object id or e-mail), `channel` (target: channel id) or `digest`. A
        direct message's `link` (a URL slabot made, like a desk sign-in link) stays clickable."""
        if kind == "dm":
            text = linked_text(str(payload.get("text") or ""), payload.get("link"))
            return await self._send_personal(target, text_activity(text))
        if kind == "channel":
            return await self._send_channel(target, text_activity(reply_text(str(payload.get("text") or ""))))
        if kind == "digest":
            activity = card_activity(render_digest(payload), summary=str(payload.get("title") or "SLA digest"))
            to = payload.get("to") or ("channel" if target.startswith("19:") else "user")
            if to == "channel":
                return await self._send_channel(target, activity)
            return await self._send_personal(target, activity)
        raise TransportError(f"Teams cannot deliver outbox kind {kind!r}", permanent=True)

    # --- sends -------------------------------------------------------------------------------

    async def _send_channel(self, channel: str, activity: Activity) -> Posted:
        """A new top-level post in a channel (sending to the bare channel id starts a thread)."""
        channel_id = store.base_conversation_id(channel)
        conv = await self._conversation(channel_id)
        activity.conversation = ConversationAccount(id=channel_id)
        async with self._client(conv.service_url) as client:
            sent = await self._guard("post to channel",
                                     client.conversations.send_to_conversation(channel_id, activity))
        return Posted(channel=channel_id, message_id=sent.id or "")

    async def _send_personal(self, target: str, activity: Activity) -> Posted:
        conversation_id, service_url = await self._personal_chat(target)
        activity.conversation = ConversationAccount(id=conversation_id)
        async with self._client(service_url) as client:
            sent = await self._guard("personal message",
                                     client.conversations.send_to_conversation(conversation_id, activity))
        return Posted(channel=conversation_id, message_id=sent.id or "")

    async def _personal_chat(self, target: str) -> tuple[str, str]:
        """The person's 1:1 chat with the bot: the stored one, else created with their 29: id."""
        db = self.ctx.db
        email = target.strip().lower() if "@" in target else None
        aad = await anyio.to_thread.run_sync(store.aad_for_email, db, email) if email else target
        if aad:
            conv = await anyio.to_thread.run_sync(store.personal_conversation, db, aad)
            if conv is not None:
                return conv.conversation_id, conv.service_url
        mri = await anyio.to_thread.run_sync(lambda: store.find_mri(db, aad_id=aad, email=email))
        if mri is None:
            raise TransportError(
                "cannot send a Teams personal message: this person has not talked to slabot in Teams "
                "yet, so their Teams user id is unknown (they can install the app or message the bot "
                "once; or add their AAD object id as `teams:` in the agreement and install the app)",
                permanent=True)
        base = await anyio.to_thread.run_sync(store.latest_conversation, db)
        if base is None:
            raise TransportError("Teams is not installed anywhere yet: add slabot to a team first",
                                 permanent=True)
        tenant = base.tenant_id or self.tenant_id
        params = self._conversation_parameters(base, is_group=False, tenant=tenant, channel_data={},
                                               members=[ChannelAccount(id=mri)])
        async with self._client(base.service_url) as client:
            created = await self._guard("create personal chat", client.conversations.create_conversation(params))
        if not created.id:
            raise TransportError("Teams created no personal chat id")
        await anyio.to_thread.run_sync(lambda: store.save_conversation(
            db, conversation_id=created.id, kind="personal", service_url=base.service_url, tenant_id=tenant,
            team_id=None, user_aad_id=aad, now=self.ctx.now(),
            reference={"user": {"id": mri, **({"aadObjectId": aad} if aad else {})},
                       "bot": self._bot_account_dict(base), "conversation": {"id": created.id}}))
        return created.id, base.service_url

    # --- plumbing ----------------------------------------------------------------------------

    async def _conversation(self, conversation_id: str) -> store.ConversationInfo:
        db = self.ctx.db
        conv = await anyio.to_thread.run_sync(store.get_conversation, db, conversation_id)
        if conv is None:
            conv = await anyio.to_thread.run_sync(store.latest_conversation, db)
        if conv is None:
            raise TransportError(f"no Teams conversation known for {store.base_conversation_id(conversation_id)}"
                                 ": add slabot to the team first", permanent=True)
        return conv

    def _bot_account_dict(self, conv: store.ConversationInfo) -> dict[str, Any]:
        bot = conv.bot
        if bot is not None:
            return {"id": bot["id"], **({"name": bot["name"]} if bot.get("name") else {})}
        return {"id": f"28:{self.auth.app_id}"} if self.auth.app_id else {}

    def _conversation_parameters(self, conv: store.ConversationInfo, *, is_group: bool, tenant: str | None,
                                 channel_data: dict[str, Any], **extra: Any) -> ConversationParameters:
        """POST /v3/conversations body; fields we do not know are left out, not sent as null."""
        fields: dict[str, Any] = {"is_group": is_group, **extra}
        bot = self._bot_account_dict(conv)
        if bot:
            fields["agent"] = ChannelAccount(**bot)
        if tenant:
            fields["tenant_id"] = tenant
            channel_data = {**channel_data, "tenant": {"id": tenant}}
        if channel_data:
            fields["channel_data"] = channel_data
        return ConversationParameters(**fields)

    @asynccontextmanager
    async def _client(self, service_url: str) -> AsyncIterator[TeamsConnectorClient]:
        """A connector client for one operation, with a bounded timeout (the SDK default is 5 min,
        which would hold a delivery lane hostage to one hung request)."""
        if not self.auth.service_url_allowed(service_url):
            raise TransportError("the stored serviceUrl is not an allowed Teams host", permanent=True)
        try:
            token = await self.auth.outbound_token(service_url)
        except Exception as exc:  # noqa: BLE001 - MSAL raises ValueError, requests errors, ...
            raise TransportError(f"could not get a Bot Framework token: {type(exc).__name__}") from None
        endpoint = service_url if service_url.endswith("/") else service_url + "/"
        session = aiohttp.ClientSession(base_url=endpoint, timeout=aiohttp.ClientTimeout(total=self.timeout))
        client = allow_long_conversation_ids(TeamsConnectorClient(endpoint, token, session=session))
        try:
            yield client
        finally:
            await client.close()

    @staticmethod
    async def _guard(what: str, call: Awaitable[_T]) -> _T:
        try:
            return await call
        except aiohttp.ClientResponseError as exc:
            raise error_for_status(what, exc.status, exc.headers) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise TransportError(f"{what}: {type(exc).__name__} talking to Teams") from None
