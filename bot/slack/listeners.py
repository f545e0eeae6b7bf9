"""What slabot does when Slack calls: lead buttons and selects, the Opportunity modal, `/sla`,
App Home, and the durable de-duplication of Slack's event retries.

Every interaction is acknowledged before any database work (Slack wants an answer within 3 s);
the command layer runs in a worker thread (`anyio.to_thread`), and everything the click changes in
chat (the card, a private "no" to whoever clicked) goes through the outbox, so a restart never
loses it.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import anyio
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.presentation.cards import ACTION_PREFIX, ActionPayload
from bot.services import Services
from bot.slack.render import (
    AMOUNT_ACTION,
    AMOUNT_BLOCK,
    AMOUNT_CALLBACK,
    amount_modal,
    command_response,
    home_view,
)
from commands import interaction
from commands.actions import ActionRequest
from commands.context import Actor
from commands.sla import CommandReply, is_known, leads_reply, my_scope, not_in_agreement, run, status_reply
from sla.lifecycle import Action

log = logging.getLogger("slabot.slack")

T = TypeVar("T")

#: A `/sla` answer computed within this many seconds goes back in the HTTP response; a slower one
#: is acknowledged at once and delivered through the outbox (Slack gives up at 3 s).
COMMAND_BUDGET_S = 2.0
PLATFORM = "slack"
#: How Slack users type the command (a slash command), for the help and usage lines commands.sla writes.
COMMAND_PREFIX = "/sla "
#: How long "Slack reported no e-mail for this user" is believed before asking again.
LOOKUP_TTL = timedelta(days=1)
#: Every lead button and select (`lead.claim`, `lead.disqualify`, ...; see bot.presentation.cards).
_LEAD_ACTION = re.compile("^" + re.escape(ACTION_PREFIX))


class SlackListeners:
    """The Bolt listeners, bound to the running service."""

    def __init__(self, services: Services, *, command_budget: float = COMMAND_BUDGET_S) -> None:
        self.services = services
        self.ctx = services.ctx
        self.command_budget = command_budget
        #: The Web API client for messages sent outside the outbox (set by bot.slack.app.install).
        self.transport_client: AsyncWebClient | None = None

    def register(self, bolt: AsyncApp) -> None:
        bolt.use(self.dedupe_events)
        bolt.action({"action_id": _LEAD_ACTION}, middleware=[self.ack_at_once])(self.on_lead_action)
        bolt.view(AMOUNT_CALLBACK)(self.on_amount_submitted)
        bolt.command("/sla")(self.on_sla)
        bolt.event("app_home_opened")(self.on_home_opened)
        bolt.error(self.on_error)

    async def _thread(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await anyio.to_thread.run_sync(functools.partial(func, *args, **kwargs))

    # --- Slack's event retries ---------------------------------------------------------------

    async def dedupe_events(self, body: dict[str, Any], next_: Callable[[], Awaitable[None]]) -> BoltResponse | None:
        """Slack redelivers an event it thinks went unanswered (X-Slack-Retry-Num), possibly to another
        instance: the event_id is claimed in the database (unique), and a repeat is acknowledged
        without running anything. Requests with a retry header but a new event_id still run."""
        event_id = body.get("event_id") if body.get("type") == "event_callback" else None
        if event_id and not await self._thread(self._first_delivery, str(event_id)[:255]):
            log.info("slack event %s already handled; retry dropped", str(event_id)[:40])
            return BoltResponse(status=200, body="")
        await next_()
        return None

    def _first_delivery(self, event_id: str) -> bool:
        return interaction.first_delivery(self.ctx, source=PLATFORM, key=event_id)

    # --- who clicked -------------------------------------------------------------------------

    async def actor(self, user_id: str, client: AsyncWebClient) -> Actor:
        """The Slack user as the agreement knows them: by Slack id, else by the e-mail Slack reports
        (looked up once with users.info and remembered in platform_user)."""
        known = await self._thread(interaction.who, self.ctx, platform=PLATFORM, user_id=user_id,
                                   retry_after=LOOKUP_TTL)
        if is_known(known.actor) or known.looked_up:
            return known.actor
        try:
            response = await client.users_info(user=user_id)
        except SlackApiError as exc:
            # Slack answered (user_not_found, missing_scope, ...): remember "no e-mail" so every later
            # click does not ask again. Only a failure to get an answer is retried next time.
            log.info("users.info: %s; treating the user as unknown", exc.response.get("error"))
            return await self._thread(interaction.remember, self.ctx, platform=PLATFORM, user_id=user_id,
                                      email=None)
        except (SlackClientError, OSError, TimeoutError) as exc:
            log.warning("users.info failed (%s); treating the user as unknown for now", type(exc).__name__)
            return known.actor
        profile = (response.get("user") or {}).get("profile") or {}
        email = profile.get("email") or None
        return await self._thread(interaction.remember, self.ctx, platform=PLATFORM, user_id=user_id,
                                  email=str(email) if email else None)

    # --- buttons and selects on a lead card --------------------------------------------------

    @staticmethod
    async def ack_at_once(ack: AsyncAck, next_: Callable[[], Awaitable[None]]) -> None:
        """Acknowledge a card click before its listener starts. Bolt answers Slack once the listener
        has acknowledged, checking every 10 ms from the moment it starts the listener: an
        acknowledgement given before that first check saves each click those 10 ms. A card click's
        answer never depends on its outcome (that goes through the outbox), so nothing waits."""
        await ack()
        await next_()

    async def on_lead_action(self, body: dict[str, Any], client: AsyncWebClient) -> None:
        """A card click, already acknowledged by `ack_at_once`."""
        action = (body.get("actions") or [{}])[0]
        raw = action.get("value") if action.get("type") == "button" else \
            (action.get("selected_option") or {}).get("value")
        try:
            payload = ActionPayload.parse(raw or "")
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a lead action with an unreadable value (action_id %s)",
                        str(action.get("action_id"))[:60])
            return
        user_id = str((body.get("user") or {}).get("id") or "")
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
        click = str(action.get("action_ts") or body.get("trigger_id") or "")
        actor = await self.actor(user_id, client)
        if payload.action is Action.QUALIFY and action.get("type") == "button":
            await self._open_amount_modal(payload, actor, body, channel, click, client)
            return
        await self.act(payload, actor, user_id=user_id, channel=channel, click=click)

    async def act(self, payload: ActionPayload, actor: Actor, *, user_id: str, channel: str | None,
                  click: str) -> None:
        """Run the action (authorized against the database now), then queue what chat must show."""
        try:
            acted = await self._thread(interaction.act, self.ctx, _request(payload, actor))
        except Exception:
            # Nothing was recorded (the change is one transaction). Say so directly: the outbox
            # lives in the same database that just failed.
            log.exception("lead action %s on lead %s failed", payload.action.value, payload.lead_id)
            await self._tell_directly(user_id, channel, "Something went wrong and nothing was recorded. "
                                                        "Please try again in a moment.")
            return
        if acted.outcome.refused:
            await self._thread(self._queue_refusal, acted.outcome.text, lead_id=payload.lead_id, user_id=user_id,
                               channel=channel, click=click, refresh=acted.stale)
        self.services.wake_worker()

    async def _tell_directly(self, user_id: str, channel: str | None, text: str) -> None:
        client = self.transport_client
        if client is None or not channel or not user_id:
            return
        try:
            await client.chat_postEphemeral(channel=channel, user=user_id, text=text)
        except (SlackClientError, OSError, TimeoutError) as exc:
            log.warning("could not tell a user their click failed: %s", type(exc).__name__)

    def _queue_refusal(self, text: str, *, lead_id: int, user_id: str, channel: str | None, click: str,
                       refresh: bool) -> None:
        """A private "no" to the person who clicked and, for a stale card, a re-render of the card."""
        interaction.queue_refusal(self.ctx, platform=PLATFORM, text=text, lead_id=lead_id, user_id=user_id,
                                  channel=channel, click=click, refresh=refresh)

    async def _open_amount_modal(self, payload: ActionPayload, actor: Actor, body: dict[str, Any],
                                 channel: str | None, click: str, client: AsyncWebClient) -> None:
        """Opportunity asks for an optional amount first. The person is checked before the modal
        opens (no form for a click that would be refused) and again when it is submitted."""
        user_id = str((body.get("user") or {}).get("id") or "")
        check = await self._thread(interaction.precheck, self.ctx, _request(payload, actor))
        name = check.lead_name
        if check.refusal is not None:
            await self._thread(self._queue_refusal, check.refusal, lead_id=payload.lead_id, user_id=user_id,
                               channel=channel, click=click, refresh=check.stale)
            self.services.wake_worker()
            return
        metadata = json.dumps({"a": payload.action.value, "lead": payload.lead_id, "v": payload.version,
                               "channel": channel}, separators=(",", ":"))
        try:
            await client.views_open(trigger_id=body.get("trigger_id"),
                                    view=amount_modal(private_metadata=metadata, lead_name=name))
        except SlackApiError as exc:   # expired_trigger_id and the like: say so instead of failing silently
            log.warning("views.open failed: %s", exc.response.get("error"))
            await self._thread(self._queue_refusal, "Slack could not open the Opportunity form in time; "
                               "please click again.", lead_id=payload.lead_id, user_id=user_id,
                               channel=channel, click=click, refresh=False)
            self.services.wake_worker()

    async def on_amount_submitted(self, ack: AsyncAck, body: dict[str, Any], view: dict[str, Any],
                                  client: AsyncWebClient) -> None:
        values = ((view.get("state") or {}).get("values") or {}).get(AMOUNT_BLOCK) or {}
        raw = str((values.get(AMOUNT_ACTION) or {}).get("value") or "").strip()
        try:
            metadata = json.loads(view.get("private_metadata") or "{}")
            payload = ActionPayload.parse({**metadata, "amount": raw or None})
        except (ValueError, KeyError, TypeError):
            if raw:
                await ack(response_action="errors", errors={AMOUNT_BLOCK: "Enter a number, like 25000."})
            else:
                await ack()
                log.warning("ignored an Opportunity form with unreadable metadata")
            return
        if payload.amount is not None and not math.isfinite(payload.amount):
            await ack(response_action="errors", errors={AMOUNT_BLOCK: "Enter a number, like 25000."})
            return
        if payload.amount is not None and payload.amount < 0:
            await ack(response_action="errors", errors={AMOUNT_BLOCK: "The amount cannot be negative."})
            return
        await ack()
        user_id = str((body.get("user") or {}).get("id") or "")
        actor = await self.actor(user_id, client)
        await self.act(payload, actor, user_id=user_id, channel=metadata.get("channel"),
                       click=f"{view.get('id') or ''}:{view.get('hash') or body.get('trigger_id') or ''}")

    # --- /sla --------------------------------------------------------------------------------

    async def on_sla(self, ack: AsyncAck, command: dict[str, Any], client: AsyncWebClient) -> None:
        """Answer in the HTTP response when the answer is quick (it almost always is); otherwise
        acknowledge now and deliver the answer through the outbox."""
        user_id = str(command.get("user_id") or "")
        channel = command.get("channel_id") or None
        task = asyncio.ensure_future(self._command(user_id, channel, str(command.get("text") or ""), client))
        try:
            reply = await asyncio.wait_for(asyncio.shield(task), timeout=self.command_budget)
        except TimeoutError:
            await ack(response_type="ephemeral", text="Working on it: the answer follows in a moment.")
            try:
                late = await task
            except Exception:
                log.exception("/sla failed after its acknowledgement")
                late = CommandReply("Sorry, that command failed. Please try again.")
            await self._thread(self._queue_reply, late, user_id=user_id, channel=channel,
                               key=str(command.get("trigger_id") or ""))
            self.services.wake_worker()
            return
        except Exception:
            log.exception("/sla failed")
            await ack(response_type="ephemeral", text="Sorry, that command failed. Please try again.")
            return
        await ack(**command_response(reply))

    async def _command(self, user_id: str, channel: str | None, text: str, client: AsyncWebClient) -> CommandReply:
        actor = await self.actor(user_id, client)
        return await self._thread(run, self.ctx, text=text, actor=actor, platform=PLATFORM, channel=channel,
                                  prefix=COMMAND_PREFIX)

    def _queue_reply(self, reply: CommandReply, *, user_id: str, channel: str | None, key: str) -> None:
        interaction.queue_reply(self.ctx, platform=PLATFORM, text=reply.as_text(), user_id=user_id, channel=channel,
                                key=key, private=reply.private,
                                extra={"blocks": command_response(reply)["blocks"]})

    # --- App Home ----------------------------------------------------------------------------

    async def on_home_opened(self, event: dict[str, Any], client: AsyncWebClient) -> None:
        if event.get("tab") == "messages":
            return
        user_id = str(event.get("user") or "")
        actor = await self.actor(user_id, client)
        parts = await self._thread(self.home_parts, actor)
        await client.views_publish(user_id=user_id, view=home_view(parts))

    def home_parts(self, actor: Actor) -> list[CommandReply]:
        """Open leads and deadlines, then this month's numbers (the rep's own, a manager's team)."""
        scope = my_scope(self.ctx, actor)
        if scope is None:
            return [not_in_agreement(actor)]
        return [leads_reply(self.ctx, actor), status_reply(self.ctx, scope=scope[0], label=scope[1])]

    # --- errors ------------------------------------------------------------------------------

    async def on_error(self, error: Exception, body: dict[str, Any]) -> None:
        # Names only: request bodies can hold people's text, and exceptions never carry the token.
        kind = body.get("type") if isinstance(body, dict) else None
        log.error("slack %s handler failed: %s", kind, type(error).__name__, exc_info=error)


def _request(payload: ActionPayload, actor: Actor) -> ActionRequest:
    return ActionRequest(lead_id=payload.lead_id, action=payload.action, actor=actor, version=payload.version,
                         reason=payload.reason, amount=payload.amount, to_rep=payload.to_rep)
