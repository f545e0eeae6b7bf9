"""Runtime settings from the environment, read once and passed into create_app: no import-time globals."""

from __future__ import annotations

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

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
    #: The public base URL (https://bot.example.com) when behind a proxy: HubSpot signs the URL it called.
    slabot_public_url: str | None = None

    #: Largest request body accepted on the intake and webhook routes.
    max_body_bytes: int = 256 * 1024
    #: The demo console transport (no chat credentials needed).
    console: bool = False

    @model_validator(mode="after")
    def _teams_auth(self) -> Settings:
        if self.teams_allow_unauthenticated and self.teams_app_id:
            raise ValueError("TEAMS_ALLOW_UNAUTHENTICATED=1 is refused when TEAMS_APP_ID is set: "
                             "it would switch off token checks for a real bot")
        return self

    @property
    def slack_enabled(self) -> bool:
        return bool(self.slack_bot_token and self.slack_signing_secret)

    @property
    def teams_enabled(self) -> bool:
        return bool(self.teams_app_id) or self.teams_allow_unauthenticated

    def platforms(self) -> tuple[str, ...]:
        enabled = [name for name, on in (("slack", self.slack_enabled), ("teams", self.teams_enabled),
                                         ("console", self.console)) if on]
        return tuple(enabled)
