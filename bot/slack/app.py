"""Slack wired into the service: the Bolt app behind `POST /slack/events`, Socket Mode when an app
token is set, and the transport the outbox worker posts through."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.starlette.async_handler import to_async_bolt_request, to_starlette_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_sdk.signature import SignatureVerifier

from bot.http.api import read_body
from bot.services import Services
from bot.slack import inbound
from bot.slack.listeners import SlackListeners
from bot.slack.transport import SlackTransport, make_client

log = logging.getLogger("slabot.slack")

#: The one URL Slack calls for events, interactivity and the `/sla` command.
EVENTS_PATH = "/slack/events"


class SocketMode:
    """Socket Mode for installs without a public URL: the same Bolt app over a WebSocket.

    The handler is built in the app's startup hook (the Socket Mode client needs the running event
    loop) and connects in the background, so a Slack outage never blocks the service from
    starting; the client keeps retrying and reconnecting on its own.
    """

    def __init__(self, bolt: AsyncApp, app_token: str, *, ping_interval: float = 10.0) -> None:
        self.bolt = bolt
        self._app_token = app_token
        self.ping_interval = ping_interval
        self.handler: AsyncSocketModeHandler | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.handler = AsyncSocketModeHandler(self.bolt, self._app_token, logger=log,
                                              ping_interval=self.ping_interval)
        self.task = asyncio.create_task(self._connect(self.handler), name="slack-socket-mode")

    async def _connect(self, handler: AsyncSocketModeHandler) -> None:
        try:
            await handler.connect_async()  # type: ignore[no-untyped-call]
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - logged; the HTTP endpoint keeps working
            log.error("Slack Socket Mode could not connect: %s", type(exc).__name__)

    async def stop(self) -> None:
        if self.handler is not None:
            with contextlib.suppress(Exception):
                await self.handler.close_async()  # type: ignore[no-untyped-call]
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task


@dataclass
class SlackIntegration:
    """What `install` built, kept on `app.state.slack` (tests and the CLI look at it)."""

    bolt: AsyncApp
    listeners: SlackListeners
    transport: SlackTransport
    socket_mode: SocketMode | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def _without_spurious_token_warning(logger: logging.Logger) -> Iterator[None]:
    """Bolt reads SLACK_BOT_TOKEN from the environment on its own and, finding it beside the
    `client` we pass (which carries that same token and the API URL, so Bolt has no other way to
    be given both), warns at every start that the token "will be unused". Only that one line,
    only while the app is built, is dropped; every other Bolt warning still shows."""
    spurious = warning_client_prioritized_and_token_skipped()

    def keep(record: logging.LogRecord) -> bool:
        return record.getMessage() != spurious

    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)


def transport(services: Services) -> SlackTransport:
    """The Slack transport alone, for a process that serves no HTTP (`slabot worker`, `tick`, `digest --send`)."""
    token = services.settings.slack_bot_token
    if token is None:
        raise ValueError("Slack needs SLACK_BOT_TOKEN")
    return SlackTransport(make_client(token.get_secret_value(), services.settings.slack_api_url))


def install(app: FastAPI, services: Services) -> SlackTransport:
    settings = services.settings
    if settings.slack_bot_token is None or (settings.slack_signing_secret is None and settings.slack_app_token is None):
        raise ValueError("Slack needs SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET (or SLACK_APP_TOKEN for Socket Mode)")
    token = settings.slack_bot_token.get_secret_value()
    client = make_client(token, settings.slack_api_url)
    # Socket Mode alone (no signing secret): Slack signs nothing on the WebSocket, so there is no
    # secret to check, and the HTTP route is not served at all (it could verify nothing).
    secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
    # The client carries the bot token and the API URL; Bolt takes the token from it.
    bolt_log = logging.getLogger("slabot.slack.bolt")
    with _without_spurious_token_warning(bolt_log):
        bolt = AsyncApp(
            client=client, signing_secret=secret or "",
            process_before_response=False, request_verification_enabled=secret is not None,
            logger=bolt_log,
        )
    listeners = SlackListeners(services)
    listeners.transport_client = client
    listeners.register(bolt)
    limit = settings.max_body_bytes

    # None in Socket Mode alone: the HTTP route below is then not served at all.
    verifier = SignatureVerifier(secret) if secret else None

    async def slack_events(request: Request) -> Response:
        # Bounded before Bolt parses anything: 413 over the limit.
        body = await read_body(request, limit)
        # Bolt parses the body once, here; its parse is what is checked below and what the
        # listeners get. A body it cannot parse at all (not UTF-8, not JSON, not an object) is
        # no request Bolt could answer.
        try:
            bolt_request = to_async_bolt_request(request, body)
        except Exception:  # noqa: BLE001 - whatever Bolt's parser raised, the body is unreadable
            bolt_request = None
        problem = inbound.unreadable(body, request.headers.get("content-type", "")) if bolt_request is None \
            else inbound.problem(bolt_request.body, bolt_request.raw_body, bolt_request.content_type)
        # Signed but malformed: a 400 saying what is wrong, never a listener's 500. The signature
        # is checked here only then; Bolt checks it on every request it routes (401 if forged).
        if problem is not None and verifier is not None and verifier.is_valid_request(body, dict(request.headers)):
            return JSONResponse({"error": problem}, status_code=400)
        if bolt_request is None:
            return JSONResponse({"error": "invalid request"}, status_code=401)
        return to_starlette_response(await bolt.async_dispatch(bolt_request))

    if secret is not None:
        app.add_api_route(EVENTS_PATH, slack_events, methods=["POST"], include_in_schema=False)
    transport = SlackTransport(client)
    integration = SlackIntegration(bolt=bolt, listeners=listeners, transport=transport)
    if settings.slack_app_token is not None:
        socket_mode = SocketMode(bolt, settings.slack_app_token.get_secret_value())
        app.state.startup_hooks.append(socket_mode.start)
        app.state.shutdown_hooks.append(socket_mode.stop)
        integration.socket_mode = socket_mode
    app.state.slack = integration
    return transport
