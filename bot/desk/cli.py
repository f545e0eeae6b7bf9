"""`slabot desk link EMAIL [--next PATH]`: a one-time sign-in link to the desk for an operator to
pass on (the link is the last line of output)."""

from __future__ import annotations

import click


@click.group()
def desk() -> None:
    """The desk: the agreement in a browser (see README, "The desk")."""


@desk.command()
@click.argument("email")
@click.option("--next", "next_path", metavar="PATH", default="/desk", show_default=True,
              help="Where the link lands after signing in (a /desk path).")
def link(email: str, next_path: str) -> None:
    """Print a one-time sign-in link for EMAIL, a person's e-mail in the agreement (works once, 10 minutes)."""
    from bot.cli import Refusal, _services
    from commands import desk as people

    services = _services()
    found = people.by_email(services.ctx, email)
    if found is None:
        raise Refusal(f"{email} is not the e-mail of a rep, manager or VP in the agreement: check the "
                      "agreement's people and teams")
    base = services.settings.slabot_public_url or "http://127.0.0.1:8000"
    url = people.signin_link(services.ctx, key=found.key, next_path=next_path, base_url=base)
    click.echo(f"Sign-in link for {found.name} ({found.role}); it works once, for 10 minutes:")
    click.echo(url)
