"""Who hears about a lead: its card on every platform its team has a channel on, and direct
messages to the people of the agreement."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from commands.context import Context, dm_target, team_channel
from storage.db import Session
from storage.outbox import enqueue
from storage.tables import Lead


def queue_card(session: Session, ctx: Context, lead: Lead, now: datetime,
               channels: dict[tuple[str, str], str | None] | None = None) -> None:
    """Queue a render of the lead's card on every platform its team has a channel on.
    `channels` caches the team-channel lookups of one transaction (a batch of handoffs)."""
    team = ctx.agreement.team(lead.team or "")
    if team is None or not (lead.workable or lead.experiment):
        return
    cache = {} if channels is None else channels
    for platform in ctx.platforms:
        if (team.key, platform) not in cache:
            cache[(team.key, platform)] = team_channel(session, ctx.agreement, team=team, platform=platform)
        channel = cache[(team.key, platform)]
        if channel:
            enqueue(session, dedupe_key=f"card:{lead.id}:{platform}:v{lead.version}", kind="card",
                    platform=platform, target=channel, lead_id=lead.id, now=now,
                    payload={"version": lead.version})


def notify_person(session: Session, ctx: Context, *, person_key: str, dedupe: str, now: datetime,
                  text: str, lead_id: int | None = None) -> None:
    """Queue a direct message to a person of the agreement on every platform they are on."""
    person = resolve_person(ctx, person_key)
    if person is None:
        return
    for platform in ctx.platforms:
        target = dm_target(person, platform)
        if target:
            enqueue(session, dedupe_key=f"{dedupe}:{platform}", kind="dm", platform=platform,
                    target=target, lead_id=lead_id, now=now, payload={"text": text})


def resolve_person(ctx: Context, key: str) -> Any:
    """`rep:ana`, `manager:smb`, `marketing_vp`, `sales_vp` -> the agreement's Person."""
    kind, _, rest = key.partition(":")
    if kind == "rep":
        return ctx.agreement.rep(rest)
    if kind == "manager":
        team = ctx.agreement.team(rest)
        return team.manager if team else None
    return getattr(ctx.agreement.people, key, None)
