"""The outbox's transports for a process that serves no HTTP: `slabot worker`, `slabot tick` and
`slabot digest --send` deliver to Slack, Teams, e-mail or the console without building the web app
(bot/http/app.py builds the same transports with their routes for `slabot serve`)."""

from __future__ import annotations

from bot.services import Services


def build_transports(services: Services) -> None:
    """Put every configured platform's transport in `services.transports`."""
    settings = services.settings
    if settings.slack_enabled:
        from bot.slack.app import transport as slack_transport

        services.transports["slack"] = slack_transport(services)
    if settings.teams_enabled:
        from bot.teams.app import transport as teams_transport

        services.transports["teams"] = teams_transport(services)
    add_local_transports(services)


def add_local_transports(services: Services) -> None:
    """The transports that need no route (the demo's console, e-mail): the web app adds them too."""
    settings = services.settings
    if settings.console:
        from bot.demo.console import ConsoleTransport

        services.transports["console"] = ConsoleTransport(services.ctx)
    if settings.slabot_smtp_url is not None and settings.slabot_smtp_from:
        from bot.email.transport import EmailTransport

        services.transports["email"] = EmailTransport.from_url(
            settings.slabot_smtp_url.get_secret_value(), settings.slabot_smtp_from, now=services.ctx.now)
