"""Runtime settings from the environment, read once and passed into create_app: no import-time globals."""

from __future__ import annotations

from typing import Literal

from pydantic import SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sla.agreement import Agreement

#: Shortest intake token `serve` and `worker` accept (issue: a guessable token guards lead intake).
MIN_INTAKE_TOKEN = 32
MAKE_TOKEN = 'python3 -c "import secrets; print(secrets.token_urlsafe(32))"'


class Settings(BaseSettings):
    #: `.env` in the working directory, when there is one; the environment wins over it.
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False,
                                      env_file=".env", env_file_encoding="utf-8")

    database_url: str = "sqlite:///./slabot.db"
    slabot_agreement: str = "agreement.yaml"
    slabot_intake_token: SecretStr | None = None

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"

    teams_app_id: str | None = None
    teams_app_password: SecretStr | None = None
    teams_tenant_id: str | None = None
    teams_allow_unauthenticated: bool = False

    hubspot_client_secret: SecretStr | None = None
    #: A private app's access token: contact events are enriched with the contact's properties and
    #: deal events become outcomes (scopes crm.objects.contacts.read, crm.objects.deals.read).
    hubspot_access_token: SecretStr | None = None
    #: Base URL of HubSpot's API (tests point it at a fake).
    hubspot_api_url: str = "https://api.hubapi.com"
    #: The public base URL (https://bot.example.com) when behind a proxy: HubSpot signs the URL it called.
    slabot_public_url: str | None = None

    #: The digest by e-mail (`digests[].via: [email]`): smtp://[user:password@]host[:port] (STARTTLS when
    #: the server offers it) or smtps://... (implicit TLS); user and password URL-decoded.
    slabot_smtp_url: SecretStr | None = None
    #: The From address of e-mailed digests.
    slabot_smtp_from: str | None = None

    #: Largest request body accepted on the intake and webhook routes.
    max_body_bytes: int = 256 * 1024
    #: The demo console transport (no chat credentials needed).
    console: bool = False
    #: Signs the desk's session cookies (bot/desk). SLABOT_DESK=1 makes `serve` refuse to start without it.
    slabot_secret_key: SecretStr | None = None
    slabot_desk: bool = False

    #: Log lines: "text" (one readable line each) or "json" (one JSON object each).
    slabot_log_format: Literal["text", "json"] = "text"
    slabot_log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    @field_validator("slabot_log_level", "slabot_log_format", mode="before")
    @classmethod
    def _any_case(cls, value: object, info: ValidationInfo) -> object:
        """`debug`, ` JSON `: what people type."""
        if not isinstance(value, str):
            return value
        return value.strip().upper() if info.field_name == "slabot_log_level" else value.strip().lower()

    @model_validator(mode="after")
    def _teams_auth(self) -> Settings:
        if self.teams_allow_unauthenticated and self.teams_app_id:
            raise ValueError("TEAMS_ALLOW_UNAUTHENTICATED=1 is refused when TEAMS_APP_ID is set: "
                             "it would switch off token checks for a real bot")
        return self

    @property
    def slack_enabled(self) -> bool:
        """A bot token and a way to receive events: the signing secret (HTTP), or the app-level
        token (Socket Mode, where Slack signs nothing and the secret is not used)."""
        return bool(self.slack_bot_token and (self.slack_signing_secret or self.slack_app_token))

    @property
    def teams_enabled(self) -> bool:
        return bool(self.teams_app_id) or self.teams_allow_unauthenticated

    def platforms(self) -> tuple[str, ...]:
        enabled = [name for name, on in (("slack", self.slack_enabled), ("teams", self.teams_enabled),
                                         ("console", self.console)) if on]
        return tuple(enabled)


def email_problem(settings: Settings, agreement: Agreement) -> str | None:
    """Why a service that sends this agreement's digests cannot start: it asks for e-mail and no
    SMTP server is set (None: it may)."""
    if settings.slabot_smtp_url is None and any("email" in digest.via for digest in agreement.digests):
        return ("the agreement sends digests by e-mail (digests[].via) but SLABOT_SMTP_URL is not set: set it "
                "(smtp://user:password@host:587) and SLABOT_SMTP_FROM, or send the digests via chat")
    return None


def start_problems(settings: Settings) -> list[str]:
    """Why `serve` or `worker` must not start with these settings (empty: it may). Checked at start,
    not in validation, so tests and one-off commands can still build Settings freely."""
    problems: list[str] = []
    bot, secret, app_token = settings.slack_bot_token, settings.slack_signing_secret, settings.slack_app_token
    if bot and not secret and not app_token:
        problems.append("SLACK_BOT_TOKEN is set but SLACK_SIGNING_SECRET is not: set the signing secret "
                        "(Basic Information > Signing Secret), or SLACK_APP_TOKEN for Socket Mode, or unset "
                        "SLACK_BOT_TOKEN to run without Slack")
    if secret and not bot:
        problems.append("SLACK_SIGNING_SECRET is set but SLACK_BOT_TOKEN is not: set the bot token (xoxb-...) "
                        "or unset SLACK_SIGNING_SECRET to run without Slack")
    if app_token and not bot:
        problems.append("SLACK_APP_TOKEN is set but SLACK_BOT_TOKEN is not: Socket Mode needs the bot token "
                        "(xoxb-...) too, or unset SLACK_APP_TOKEN")
    if settings.teams_app_id and not settings.teams_app_password:
        problems.append("TEAMS_APP_ID is set but TEAMS_APP_PASSWORD is not: set the bot's client secret, or "
                        "unset TEAMS_APP_ID to run without Teams")
    if settings.teams_app_password and not settings.teams_app_id:
        problems.append("TEAMS_APP_PASSWORD is set but TEAMS_APP_ID is not: set the bot's Microsoft App ID, "
                        "or unset TEAMS_APP_PASSWORD to run without Teams")
    if settings.slabot_desk and not settings.slabot_secret_key:
        problems.append(f"SLABOT_DESK is on but SLABOT_SECRET_KEY is not set: the desk signs its sessions with it; "
                        f"make one with {MAKE_TOKEN}")
    if settings.slabot_smtp_url is not None:
        from bot.email.smtp_url import parse_smtp_url

        try:
            parse_smtp_url(settings.slabot_smtp_url.get_secret_value())
        except ValueError as exc:
            problems.append(str(exc))
        if not settings.slabot_smtp_from or "@" not in settings.slabot_smtp_from:
            problems.append("SLABOT_SMTP_URL is set but SLABOT_SMTP_FROM is not an e-mail address: set the "
                            "address digests are sent from (slabot@example.com)")
    token = settings.slabot_intake_token
    if token is not None and len(token.get_secret_value()) < MIN_INTAKE_TOKEN:
        problems.append(f"SLABOT_INTAKE_TOKEN is shorter than {MIN_INTAKE_TOKEN} characters: make one with "
                        f"{MAKE_TOKEN}")
    return problems
