"""Teams inbound: `POST /api/messages`, hosted with the Microsoft 365 Agents SDK (CloudAdapter and
an ActivityHandler), and the turn logic behind it.

What arrives and what slabot does with it:

* conversationUpdate, bot added (team, group chat, personal): store the conversation reference
  for proactive posts; bot removed or channel deleted: forget it.
* message (`@slabot sla status` in a channel, `sla leads` in a personal chat): the neutral
  `/sla` command (commands.sla.run), answered in place. `sla link TEAM` in a channel binds it.
* invoke `adaptiveCard/action` (a card button): commands.actions.perform with the same rules as
  Slack; answered with the refreshed card, or, when refused, with a message only the clicker
  sees while the outbox re-renders the card.

Security (spike pitfalls 3, 4, 6): the Bot Framework JWT is checked by the SDK's route-level
decorator on this route only (health checks stay open; without it the adapter would fail open),
a crash inside token validation is a 401, not a 500, and a failing turn is logged and answered
with a generic apology, never with the exception text.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
from typing import Any

import anyio
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from microsoft_agents.activity import (
    Activity,
    AdaptiveCardInvokeResponse,
    AdaptiveCardInvokeValue,
    ChannelAccount,
    ConversationAccount,
    ConversationParameters,
    InvokeResponse,
)
from microsoft_agents.hosting.core import ActivityHandler, TurnContext
from microsoft_agents.hosting.core.connector import ConnectorClientBase
from microsoft_agents.hosting.core.connector.teams import TeamsConnectorClient
from microsoft_agents.hosting.fastapi import CloudAdapter, jwt_authorization_decorator
from pydantic import ValidationError

from bot.presentation.cards import ACTION_PREFIX, ActionPayload
from bot.presentation.presenters import lead_card
from bot.services import Services
from bot.teams import store
from bot.teams.auth import TeamsAuth, build_auth
from bot.teams.inbound import malformed_card_action
from bot.teams.render import render_card, reply_text
from bot.teams.transport import ADAPTIVE_CARD, TeamsTransport, text_activity
from commands import interaction
from commands.actions import ActionRequest
from commands.context import Actor
from sla.lifecycle import Action

log = logging.getLogger("slabot.teams")

MESSAGE_RESPONSE = "application/vnd.microsoft.activity.message"
ERROR_RESPONSE = "application/vnd.microsoft.error"
APOLOGY = ("Sorry, something went wrong on slabot's side. It has been logged; please try again "
           "in a minute.")
#: A member lookup must not eat the invoke's budget (Teams gives up on an invoke after ~5 s).
MEMBER_LOOKUP_TIMEOUT = 2.0
_AT_TAG = re.compile(r"<at>.*?</at>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]+>")


# --- the route -------------------------------------------------------------------------------


def transport(services: Services) -> TeamsTransport:
    """The Teams transport alone, for a process that serves no HTTP (`slabot worker`, `tick`, `digest --send`)."""
    settings = services.settings
    return TeamsTransport(services.ctx, build_auth(settings), tenant_id=settings.teams_tenant_id)


def install(app: FastAPI, services: Services) -> TeamsTransport:
    """Mount `POST /api/messages` on `app` and return the Teams transport for the outbox."""
    settings = services.settings
    auth = build_auth(settings)
    adapter = CloudAdapter(channel_service_client_factory=auth.client_factory,
                           host_validator=auth.host_validator)
    adapter.on_turn_error = on_turn_error
    agent = SlabotTeams(services, auth)
    # Read by the SDK's JWT decorator; with `anonymous_allowed` only when no app id is set.
    app.state.agent_configuration = auth.configuration
    limit = settings.max_body_bytes

    @jwt_authorization_decorator  # type: ignore[untyped-decorator]
    async def authorized(request: Request) -> Response:
        # Read at most `limit` bytes (a chunked body has no Content-Length to refuse early), then
        # hand the bytes to Starlette's body cache, which the adapter's request.json() reads.
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return JSONResponse({"error": f"body over {limit // 1024} KiB"}, status_code=413)
            chunks.append(chunk)
        request._body = b"".join(chunks)
        if (malformed := malformed_card_action(request._body)) is not None:
            return JSONResponse(malformed)
        try:
            response: Response | None = await adapter.process(request, agent)
        except ValidationError:
            return JSONResponse({"error": "not a Bot Framework activity"}, status_code=400)
        return response if response is not None else Response(status_code=202)

    async def messages(request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return JSONResponse({"error": f"body over {limit // 1024} KiB"}, status_code=413)
        try:
            result: Response = await authorized(request)
            return result
        except Exception:
            if getattr(request.state, "claims_identity", None) is None:
                # The SDK's validator can raise outside its own except clause (e.g. a token with no
                # `kid` header): that is a bad token, not a server error.
                log.warning("Teams request refused: token validation failed")
                return JSONResponse({"error": "Invalid token or authentication failed."}, status_code=401)
            raise

    app.add_api_route("/api/messages", messages, methods=["POST"], include_in_schema=False)
    app.state.teams_adapter = adapter
    app.state.teams_agent = agent
    return TeamsTransport(services.ctx, auth, tenant_id=settings.teams_tenant_id)


async def on_turn_error(context: TurnContext, error: Exception) -> None:
    """Replaces the SDK default, which posts `Exception caught : <text>` into the chat."""
    activity = context.activity
    log.error("Teams %s turn failed: %s", activity.type, type(error).__name__, exc_info=error)
    try:
        if activity.type == "invoke":
            if activity.name == "adaptiveCard/action":
                body: Any = AdaptiveCardInvokeResponse(status_code=200, type=MESSAGE_RESPONSE, value=APOLOGY
                                                       ).model_dump(by_alias=True, exclude_none=True)
                await context.send_activity(Activity(type="invokeResponse", value=InvokeResponse(
                    status=200, body=body).model_dump(by_alias=True, exclude_none=True)))
            return
        if activity.type == "message":
            await context.send_activity(text_activity(reply_text(APOLOGY)))
    except Exception as exc:  # noqa: BLE001 - the apology is best effort; the error is logged above
        log.warning("could not send the apology either: %s", type(exc).__name__)


# --- helpers on activities ----------------------------------------------------------------------


def channel_data(activity: Activity) -> dict[str, Any]:
    data = activity.channel_data
    if isinstance(data, dict):
        return data
    if data is not None and hasattr(data, "model_dump"):
        dumped: dict[str, Any] = data.model_dump(by_alias=True, exclude_none=True)
        return dumped
    return {}


def event_type(activity: Activity) -> str | None:
    """channelData.eventType (teamMemberAdded, channelCreated, ...). The SDK's own selector for it
    does `vars(channel_data)` on a dict and crashes (spike pitfall 7), so we read the dict."""
    value = channel_data(activity).get("eventType")
    return value if isinstance(value, str) else None


def _nested_id(data: dict[str, Any], *path: str) -> str | None:
    node: Any = data
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, str) and node else None


def conversation_kind(activity: Activity) -> str:
    conv = activity.conversation
    kind = (conv.conversation_type if conv else None) or ""
    if kind in ("channel", "personal", "groupChat"):
        return kind
    data = channel_data(activity)
    if data.get("channel") or data.get("team"):
        return "channel"
    return "personal" if conv is not None and conv.id.startswith("a:") else "groupChat"


def tenant_of(activity: Activity) -> str | None:
    conv = activity.conversation
    return _nested_id(channel_data(activity), "tenant", "id") or (conv.tenant_id if conv else None)


def command_text(activity: Activity) -> str:
    """The command words of a message: mentions, markup and a leading `sla` removed."""
    text = activity.remove_recipient_mention() if activity.entities else (activity.text or "")
    text = html.unescape(_TAG.sub(" ", _AT_TAG.sub(" ", text)))
    words = text.split()
    if words and words[0].lower() in ("sla", "/sla"):
        words = words[1:]
    return " ".join(words)


def _account(account: ChannelAccount | None) -> dict[str, Any]:
    if account is None or not account.id:
        return {}
    out: dict[str, Any] = {"id": account.id}
    if account.name:
        out["name"] = account.name
    if account.aad_object_id:
        out["aadObjectId"] = account.aad_object_id
    return out


# --- the agent -------------------------------------------------------------------------------


class SlabotTeams(ActivityHandler):
    """Turn logic. Database work runs in worker threads; the event loop only waits on I/O."""

    def __init__(self, services: Services, auth: TeamsAuth) -> None:
        super().__init__()
        self.services = services
        self.ctx = services.ctx
        self.auth = auth

    # conversations ---------------------------------------------------------------------------

    async def _save_conversation(self, activity: Activity, conversation_id: str | None = None) -> None:
        conv = activity.conversation
        if conv is None or not activity.service_url:
            return
        kind = conversation_kind(activity)
        data = channel_data(activity)
        key = store.base_conversation_id(conversation_id or conv.id)
        user = _account(activity.from_property) if kind == "personal" else {}
        reference: dict[str, Any] = {
            "bot": _account(activity.recipient), "conversation": {"id": key, "conversationType": kind},
            "channelId": str(activity.channel_id or "msteams"), "serviceUrl": activity.service_url,
        }
        if user:
            reference["user"] = user
        tenant = tenant_of(activity)
        if tenant:
            reference["tenantId"] = tenant
        team_id = _nested_id(data, "team", "id")
        aad = activity.from_property.aad_object_id if kind == "personal" and activity.from_property else None
        service_url = activity.service_url
        await anyio.to_thread.run_sync(lambda: store.save_conversation(
            self.ctx.db, conversation_id=key, kind=kind, service_url=service_url, tenant_id=tenant,
            team_id=team_id, user_aad_id=aad, reference=reference, now=self.ctx.now()))

    async def on_conversation_update_activity(self, turn_context: TurnContext) -> None:  # type: ignore[override]
        activity = turn_context.activity
        bot_id = activity.recipient.id if activity.recipient else None
        added = activity.members_added or []
        removed = activity.members_removed or []
        event = event_type(activity)
        if bot_id and any(m.id == bot_id for m in removed):
            conv_id = activity.conversation.id if activity.conversation else ""
            await anyio.to_thread.run_sync(store.delete_conversation, self.ctx.db, conv_id)
            team_id = _nested_id(channel_data(activity), "team", "id")
            if team_id and conversation_kind(activity) == "channel":
                await anyio.to_thread.run_sync(store.delete_team_conversations, self.ctx.db, team_id)
            log.info("slabot was removed from a Teams %s", conversation_kind(activity))
            return
        if event == "channelDeleted":
            channel = _nested_id(channel_data(activity), "channel", "id")
            if channel:
                await anyio.to_thread.run_sync(store.delete_conversation, self.ctx.db, channel)
            return
        if not (bot_id and any(m.id == bot_id for m in added)):
            return
        await self._save_conversation(activity)
        selected = _nested_id(channel_data(activity), "settings", "selectedChannel", "id")
        if selected and activity.conversation and selected != activity.conversation.id:
            await self._save_conversation(activity, selected)
        log.info("slabot was added to a Teams %s", conversation_kind(activity))
        await self._welcome(turn_context)

    async def _welcome(self, turn_context: TurnContext) -> None:
        kind = conversation_kind(turn_context.activity)
        if kind == "personal":
            text = ("Hi, I am slabot. I will message you here about your leads (reminders and "
                    "escalations). Send `sla help` to see what I can do.")
        else:
            text = ("Hi, I am slabot. To get a sales team's lead cards in a channel, mention me "
                    "there with `sla link TEAM`. `sla help` lists every command.")
        try:
            await turn_context.send_activity(text_activity(text))
        except Exception as exc:  # noqa: BLE001 - a welcome that fails must not fail the install
            log.warning("could not send the Teams welcome message: %s", type(exc).__name__)

    # people ----------------------------------------------------------------------------------

    async def _member(self, turn_context: TurnContext, user_id: str) -> Any:
        """The connector's member lookup (GET /v3/conversations/{id}/members/{userId}): a
        TeamsChannelAccount (with `email` and `userPrincipalName`), or None."""
        client = turn_context.services.get(ConnectorClientBase)  # type: ignore[type-abstract]
        conv = turn_context.activity.conversation
        if not isinstance(client, TeamsConnectorClient) or conv is None:
            return None
        try:
            return await asyncio.wait_for(
                client.get_conversation_member(store.base_conversation_id(conv.id), user_id),
                MEMBER_LOOKUP_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - no e-mail is a degraded answer, not an error
            log.warning("Teams member lookup failed: %s", type(exc).__name__)
            return None

    async def actor(self, turn_context: TurnContext) -> Actor:
        """Who this is in the agreement: by `teams:` (AAD object id), else by the e-mail the
        connector's member lookup reports (looked up once, then cached in PlatformUser)."""
        sender = turn_context.activity.from_property
        mri = sender.id if sender else None
        aad = sender.aad_object_id if sender else None
        known = await anyio.to_thread.run_sync(lambda: interaction.who(
            self.ctx, platform=store.PLATFORM, user_id=aad or mri or "", stored_as=[i for i in (aad, mri) if i]))
        if known.looked_up or not mri:
            return known.actor
        member = await self._member(turn_context, mri)
        if member is None:
            return known.actor
        aad = aad or getattr(member, "aad_object_id", None)
        upn = getattr(member, "user_principal_name", None)
        email = getattr(member, "email", None) or (upn if upn and "@" in upn else None)
        # Stored lower-cased: a DM addressed by e-mail finds the person's `29:` id by it (store.find_mri).
        found_aad, found_email = aad, email.strip().lower() if email else None
        return await anyio.to_thread.run_sync(lambda: interaction.remember(
            self.ctx, platform=store.PLATFORM, user_id=found_aad or mri, email=found_email,
            stored_as=[i for i in (found_aad, mri) if i], keep_known_email=True))

    # messages --------------------------------------------------------------------------------

    async def on_message_activity(self, turn_context: TurnContext) -> None:  # type: ignore[override]
        activity = turn_context.activity
        await self._save_conversation(activity)
        text = command_text(activity)
        if not text and activity.value is not None:
            return   # a card submit from an old client; cards use Action.Execute (invokes)
        actor = await self.actor(turn_context)
        kind = conversation_kind(activity)
        channel = store.base_conversation_id(activity.conversation.id) if kind == "channel" else None
        from commands import sla as sla_command

        reply = await anyio.to_thread.run_sync(lambda: sla_command.run(
            self.ctx, text=text, actor=actor, platform="teams", channel=channel, prefix="sla "))
        message = text_activity(reply_text(reply.text, reply.lines))
        if reply.private and kind != "personal" and await self._send_privately(turn_context, message):
            await turn_context.send_activity(text_activity(
                "I sent you the answer in our personal chat (only you can see it there)."))
        else:
            await turn_context.send_activity(message)
        self.services.wake_worker()

    async def _send_privately(self, turn_context: TurnContext, message: Activity) -> bool:
        """Teams has no ephemeral messages: a private answer to a channel command goes to the
        person's 1:1 chat with the bot (created if needed; allowed because the bot is in the team).
        False when that is impossible, and the caller answers in place instead."""
        activity = turn_context.activity
        sender = activity.from_property
        client = turn_context.services.get(ConnectorClientBase)  # type: ignore[type-abstract]
        if sender is None or not sender.id or client is None or activity.service_url is None:
            return False
        aad = sender.aad_object_id
        tenant = tenant_of(activity)
        existing = await anyio.to_thread.run_sync(store.personal_conversation, self.ctx.db, aad) if aad else None
        try:
            if existing is not None:
                conversation_id = existing.conversation_id
            else:
                fields: dict[str, Any] = {"is_group": False, "members": [ChannelAccount(id=sender.id)]}
                if activity.recipient is not None:
                    fields["agent"] = ChannelAccount(id=activity.recipient.id, name=activity.recipient.name)
                if tenant:
                    fields["tenant_id"] = tenant
                    fields["channel_data"] = {"tenant": {"id": tenant}}
                created = await client.conversations.create_conversation(ConversationParameters(**fields))
                conversation_id = created.id
                if not conversation_id:
                    return False
                service_url = activity.service_url
                await anyio.to_thread.run_sync(lambda: store.save_conversation(
                    self.ctx.db, conversation_id=conversation_id, kind="personal", service_url=service_url,
                    tenant_id=tenant, team_id=None, user_aad_id=aad, now=self.ctx.now(),
                    reference={"user": _account(sender), "bot": _account(activity.recipient),
                               "conversation": {"id": conversation_id, "conversationType": "personal"}}))
            message.conversation = ConversationAccount(id=conversation_id)
            await client.conversations.send_to_conversation(conversation_id, message)
            return True
        except Exception as exc:  # noqa: BLE001 - fall back to answering in the channel
            log.warning("could not answer privately in Teams: %s", type(exc).__name__)
            return False

    # card buttons ------------------------------------------------------------------------------

    async def on_adaptive_card_invoke(  # type: ignore[override]
            self, turn_context: TurnContext, invoke_value: AdaptiveCardInvokeValue,
    ) -> AdaptiveCardInvokeResponse:
        action = invoke_value.action
        verb = action.verb or ""
        try:
            if not verb.startswith(ACTION_PREFIX):
                raise ValueError(verb)
            payload = ActionPayload.parse(dict(action.data or {}))
            if payload.action is not Action(verb.removeprefix(ACTION_PREFIX)):
                raise ValueError(verb)
        except (KeyError, ValueError, TypeError):
            return AdaptiveCardInvokeResponse(status_code=400, type=ERROR_RESPONSE,
                                              value={"code": "BadRequest", "message": "Unknown card action."})
        actor = await self.actor(turn_context)
        acted = await anyio.to_thread.run_sync(lambda: interaction.act(self.ctx, ActionRequest(
            lead_id=payload.lead_id, action=payload.action, actor=actor, version=payload.version,
            reason=payload.reason, amount=payload.amount, to_rep=payload.to_rep)))
        outcome = acted.outcome
        if outcome.refused or outcome.lead is None:
            # Nothing changed. The message shows only to the clicker; the card in the channel is
            # re-rendered through the outbox in case theirs was stale. The invoke id dedupes
            # Teams' own retries of this click.
            token = turn_context.activity.id or "click"
            await anyio.to_thread.run_sync(lambda: interaction.queue_refresh(
                self.ctx, platform=store.PLATFORM, lead_id=payload.lead_id, token=token))
            self.services.wake_worker()
            return AdaptiveCardInvokeResponse(status_code=200, type=MESSAGE_RESPONSE, value=outcome.text)
        self.services.wake_worker()
        card = render_card(lead_card(self.ctx, outcome.lead))
        return AdaptiveCardInvokeResponse(status_code=200, type=ADAPTIVE_CARD, value=card)

