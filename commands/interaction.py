"""One interaction with a person, whatever chat it comes from: who is acting, may they, perform, and
what to send back. A chat adapter (Slack, Teams, and later the desk) only parses the platform's
payload, acknowledges it and renders; this module holds everything in between.

- who: `who` and `remember`. A person is known by their platform id, else by the e-mail the
  platform's member lookup reported, cached in `platform_user` (storage.identity) so the lookup
  runs once, not at every click.
- may they: `precheck`, the click-time check before a form opens (no form for a click that would
  be refused), with the stale-card words of commands.actions.STALE_CARD.
- perform: `act` (commands.actions.perform, one transaction).
- what to send back: `queue_refusal` (privately to the person, and a card refresh when theirs was
  stale), `queue_refresh` (the card in its channel, re-rendered), `queue_reply` (a command's answer
  that missed the platform's response window). All through the outbox.
- `first_delivery`: a platform's retry of an event it already sent us is recognised (its id is an
  inbound receipt).

No platform is named here: the adapter passes its platform key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from commands.actions import STALE_CARD, ActionRequest, Outcome, perform
from commands.context import Actor, Context, identify, team_channel
from sla.lifecycle import Refused, State, next_state
from storage import identity
from storage.db import IntegrityError
from storage.leads import get_lead
from storage.outbox import enqueue, get_message_ref
from storage.receipts import record_receipt

__all__ = [
    "STALE_CARD",
    "Acted",
    "Known",
    "Precheck",
    "act",
    "first_delivery",
    "precheck",
    "queue_refresh",
    "queue_refusal",
    "queue_reply",
    "remember",
    "who",
]


# --- who ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Known:
    """A chat user as the agreement knows them, and whether the platform's member lookup has been
    answered already (False: the adapter asks the platform for their e-mail, then `remember`s it)."""

    actor: Actor
    looked_up: bool


def who(ctx: Context, *, platform: str, user_id: str, stored_as: Sequence[str] = (),
        retry_after: timedelta | None = None) -> Known:
    """Who `user_id` is. `stored_as`: the ids their rows are kept under, when a platform has more
    than one (default: `user_id`); the lookup counts as answered once every one has a row. An
    e-mail once found is kept; "the platform reported none" is believed for `retry_after` (None:
    for good), then asked again (people get added to the agreement)."""
    ids = [i for i in (stored_as or [user_id]) if i]
    with ctx.db.read() as session:
        rows = identity.platform_users(session, platform=platform, user_ids=ids) if ids else {}
    email = next((rows[i].email for i in ids if i in rows and rows[i].email), None)
    looked_up = bool(ids) and len(rows) == len(ids) and (
        email is not None or retry_after is None
        or all(r.updated_at > ctx.now() - retry_after for r in rows.values()))
    return Known(identify(ctx.agreement, platform=platform, user_id=user_id, email=email), looked_up)


def remember(ctx: Context, *, platform: str, user_id: str, email: str | None, stored_as: Sequence[str] = (),
             keep_known_email: bool = False) -> Actor:
    """Store what the platform's member lookup answered (an e-mail, or None for "it reported none")
    under each of the person's ids, and say who they are. A concurrent click that stored the same
    person first is fine: the rows are written once more over it."""
    ids = [i for i in (stored_as or [user_id]) if i]
    now = ctx.now()

    def write() -> None:
        with ctx.db.write() as session:
            for stored in ids:
                identity.save_user(session, platform=platform, user_id=stored, email=email, now=now,
                                   keep_known_email=keep_known_email)

    if ids:
        try:
            write()
        except IntegrityError:
            write()
    return identify(ctx.agreement, platform=platform, user_id=user_id, email=email)


# --- may they ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Precheck:
    """What a click would meet: the lead's name (for a form's title) and, if it would be refused,
    why, and whether the person's card is stale (then the refusal comes with a refreshed card)."""

    lead_name: str | None
    refusal: str | None = None
    stale: bool = False


def precheck(ctx: Context, request: ActionRequest) -> Precheck:
    """The click-time rules, checked without changing anything (perform checks them again)."""
    with ctx.db.read() as session:
        lead = get_lead(session, lead_id=request.lead_id)
    if lead is None:
        return Precheck(None, f"Lead {request.lead_id} does not exist.")
    try:
        next_state(State(lead.state), request.action, request.actor.role_for(ctx.agreement, lead),
                   unowned=lead.owner is None)
    except Refused as refused:
        return Precheck(lead.name, refused.reason, stale=request.version not in (None, lead.version))
    if request.version is not None and request.version != lead.version:
        return Precheck(lead.name, STALE_CARD, stale=True)
    return Precheck(lead.name)


# --- perform -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Acted:
    outcome: Outcome
    #: Refused, and the person's card showed an older version of the lead than the one refused.
    stale: bool


def act(ctx: Context, request: ActionRequest) -> Acted:
    outcome = perform(ctx, request)
    current = outcome.lead.version if outcome.lead is not None else None
    stale = outcome.refused and request.version is not None and current is not None and current != request.version
    return Acted(outcome, stale)


# --- what to send back -------------------------------------------------------------------------


def queue_refusal(ctx: Context, *, platform: str, text: str, lead_id: int, user_id: str, channel: str | None,
                  click: str, refresh: bool) -> None:
    """A private "no" to the person who clicked (only they see it in the channel, else a direct
    message) and, for a stale card, a re-render of the card where it was posted."""
    now = ctx.now()
    key = f"{platform}:refused:{lead_id}:{user_id}:{click}"[:255]
    with ctx.db.write() as session:
        if channel:
            enqueue(session, dedupe_key=key, kind="ephemeral", platform=platform, target=channel, lead_id=lead_id,
                    now=now, payload={"text": text, "user": user_id})
        else:
            enqueue(session, dedupe_key=key, kind="dm", platform=platform, target=user_id, lead_id=lead_id,
                    now=now, payload={"text": text})
        ref = get_message_ref(session, lead_id=lead_id, platform=platform)
        if refresh and (ref is not None or channel):
            enqueue(session, dedupe_key=f"card:{lead_id}:{platform}:refresh:{click}"[:255], kind="card",
                    platform=platform, target=ref.channel if ref else str(channel), lead_id=lead_id,
                    now=now, payload={"refresh": True})


def queue_refresh(ctx: Context, *, platform: str, lead_id: int, token: str) -> None:
    """Re-render a posted card in its team's channel at the lead's current version (`token`
    dedupes the platform's own retries of one click)."""
    now = ctx.now()
    with ctx.db.write() as session:
        lead = get_lead(session, lead_id=lead_id)
        team = ctx.agreement.team(lead.team or "") if lead is not None else None
        if lead is None or team is None or get_message_ref(session, lead_id=lead_id, platform=platform) is None:
            return
        channel = team_channel(session, ctx.agreement, team=team, platform=platform)
        if channel:
            enqueue(session, dedupe_key=f"card:{lead_id}:{platform}:v{lead.version}:refresh:{token}"[:255],
                    kind="card", platform=platform, target=channel, lead_id=lead_id, now=now,
                    payload={"version": lead.version, "refresh": True})


def queue_reply(ctx: Context, *, platform: str, text: str, user_id: str, channel: str | None, key: str,
                private: bool, extra: dict[str, Any] | None = None) -> None:
    """A command's answer delivered later through the outbox: privately in the channel when it is
    private (with the adapter's rendering in `extra`), else in the channel, else by direct message."""
    now = ctx.now()
    dedupe = f"{platform}:sla:{user_id}:{key}"[:255]
    with ctx.db.write() as session:
        if channel and private:
            enqueue(session, dedupe_key=dedupe, kind="ephemeral", platform=platform, target=channel, now=now,
                    payload={"text": text, "user": user_id, **(extra or {})})
        else:
            enqueue(session, dedupe_key=dedupe, kind="channel" if channel else "dm", platform=platform,
                    target=channel or user_id, now=now, payload={"text": text})


# --- retries -----------------------------------------------------------------------------------


def first_delivery(ctx: Context, *, source: str, key: str) -> bool:
    """Record an inbound event id; False when the platform sent this event before."""
    with ctx.db.write() as session:
        return record_receipt(session, source=source, key=key, now=ctx.now())
