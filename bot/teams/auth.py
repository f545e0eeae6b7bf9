"""Teams authentication in both directions: the Bot Framework JWT on inbound activities, the
bot's own token on outbound connector calls, and which serviceUrl hosts may be talked to.

Two modes, chosen by Settings (which refuses to have both at once):

* `TEAMS_APP_ID` set (production): inbound requests need a valid Bot Framework token (signature
  from the Bot Framework JWKS, audience = our app id, issuer checked); outbound calls carry an
  MSAL client-credentials token; only Microsoft serviceUrl hosts are accepted.
* `TEAMS_ALLOW_UNAUTHENTICATED=1` and no app id (local runs, tests): activities without an
  Authorization header are accepted, outbound calls carry no token, and the loopback fake
  connector is an allowed serviceUrl (Microsoft hosts still are; anything else is not).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from microsoft_agents.authentication.msal import MsalConnectionManager
from microsoft_agents.hosting.core import (
    AgentAuthConfiguration,
    AuthenticationConstants,
    ClaimsIdentity,
    OutboundHostValidator,
    RestChannelServiceClientFactory,
    TurnContext,
)
from microsoft_agents.hosting.core.connector import ConnectorClientBase
from microsoft_agents.hosting.core.connector.client import UserTokenClient

from bot.settings import Settings

log = logging.getLogger("slabot.teams")

#: The audience (and scope root) of tokens for the Bot Connector service.
CONNECTOR_AUDIENCE: str = AuthenticationConstants.AGENTS_SDK_SCOPE
#: Multi-tenant bot registrations get their tokens from this tenant.
DEFAULT_TOKEN_TENANT = "botframework.com"
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class LoopbackAllowingValidator(OutboundHostValidator):
    """The SDK's host validator, plus http(s) on loopback: for the local fake connector only.

    The stock validator always refuses loopback addresses, even when listed (see the spike), so
    anonymous test mode needs this to reach a fake on 127.0.0.1. Production never uses it.
    """

    def is_allowed(self, url: Any) -> bool:
        parts = urlsplit(str(url))
        if parts.scheme in ("http", "https") and (parts.hostname or "") in _LOOPBACK_HOSTS \
                and not parts.username and not parts.password:
            return True
        return bool(super().is_allowed(url))


#: The SDK cuts conversation ids to 150 characters before building URLs (spike pitfall 11); Teams
#: 1:1 chat ids come close to that, so our clients allow longer ones.
MAX_CONVERSATION_ID = 1024


def allow_long_conversation_ids(client: Any) -> Any:
    """Raise the SDK's conversation-id cut-off on a connector client (a private setting of the
    pinned 1.9.0 ConversationsOperations; harmless if a later version drops it)."""
    operations = getattr(client, "_conversations", None)
    if operations is not None and hasattr(operations, "_max_conversation_id_length"):
        operations._max_conversation_id_length = MAX_CONVERSATION_ID
    return client


class TeamsClientFactory(RestChannelServiceClientFactory):
    """The SDK's client factory, with connector clients that keep long conversation ids whole."""

    async def create_connector_client(self, context: TurnContext | None, claims_identity: ClaimsIdentity,
                                      service_url: str, audience: str, scopes: list[str] | None = None,
                                      use_anonymous: bool = False) -> ConnectorClientBase:
        client = await super().create_connector_client(context, claims_identity, service_url, audience,
                                                       scopes, use_anonymous)
        return allow_long_conversation_ids(client)  # type: ignore[no-any-return]


class AnonymousOutboundClientFactory(TeamsClientFactory):
    """Connector and user-token clients without tokens (anonymous mode only).

    Needed because the SDK's proactive paths build non-empty synthetic claims and would otherwise
    ask MSAL for a token with no credentials configured (spike pitfall 5).
    """

    async def create_connector_client(self, context: TurnContext | None, claims_identity: ClaimsIdentity,
                                      service_url: str, audience: str, scopes: list[str] | None = None,
                                      use_anonymous: bool = False) -> ConnectorClientBase:
        return await super().create_connector_client(context, claims_identity, service_url, audience,
                                                     scopes, use_anonymous=True)

    async def create_user_token_client(self, context: TurnContext, claims_identity: ClaimsIdentity,
                                       use_anonymous: bool = False) -> UserTokenClient:
        return await super().create_user_token_client(context, claims_identity, use_anonymous=True)


@dataclass
class TeamsAuth:
    """Everything the adapter, the /api/messages route and the transport need to authenticate."""

    app_id: str
    anonymous: bool
    configuration: AgentAuthConfiguration
    connections: MsalConnectionManager
    client_factory: RestChannelServiceClientFactory
    host_validator: OutboundHostValidator

    def service_url_allowed(self, url: str) -> bool:
        return bool(self.host_validator.is_allowed(url))

    def bot_claims(self) -> ClaimsIdentity:
        """The identity the bot acts as on proactive calls (empty, i.e. anonymous, in test mode)."""
        if self.anonymous:
            return ClaimsIdentity()
        return ClaimsIdentity({AuthenticationConstants.AUDIENCE_CLAIM: self.app_id,
                               AuthenticationConstants.APP_ID_CLAIM: self.app_id})

    async def outbound_token(self, service_url: str) -> str:
        """A bearer token for the Bot Connector at `service_url` ("" = send no Authorization)."""
        if self.anonymous:
            return ""
        provider = self.connections.get_token_provider(self.bot_claims(), service_url)
        token = await provider.get_access_token(CONNECTOR_AUDIENCE, [f"{CONNECTOR_AUDIENCE}/.default"])
        return str(token or "")


def build_auth(settings: Settings) -> TeamsAuth:
    app_id = settings.teams_app_id or ""
    if app_id:
        password = settings.teams_app_password.get_secret_value() if settings.teams_app_password else None
        if not password:
            log.warning("TEAMS_APP_ID is set but TEAMS_APP_PASSWORD is not: inbound tokens are checked, "
                        "but the bot cannot obtain tokens to post to Teams")
        configuration = AgentAuthConfiguration(
            client_id=app_id, tenant_id=settings.teams_tenant_id or DEFAULT_TOKEN_TENANT,
            client_secret=password, anonymous_allowed=False, validate_issuer=True)
        connections = MsalConnectionManager(connections_configurations={"SERVICE_CONNECTION": configuration})
        factory: RestChannelServiceClientFactory = TeamsClientFactory(connections)
        validator: OutboundHostValidator = OutboundHostValidator(enabled=True)
        return TeamsAuth(app_id=app_id, anonymous=False, configuration=configuration,
                         connections=connections, client_factory=factory, host_validator=validator)
    if not settings.teams_allow_unauthenticated:
        raise ValueError("Teams needs TEAMS_APP_ID, or TEAMS_ALLOW_UNAUTHENTICATED=1 for local tests")
    log.warning("Teams runs WITHOUT authentication (TEAMS_ALLOW_UNAUTHENTICATED=1): for local tests only")
    # Without an app id the SDK warns "App ID is not provided" on every turn (spike pitfall 10).
    logging.getLogger("microsoft_agents.hosting.core.connector.client.user_token_client").setLevel(logging.ERROR)
    configuration = AgentAuthConfiguration(anonymous_allowed=True)
    connections = MsalConnectionManager(connections_configurations={"SERVICE_CONNECTION": configuration})
    return TeamsAuth(app_id="", anonymous=True, configuration=configuration, connections=connections,
                     client_factory=AnonymousOutboundClientFactory(connections),
                     host_validator=LoopbackAllowingValidator(enabled=True))
