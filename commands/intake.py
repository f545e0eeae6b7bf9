"""Handoffs from Marketing: validate-qualify-route-store, with dedupe (the same `external_id` is
the same lead, its changed facts written to it) and idempotency (the same Idempotency-Key is the same
request; a different body under it is a conflict), and inbound event receipts (a sender's retry)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from commands.actions import save
from commands.assignment import Routing, announce_owner, set_owner
from commands.context import Context, team_channels
from commands.notification import queue_card
from sla.agreement import Experiment, Team
from sla.experiments import candidates as experiment_candidates
from sla.experiments import tier_for as experiment_tier
from sla.lead import LeadIn
from sla.lifecycle import Refused, State
from sla.qualification import Decision, qualify
from storage.db import IntegrityError, Session
from storage.experiments import take_place
from storage.leads import (
    add_event,
    event_batch,
    find_duplicate,
    insert_lead,
    insert_leads,
    iso,
    known_identities,
    new_lead,
    set_values,
)
from storage.outbox import enqueue_batch
from storage.receipts import record_receipt
from storage.tables import Lead


@dataclass(frozen=True)
class IntakeResult:
    lead: Lead
    duplicate: bool
    #: Why this handoff was refused (the same Idempotency-Key with a different body): a 409.
    conflict: str | None = None
    #: The facts a repeated `external_id` changed on the lead (names of the body's fields).
    updated: tuple[str, ...] = ()

    def body(self) -> dict[str, Any]:
        body = lead_summary(self.lead)
        if self.duplicate:
            body["duplicate"] = True
        if self.updated:
            body["updated"] = list(self.updated)
        return body


def lead_summary(lead: Lead) -> dict[str, Any]:
    """The lead as the intake API answers it."""
    return {
        "id": lead.id, "status": lead.state, "workable": lead.workable, "score": lead.score,
        "tier": lead.tier, "value": lead.value, "team": lead.team, "rep": lead.owner,
        "first_touch_due": iso(lead.first_touch_due),
    }


def _find_duplicate(session: Session, lead_in: LeadIn, key: str | None) -> Lead | None:
    """The earlier lead with this idempotency key, else with this external id (both unique)."""
    return find_duplicate(session, external_id=lead_in.external_id, idempotency_key=key)


def body_fingerprint(body: dict[str, Any]) -> str:
    """SHA-256 of a handoff's validated body as canonical JSON (sorted keys, no spaces)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _body(lead_in: LeadIn) -> dict[str, Any]:
    """What is stored as the lead's `payload`: the validated body, defaults left out."""
    return lead_in.model_dump(mode="json", exclude_defaults=True)


@dataclass(frozen=True)
class Handoff:
    lead: LeadIn
    idempotency_key: str | None = None
    actor: str = "api"
    #: (source, key) of the inbound event this handoff comes from (a HubSpot eventId): recorded in
    #: the same transaction as the lead, so a failure leaves neither and the sender's retry works.
    receipt: tuple[str, str] | None = None


def handoff(ctx: Context, lead_in: LeadIn, *, idempotency_key: str | None = None,
            actor: str = "api") -> IntakeResult:
    """Validate-qualify-route-store one handoff; a repeat of an earlier one returns that lead."""
    return handoff_many(ctx, [Handoff(lead_in, idempotency_key, actor)])[0]


def handoff_many(ctx: Context, handoffs: list[Handoff]) -> list[IntakeResult]:
    """Many handoffs in one write transaction (group commit).

    SQLite has one writer at a time, so the cost of a handoff is the time it holds the write lock;
    a batch shares one BEGIN/COMMIT, reads each team's rep loads and cursor once and keeps them
    current as it assigns, so intake keeps up with bursts. The new leads of a batch (no stored or
    earlier lead in it has their external id or key) are written together: one multi-row INSERT,
    their events in one executemany, each team's cursor once, all in one savepoint. Anything else
    (a repeat, an inbound event receipt) goes one by one, each in its own savepoint, after the new
    leads before it are written. Results come back in order; a lead repeated within the batch, or
    raced in by another process, is answered as a duplicate.
    """
    now = ctx.now()
    results: list[IntakeResult | None] = [None] * len(handoffs)
    with ctx.db.write() as session:
        routing = Routing(session, ctx, now)
        if len(handoffs) > 1:
            # The teams the batch may route to (a lead that turns out not workable only makes one read more).
            teams = {key: ctx.agreement.team(key) for key in {routing.team_of(h.lead) for h in handoffs}}
            routing.expect([team for _, team in sorted(teams.items()) if team is not None])
        channels: dict[tuple[str, str], str | None] = {}
        stored_ids, stored_keys = known_identities(
            session, external_ids=[h.lead.external_id for h in handoffs if h.lead.external_id],
            idempotency_keys=[h.idempotency_key for h in handoffs if h.idempotency_key])
        group: list[int] = []
        group_ids: set[str] = set()
        group_keys: set[str] = set()

        def write_group() -> None:
            for index, result in zip(group, _new_leads(session, ctx, [handoffs[i] for i in group], now, routing,
                                                        channels), strict=True):
                results[index] = result
            stored_ids.update(group_ids)
            stored_keys.update(group_keys)
            group.clear()
            group_ids.clear()
            group_keys.clear()

        for index, item in enumerate(handoffs):
            external_id, key = item.lead.external_id, item.idempotency_key
            if (item.receipt is None and not (external_id and (external_id in stored_ids or external_id in group_ids))
                    and not (key and (key in stored_keys or key in group_keys))):
                group.append(index)
                if external_id:
                    group_ids.add(external_id)
                if key:
                    group_keys.add(key)
                continue
            write_group()     # so a repeat of a lead of this batch finds it
            results[index] = _one(session, ctx, item, now, routing, channels)
        write_group()
    return [result for result in results if result is not None]


def _new_leads(session: Session, ctx: Context, items: list[Handoff], now: datetime, routing: Routing,
               channels: dict[tuple[str, str], str | None]) -> list[IntakeResult]:
    """New leads in one savepoint: built and routed, then one INSERT for all, their events in one
    executemany and each team's cursor once. If the savepoint fails (another process stored one of
    them meanwhile), they go one by one instead."""
    if not items:
        return []
    try:
        with session.begin_nested():
            built = [_build(session, ctx, item.lead, item.idempotency_key, now, routing) for item in items]
            carded = {team.key: team for _, _, _, team in built if team is not None}
            for platform in ctx.platforms:
                missing = [team for key, team in sorted(carded.items()) if (key, platform) not in channels]
                if missing:
                    channels.update(team_channels(session, missing, platform))
            # Each team's routing cursor is a row every writer routing to that team locks until it
            # commits (on PostgreSQL; SQLite has one writer anyway): taken only now, after all the
            # work that needs no owner, so web processes sharing a database wait on each other least.
            routing.prefetch([team for _, team in sorted(carded.items())])
            routing.defer_cursors()
            reasons = [_route(session, ctx, lead, team, now, routing) for lead, _, _, team in built]
            routing.save_cursors()
            for (lead, *_), lead_id in zip(built, insert_leads(session, leads=[b[0] for b in built]), strict=True):
                set_values(lead, {"id": lead_id})
            with event_batch(session), enqueue_batch(session):
                for item, (lead, decision, experiment, team), reason in zip(items, built, reasons, strict=True):
                    _record(session, ctx, lead, item.actor, now, decision, experiment, team, reason, channels)
        return [IntakeResult(lead, duplicate=False) for lead, *_ in built]
    except IntegrityError:
        routing.forget()
        return [_one(session, ctx, item, now, routing, channels) for item in items]


def _one(session: Session, ctx: Context, item: Handoff, now: datetime, routing: Routing,
         channels: dict[tuple[str, str], str | None]) -> IntakeResult:
    """One handoff in its own savepoint: a repeat is answered from the stored lead."""
    seen_event = item.receipt is not None and not _receive(session, item.receipt, now)
    existing = _find_duplicate(session, item.lead, item.idempotency_key)
    if existing is not None:
        return (IntakeResult(existing, duplicate=True) if seen_event
                else _repeat(session, ctx, existing, item, now, channels))
    try:
        with session.begin_nested():
            lead = _new_lead(session, ctx, item.lead, item.idempotency_key, now, item.actor, routing, channels)
        return IntakeResult(lead, duplicate=False)
    except IntegrityError:
        # Another process inserted the same id between our check and our insert.
        routing.forget()
        existing = _find_duplicate(session, item.lead, item.idempotency_key)
        if existing is None:
            raise
        return _repeat(session, ctx, existing, item, now, channels)


def _receive(session: Session, receipt: tuple[str, str], now: datetime) -> bool:
    """Record an inbound event id; False when it was recorded before (a retry of that event)."""
    source, key = receipt
    return record_receipt(session, source=source, key=key, now=now)


def _repeat(session: Session, ctx: Context, lead: Lead, item: Handoff, now: datetime,
            channels: dict[tuple[str, str], str | None]) -> IntakeResult:
    """A handoff for a lead that exists already.

    The same Idempotency-Key means "this exact request again": the same body is answered with the
    lead, a different body is a conflict (the sender reused a key, and must learn its data was not
    taken). The same `external_id` with a new key, or none, is the CRM sending the lead's record
    again: changed facts are written to the lead (score, tier, team and owner stay as decided).
    """
    body = _body(item.lead)
    key = item.idempotency_key
    if key and lead.idempotency_key == key:
        if (lead.fingerprint or body_fingerprint(lead.payload)) != body_fingerprint(body):
            return IntakeResult(lead, duplicate=True, conflict=(
                f"Idempotency-Key {key!r} was already used for lead {lead.id} with a different body; "
                "nothing was changed. Send new data with a new key."))
        return IntakeResult(lead, duplicate=True)
    try:
        with session.begin_nested():
            changed = _update_facts(session, ctx, lead, item.lead, body, now, item.actor, channels)
    except Refused:
        return IntakeResult(lead, duplicate=True, conflict=(
            f"Lead {lead.id} changed while its facts were being updated; send the update again."))
    return IntakeResult(lead, duplicate=True, updated=changed)


#: The lead's columns that mirror a field of the handoff body.
_FACTS = ("email", "title", "company", "employees", "source", "offer", "crm_url")


def _update_facts(session: Session, ctx: Context, lead: Lead, lead_in: LeadIn, body: dict[str, Any],
                  now: datetime, actor: str, channels: dict[tuple[str, str], str | None]) -> tuple[str, ...]:
    old = lead.payload or {}
    body = dict(body)
    # When the lead was first received is history, not a fact a later copy can change.
    body.pop("received_at", None)
    if "received_at" in old:
        body["received_at"] = old["received_at"]
    changed = tuple(sorted(k for k in set(body) | set(old) if body.get(k) != old.get(k)))
    if not changed:
        return ()
    seen = lead.version
    save(session, lead, seen)
    for name in _FACTS:
        setattr(lead, name, getattr(lead_in, name))
    lead.name = lead_in.display_name
    lead.payload = body
    session.flush()
    add_event(session, lead=lead, at=now, actor=actor, type="updated", fields=list(changed))
    queue_card(session, ctx, lead, now, channels)
    return changed


def _new_lead(session: Session, ctx: Context, lead_in: LeadIn, idempotency_key: str | None,
              now: datetime, actor: str, routing: Routing, channels: dict[tuple[str, str], str | None]) -> Lead:
    lead, decision, experiment, team = _build(session, ctx, lead_in, idempotency_key, now, routing)
    reason = _route(session, ctx, lead, team, now, routing)
    # Intake is the hot path (hundreds a second): one Core INSERT (storage.leads.insert_lead).
    set_values(lead, {"id": insert_lead(session, lead=lead)})
    _record(session, ctx, lead, actor, now, decision, experiment, team, reason, channels)
    return lead


def _build(session: Session, ctx: Context, lead_in: LeadIn, idempotency_key: str | None, now: datetime,
           routing: Routing) -> tuple[Lead, Decision, Experiment | None, Team | None]:
    """The new lead, qualified, not yet routed nor written: (lead, decision, experiment, the team it
    goes to or None for nurture)."""
    decision = qualify(ctx.agreement, lead_in)
    experiment = _experiment(session, ctx, lead_in, decision, now)
    to_sales = decision.workable or experiment is not None
    payload = _body(lead_in)
    lead = new_lead(
        external_id=lead_in.external_id, idempotency_key=idempotency_key, fingerprint=body_fingerprint(payload),
        agreement_version=ctx.agreement.version, email=lead_in.email, name=lead_in.display_name,
        title=lead_in.title, company=lead_in.company, employees=lead_in.employees,
        source=lead_in.source, offer=lead_in.offer, crm_url=lead_in.crm_url,
        payload=payload, received_at=lead_in.received_at,
        handed_off_at=now, workable=decision.workable, score=decision.score,
        score_reasons=decision.score_reasons, reasons=decision.reasons, nurture_reason=decision.nurture_reason,
        persona=decision.persona, value=decision.value,
        tier=experiment_tier(ctx.agreement, lead_in, decision.score) if experiment else decision.tier,
        state=State.ROUTED if to_sales else State.NURTURE, experiment=experiment.key if experiment else None,
    )
    team = ctx.agreement.team(routing.team_of(lead_in)) if to_sales else None
    return lead, decision, experiment, team


def _route(session: Session, ctx: Context, lead: Lead, team: Team | None, now: datetime, routing: Routing) -> str:
    """Give a built lead its owner and deadlines before its INSERT (so it is written once): why this owner."""
    if team is None:
        return ""
    set_values(lead, {"team": team.key, "routed_at": now})
    reason = set_owner(session, ctx, lead, team, now, exclude=frozenset(), actor="system", routing=routing)
    set_values(lead, {"sla_due": lead.first_touch_due})
    return reason


def _record(session: Session, ctx: Context, lead: Lead, actor: str, now: datetime, decision: Decision,
            experiment: Experiment | None, team: Team | None, reason: str,
            channels: dict[tuple[str, str], str | None]) -> None:
    """The events, messages and card of a lead just written."""
    add_event(session, lead=lead, at=now, actor=actor, type="received", score=decision.score,
              reasons=decision.reasons, agreement_version=ctx.agreement.version)
    if team is None:
        add_event(session, lead=lead, at=now, actor="system", type="nurture", reason=decision.nurture_reason)
        return
    if experiment is not None:
        add_event(session, lead=lead, at=now, actor="system", type="experiment", experiment=experiment.key,
                  reason=decision.nurture_reason)
    announce_owner(session, ctx, lead, team, now, actor="system", reason=reason)
    queue_card(session, ctx, lead, now, channels)


def _experiment(session: Session, ctx: Context, lead_in: LeadIn, decision: Decision,
                now: datetime) -> Experiment | None:
    """The agreement experiment that sends this not-workable lead to Sales, if one has room left
    (its place is claimed in this transaction: a rolled-back lead gives it back)."""
    for experiment in experiment_candidates(ctx.agreement, lead_in, decision, ctx.calendar.local_date(now)):
        if take_place(session, experiment, now):
            return experiment
    return None
