"""What people and the CRM do to a lead: a button or command (`perform`), a CRM outcome
(`record_outcome`) and a rep's away status (`set_away`).

Each change is one short write transaction that updates the lead with a compare-and-set on its
version, appends to the event log and queues the card update in the outbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from commands import labels
from commands.assignment import assign, refresh_next_check
from commands.context import Actor, Context
from commands.notification import notify_person, queue_card
from sla.lifecycle import ATTEMPTS, Action, Refused, Role, State, next_state
from storage.db import Session
from storage.leads import add_event, bump_version, get_lead, iso, lead_by_external_id, lock_lead
from storage.routing import set_rep_status
from storage.tables import Lead


@dataclass(frozen=True, kw_only=True)
class ActionRequest:
    """One person's action on a lead, as a chat adapter (or the console) parsed it."""

    lead_id: int
    action: Action
    actor: Actor
    #: The lead version the person's card showed: a newer lead refuses (the stale-card message).
    version: int | None = None
    #: A disqualify reason.
    reason: str | None = None
    #: An opportunity's amount.
    amount: float | None = None
    #: Reassign to this rep rather than by the routing rule.
    to_rep: str | None = None


@dataclass(frozen=True)
class Outcome:
    lead: Lead | None
    text: str
    refused: bool = False


def save(session: Session, lead: Lead, seen_version: int) -> None:
    """Compare-and-set: the change only lands if the lead is still at the version we read (a
    double click, or two people at once); otherwise the whole transaction is rolled back.
    PostgreSQL also holds the row lock from the read; SQLite's BEGIN IMMEDIATE serializes."""
    assert lead.id is not None
    if not bump_version(session, lead_id=lead.id, seen_version=seen_version):
        raise Refused("Someone else just changed this lead; the card has been refreshed.")
    lead.version = seen_version + 1
    session.flush()


#: What a click on a card older than the lead is answered with (every platform, the same words).
STALE_CARD = ("This card was out of date, so nothing was recorded. It shows the "
              "lead as it is now: click again if you still mean it.")


def perform(ctx: Context, request: ActionRequest) -> Outcome:
    """Run one person's action on a lead: authorize at click time, transition, record, queue."""
    now = ctx.now()
    try:
        with ctx.db.write() as session:
            lead = lock_lead(session, lead_id=request.lead_id)
            if lead is None:
                raise Refused(f"Lead {request.lead_id} does not exist.")
            role = request.actor.role_for(ctx.agreement, lead)
            target = next_state(State(lead.state), request.action, role, unowned=lead.owner is None)
            if request.version is not None and request.version != lead.version:
                raise Refused(STALE_CARD)
            seen = lead.version
            text = _apply(session, ctx, lead, request, target=target, role=role, now=now)
            save(session, lead, seen)
            queue_card(session, ctx, lead, now)
            return Outcome(lead, text)
    except Refused as refused:
        with ctx.db.read() as session:
            current = get_lead(session, lead_id=request.lead_id)
        return Outcome(current, refused.reason, refused=True)


def _apply(session: Session, ctx: Context, lead: Lead, request: ActionRequest, *, target: State, role: Role,
           now: datetime) -> str:
    action, actor, to_rep = request.action, request.actor, request.to_rep
    who = actor.label
    if action is Action.CLAIM:
        if lead.owner is None and actor.rep:
            lead.owner, lead.owner_since = actor.rep, now
        lead.claimed_at = now
        lead.state = target
        add_event(session, lead=lead, at=now, actor=who, type="claimed")
        refresh_next_check(ctx, lead)
        return f"Claimed {lead.name}."
    if action in ATTEMPTS:
        return _record_attempt(session, ctx, lead, action, target=target, who=who, now=now)
    if action is Action.REASSIGN:
        team = ctx.agreement.team(lead.team or "")
        assert team is not None
        if to_rep is not None and to_rep not in {r.key for r in team.reps}:
            raise Refused(f"{to_rep} is not a rep of {team.name}.")
        if to_rep is not None and to_rep == lead.owner:
            raise Refused(f"{to_rep} already owns this lead.")
        previous = lead.owner
        exclude = frozenset([*lead.previous_owners, *([previous] if previous else [])])
        assign(session, ctx, lead, team, now, exclude=exclude, actor=who, to_rep=to_rep,
                why=f"reassigned by {who}")
        if lead.owner:
            notify_person(session, ctx, person_key=f"rep:{lead.owner}", now=now, lead_id=lead.id,
                          dedupe=f"assigned:{lead.id}:{lead.owner_seq}",
                          text=f"{lead.name} ({lead.company or 'no company'}) is now yours: first "
                               f"touch due {ctx.calendar.local(lead.first_touch_due or now):%a %H:%M}.")
        return f"Reassigned {lead.name} from {previous or 'nobody'} to {lead.owner or 'the team'}."
    return _close(session, ctx, lead, request, target=target, role=role, now=now)


def _record_attempt(session: Session, ctx: Context, lead: Lead, action: Action, *, target: State,
                    who: str, now: datetime) -> str:
    lead.attempts += 1
    if action is Action.LOG_EMAIL:
        lead.emails += 1
    else:
        lead.calls += 1
    if action is Action.CONNECTED:
        lead.connects += 1
    if lead.first_touch_at is None:
        assert lead.routed_at is not None
        lead.first_touch_at = now
        lead.first_touch_met = lead.sla_due is None or now <= lead.sla_due
        lead.speed_to_lead_min = ctx.calendar.elapsed(lead.routed_at, now).total_seconds() / 60
    if lead.claimed_at is None:
        lead.claimed_at = now
    lead.last_attempt_at = now
    if not (lead.state == State.CONNECTED and target == State.WORKING):
        lead.state = target
    refresh_next_check(ctx, lead)
    add_event(session, lead=lead, at=now, actor=who, type=action.value, attempt=lead.attempts)
    words = {Action.LOG_CALL: "a call", Action.LOG_EMAIL: "an email", Action.CONNECTED: "a connect"}
    assert lead.tier is not None
    count = ctx.clocks.tier(lead.tier).attempts.count
    return f"Logged {words[action]} on {lead.name}: attempt {lead.attempts} of {count}."


def _close(session: Session, ctx: Context, lead: Lead, request: ActionRequest, *, target: State, role: Role,
           now: datetime) -> str:
    action, reason, amount, who = request.action, request.reason, request.amount, request.actor.label
    assert lead.tier is not None
    if action is Action.DISQUALIFY:
        allowed = ctx.agreement.sales.disqualify_reasons
        if reason not in allowed:
            raise Refused(f"Pick a reason: {', '.join(allowed)}.")
        lead.disqualify_reason = reason
    if action is Action.RECYCLE and not ctx.clocks.cadence_met(lead.tier, lead.attempts) \
            and role is not Role.MANAGER:
        count = ctx.clocks.tier(lead.tier).attempts.count
        raise Refused(f"The agreement asks for {count} attempts before a lead goes back to nurture "
                      f"as unresponsive; this one has {lead.attempts}. Ask your manager to recycle it.")
    if action is Action.QUALIFY:
        if amount is not None and amount < 0:
            raise Refused("The amount cannot be negative.")
        lead.opportunity_at = now
        lead.opportunity_amount = amount
    lead.state = target
    lead.is_open = False
    lead.closed_at = now
    lead.next_check_at = None
    add_event(session, lead=lead, at=now, actor=who, type=action.value, reason=reason, amount=amount,
              attempts=lead.attempts, cadence_met=ctx.clocks.cadence_met(lead.tier, lead.attempts))
    words = {Action.QUALIFY: "an opportunity", Action.DISQUALIFY: f"disqualified ({labels.disqualify_reason(reason)})",
             Action.RECYCLE: "back in nurture"}
    return f"{lead.name} is now {words[action]}."


# --- CRM outcomes --------------------------------------------------------------------------


def record_outcome(ctx: Context, *, external_id: str, type: str, amount: float | None,
                   at: datetime | None, crm_url: str | None) -> Lead | None:
    """`opportunity_created`, `won`, `lost` from the CRM. Repeats are harmless (same state)."""
    now = ctx.now()
    action = {"opportunity_created": Action.OPPORTUNITY, "won": Action.WON, "lost": Action.LOST}[type]
    with ctx.db.write() as session:
        lead = lead_by_external_id(session, external_id=external_id)
        if lead is None:
            return None
        when = at or now
        already = {Action.OPPORTUNITY: lead.opportunity_at is not None and lead.state != State.LOST,
                   Action.WON: lead.state == State.WON, Action.LOST: lead.state == State.LOST}[action]
        if already:
            return lead
        target = next_state(State(lead.state), action, Role.SYSTEM)
        seen = lead.version
        if action is Action.OPPORTUNITY or lead.opportunity_at is None:
            lead.opportunity_at = lead.opportunity_at or when
            if action is Action.OPPORTUNITY and amount is not None:
                lead.opportunity_amount = amount
        if action is Action.WON:
            lead.won_at, lead.bookings = when, amount if amount is not None else lead.opportunity_amount
        if action is Action.LOST:
            lead.lost_at = when
        lead.state = target
        lead.is_open = False
        lead.closed_at = lead.closed_at or when
        lead.next_check_at = None
        add_event(session, lead=lead, at=now, actor="crm", type=type, amount=amount, crm_url=crm_url,
                  reported_at=iso(when))
        save(session, lead, seen)
        queue_card(session, ctx, lead, now)
        return lead


def set_away(ctx: Context, *, rep: str, away: bool, until: datetime | None = None) -> None:
    now = ctx.now()
    with ctx.db.write() as session:
        set_rep_status(session, rep=rep, away=away, until=until, now=now)
