"""Slack as the outbox worker sees it: posts, in-place updates, DMs, digests, ephemerals, and the
message-metadata lookup that lets a restarted worker find a post it made before it died.

Pacing and 429s are the worker's job (per-channel lanes), so the Web API client here carries no
rate-limit retry handler: a 429 becomes `TransportError(retry_after=...)` and only that channel's
lane waits. Connection errors are retried by the client only when retrying cannot post twice.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import Awaitable
from datetime import datetime
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import AsyncConnectionErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.presentation.cards import Card
from bot.slack.render import card_blocks, card_text, clip, digest_message, escape
from bot.worker.delivery import Posted, TransportError

log = logging.getLogger("slabot.slack")

#: `metadata.event_type` of every message the outbox posts; `event_payload.outbox_id` names the row.
OUTBOX_EVENT = "slabot_outbox"
#: Slack's error codes after which retrying the same call cannot succeed.
PERMANENT_ERRORS = frozenset({
    "channel_not_found", "not_in_channel", "invalid_auth", "account_inactive", "is_archived",
    "not_authed", "token_revoked", "token_expired", "no_permission", "missing_scope",
    "message_not_found", "cant_update_message", "user_not_found", "user_not_in_channel",
    "users_not_found", "invalid_blocks", "invalid_blocks_format", "msg_too_long", "no_text",
    "invalid_arguments", "invalid_metadata_format", "invalid_metadata_schema", "restricted_action",
    "cannot_dm_bot", "user_disabled", "team_access_not_granted",
})
#: Methods that create something: a connection that dropped after the request was sent may
#: already have created it, so only "could not connect at all" is retried inline for them.
NOT_IDEMPOTENT = ("chat.postMessage", "chat.postEphemeral", "files.completeUploadExternal")
#: Look this far before a row's creation for its message (our clock vs Slack's).
CLOCK_SKEW_S = 120.0
#: chat.postMessage text beyond ~4,000 characters is cut by Slack; keep under it.
MESSAGE_TEXT = 3900
CHART_FILENAME = "workable-vs-goal.png"


class SafeConnectionRetry(AsyncConnectionErrorRetryHandler):
    """slack_sdk's connection-error retry, minus the retries that could post a message twice."""

    async def _can_retry_async(self, *, state: RetryState, request: HttpRequest,
                               response: HttpResponse | None = None,
                               error: Exception | None = None) -> bool:
        if request.url.split("?", 1)[0].rstrip("/").endswith(NOT_IDEMPOTENT):
            return isinstance(error, aiohttp.ClientConnectorError)
        return bool(await super()._can_retry_async(state=state, request=request, response=response,
                                                   error=error))


def make_client(token: str, base_url: str, *, timeout: int = 15) -> AsyncWebClient:
    """The Web API client: connection retries only (429s are paced by the outbox worker)."""
    handlers: list[AsyncRetryHandler] = [SafeConnectionRetry(max_retry_count=2)]
    return AsyncWebClient(token=token, base_url=base_url if base_url.endswith("/") else base_url + "/",
                          timeout=timeout, retry_handlers=handlers)


def _retry_after(headers: Any) -> float:
    for key, value in dict(headers or {}).items():
        if str(key).lower() == "retry-after":
            raw = value[0] if isinstance(value, list) and value else value
            try:
                return max(0.0, float(raw))
            except (TypeError, ValueError):
                break
    return 1.0


def api_error(method: str, exc: SlackApiError) -> TransportError:
    """A failed Web API call as the worker understands it (never includes the token)."""
    response = exc.response
    status = int(getattr(response, "status_code", 0) or 0)
    error = ""
    try:
        error = str(response.get("error") or "") if response is not None else ""
    except (AttributeError, TypeError):   # a non-JSON body (an HTML error page)
        error = ""
    if status == 429 or error == "ratelimited":
        return TransportError(f"slack {method}: rate limited", retry_after=_retry_after(
            getattr(response, "headers", None)))
    if status >= 500:
        return TransportError(f"slack {method}: HTTP {status} {error}".rstrip())
    if error in PERMANENT_ERRORS:
        return TransportError(f"slack {method}: {error}", permanent=True)
    return TransportError(f"slack {method}: {error or f'HTTP {status}'}")


def _is_user(target: str) -> bool:
    return target[:1] in ("U", "W")


def _outbox_metadata(outbox_id: int, **extra: Any) -> dict[str, Any]:
    return {"event_type": OUTBOX_EVENT, "event_payload": {"outbox_id": outbox_id, **extra}}


class SlackTransport:
    """`bot.worker.delivery.Transport` for Slack."""

    platform = "slack"

    def __init__(self, client: AsyncWebClient, *, post_interval: float = 1.0, history_pages: int = 10) -> None:
        self.client = client
        #: Slack allows about one chat.postMessage per second per channel.
        self.post_interval = post_interval
        self.history_pages = history_pages
        self._dm_channels: dict[str, str] = {}
        self._users_by_email: dict[str, str] = {}
        self._clients: dict[asyncio.AbstractEventLoop, AsyncWebClient] = {}

    def _web(self) -> AsyncWebClient:
        """`client` with an HTTP session of its own for the running event loop, so that connections
        are reused: without one, slack_sdk opens a session and a connection for every call (against
        slack.com a TLS handshake per card; the burst benchmark's worker spent a tenth of its CPU
        connecting to a local fake). One per loop because a session belongs to the loop it was made
        in (tests run the app's loop and the worker's apart); `client` itself, which Bolt shares,
        keeps opening a session per call."""
        loop = asyncio.get_running_loop()
        web = self._clients.get(loop)
        if web is None or web.session is None or web.session.closed:
            self._clients = {other: c for other, c in self._clients.items() if not other.is_closed()}
            template = self.client
            web = AsyncWebClient(token=template.token, base_url=template.base_url, timeout=template.timeout,
                                 retry_handlers=template.retry_handlers, logger=template.logger,
                                 session=aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=template.timeout)))
            self._clients[loop] = web
        return web

    async def aclose(self) -> None:
        """Close the connections kept open for this loop (the worker's stop); a later call opens new ones."""
        web = self._clients.pop(asyncio.get_running_loop(), None)
        if web is not None and web.session is not None:
            await web.session.close()

    def min_interval(self, kind: str) -> float:
        # Ephemerals (chat.postEphemeral, Tier 4) are not channel posts; everything else is.
        return 0.0 if kind == "ephemeral" else self.post_interval

    async def _api(self, method: str, call: Awaitable[AsyncSlackResponse]) -> AsyncSlackResponse:
        try:
            return await call
        except SlackApiError as exc:
            raise api_error(method, exc) from None
        except (aiohttp.ClientError, TimeoutError, SlackClientError) as exc:
            raise TransportError(f"slack {method}: {type(exc).__name__}") from None

    async def _post(self, channel: str, *, text: str, blocks: list[dict[str, Any]] | None,
                    metadata: dict[str, Any]) -> Posted:
        response = await self._api("chat.postMessage", self._web().chat_postMessage(
            channel=channel, text=text, blocks=blocks, metadata=metadata,
            unfurl_links=False, unfurl_media=False))
        return Posted(str(response.get("channel") or channel), str(response["ts"]))

    async def conversation(self, target: str) -> str:
        """The channel id for a target: a user id (or `email:ADDRESS`, looked up once) becomes the
        bot's DM with that user."""
        if target.startswith("email:"):
            target = await self._user_by_email(target.removeprefix("email:"))
        if not _is_user(target):
            return target
        if target not in self._dm_channels:
            response = await self._api("conversations.open", self._web().conversations_open(users=target))
            self._dm_channels[target] = str(response["channel"]["id"])
        return self._dm_channels[target]

    async def _user_by_email(self, email: str) -> str:
        """A person the agreement names only by e-mail (never logged: the error names no address)."""
        if email not in self._users_by_email:
            response = await self._api("users.lookupByEmail", self._web().users_lookupByEmail(email=email))
            self._users_by_email[email] = str(response["user"]["id"])
        return self._users_by_email[email]

    # --- cards -------------------------------------------------------------------------------

    async def post_card(self, channel: str, card: Card, *, outbox_id: int) -> Posted:
        return await self._post(channel, text=card_text(card), blocks=card_blocks(card),
                                metadata=_outbox_metadata(outbox_id, lead_id=card.lead_id))

    async def update_card(self, ref: Posted, card: Card) -> None:
        await self._api("chat.update", self._web().chat_update(
            channel=ref.channel, ts=ref.message_id, text=card_text(card), blocks=card_blocks(card)))

    async def find_posted(self, channel: str, *, outbox_id: int, since: datetime) -> Posted | None:
        """The message an earlier attempt of this outbox row posted, from the channel's history
        (needs channels:history / groups:history / im:history)."""
        channel_id = await self.conversation(channel)
        oldest = f"{since.timestamp() - CLOCK_SKEW_S:.6f}"
        cursor: str | None = None
        for _ in range(self.history_pages):
            response = await self._api("conversations.history", self._web().conversations_history(
                channel=channel_id, oldest=oldest, include_all_metadata=True, limit=200, cursor=cursor))
            for message in response.get("messages") or []:
                metadata = message.get("metadata") or {}
                payload = metadata.get("event_payload") or {}
                if metadata.get("event_type") == OUTBOX_EVENT and str(payload.get("outbox_id")) == str(outbox_id):
                    return Posted(channel_id, str(message["ts"]))
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not response.get("has_more") or not cursor:
                return None
        log.warning("outbox %s: gave up searching %s pages of %s history", outbox_id, self.history_pages,
                    channel_id)
        return None

    # --- messages ----------------------------------------------------------------------------

    async def send_message(self, kind: str, target: str, payload: dict[str, Any], *,
                           outbox_id: int) -> Posted | None:
        """`dm` {text} to a user, `channel` {text}, `digest` {title, sections, text, chart_png_b64,
        to}, `ephemeral` {text, user, blocks?} in channel `target`."""
        if kind == "ephemeral":
            await self._api("chat.postEphemeral", self._web().chat_postEphemeral(
                channel=target, user=str(payload["user"]), text=clip(escape(payload.get("text", "")), MESSAGE_TEXT),
                blocks=payload.get("blocks")))
            return None
        metadata = _outbox_metadata(outbox_id, kind=kind)
        if kind in ("dm", "channel"):
            channel = await self.conversation(target) if kind == "dm" or _is_user(target) else target
            return await self._post(channel, text=clip(escape(payload.get("text", "")), MESSAGE_TEXT),
                                    blocks=None, metadata=metadata)
        if kind == "digest":
            channel = await self.conversation(target)
            text, blocks = digest_message(payload)
            posted = await self._post(channel, text=text, blocks=blocks, metadata=metadata)
            chart = payload.get("chart_png_b64")
            if chart:
                await self._upload_chart(posted.channel, chart, outbox_id)
            return posted
        raise TransportError(f"slack: unknown message kind {kind!r}", permanent=True)

    async def _upload_chart(self, channel: str, chart_b64: str, outbox_id: int) -> None:
        """Best effort: the digest's numbers are already posted, and a retry of the whole row would
        post them twice (recovery finds the post and stops), so a failed chart is only logged."""
        try:
            content = base64.b64decode(chart_b64, validate=True)
        except (binascii.Error, ValueError):
            log.warning("outbox %s: digest chart is not valid base64; posted without it", outbox_id)
            return
        try:
            await self._api("files.upload", self._web().files_upload_v2(
                channel=channel, content=content, filename=CHART_FILENAME,
                title="Cumulative workable leads vs goal"))
        except TransportError as exc:
            log.warning("outbox %s: digest chart upload failed (%s); posted without it", outbox_id, exc)
