"""Everything that changes a lead: handoff, routing, button actions, reassignment, CRM outcomes.

Each change is one short write transaction that updates the lead with a compare-and-set on its
version, appends to the event log and queues the card update in the outbox.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from commands import labels
from commands.context import Actor, Context, dm_target, team_channel
from sla.agreement import Experiment, Team
from sla.clocks import LeadClock
from sla.experiments import candidates as experiment_candidates
from sla.experiments import tier_for as experiment_tier
from sla.lead import LeadIn
from sla.lifecycle import ATTEMPTS, Action, Refused, Role, State, next_state
from sla.qualification import Decision, qualify, route_team
from sla.routing import RepLoad, choose_rep
from storage.db import affected
from storage.experiments import take_place
from storage.outbox import enqueue
from storage.tables import InboundReceipt, Lead, LeadEvent, RepStatus, RoutingCursor

_INSERT_EVENT = sa.insert(LeadEvent)
_INSERT_LEAD = sa.insert(Lead).returning(col(Lead.id))
_LEAD_COLUMNS = [c.name for c in Lead.__table__.columns if c.name != "id"]  # type: ignore[attr-defined]


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
    return {
        "id": lead.id, "status": lead.state, "workable": lead.workable, "score": lead.score,
        "tier": lead.tier, "value": lead.value, "team": lead.team, "rep": lead.owner,
        "first_touch_due": _iso(lead.first_touch_due),
    }


def _iso(at: datetime | None) -> str | None:
    return at.isoformat().replace("+00:00", "Z") if at else None


def add_event(session: Session, lead: Lead, *, at: datetime, actor: str, type: str, **data: Any) -> None:
    assert lead.id is not None
    # A Core INSERT: the log is append-only, it never needs to be an object in the session.
    session.execute(_INSERT_EVENT, {"lead_id": lead.id, "at": at, "actor": actor, "type": type, "data": data})


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


# --- intake --------------------------------------------------------------------------------


def _find_duplicate(session: Session, lead_in: LeadIn, key: str | None) -> Lead | None:
    """The earlier lead with this idempotency key, else with this external id (both unique)."""
    conditions = []
    if lead_in.external_id:
        conditions.append(col(Lead.external_id) == lead_in.external_id)
    if key:
        conditions.append(col(Lead.idempotency_key) == key)
    if not conditions:
        return None
    found = session.execute(select(Lead).where(sa.or_(*conditions))).scalars().all()
    return next((lead for lead in found if key and lead.idempotency_key == key), found[0] if found else None)


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
    """Many handoffs in one write transaction (group commit), each in its own savepoint.

    SQLite has one writer at a time, so the cost of a handoff is the time it holds the write lock;
    a batch shares one BEGIN/COMMIT, reads each team's rep loads and cursor once and keeps them
    current as it assigns, so intake keeps up with bursts. Results come back in order; a lead
    repeated within the batch, or raced in by another process, is answered as a duplicate.
    """
    now = ctx.now()
    results: list[IntakeResult] = []
    with ctx.db.write() as session:
        routing = _Routing(session, ctx, now)
        channels: dict[tuple[str, str], str | None] = {}
        for item in handoffs:
            seen_event = item.receipt is not None and not _receive(session, item.receipt, now)
            existing = _find_duplicate(session, item.lead, item.idempotency_key)
            if existing is not None:
                results.append(IntakeResult(existing, duplicate=True) if seen_event
                               else _repeat(session, ctx, existing, item, now, channels))
                continue
            try:
                with session.begin_nested():
                    lead = _new_lead(session, ctx, item.lead, item.idempotency_key, now, item.actor,
                                     routing, channels)
                results.append(IntakeResult(lead, duplicate=False))
            except IntegrityError:
                # Another process inserted the same id between our check and our insert.
                routing.forget()
                existing = _find_duplicate(session, item.lead, item.idempotency_key)
                if existing is None:
                    raise
                results.append(_repeat(session, ctx, existing, item, now, channels))
    return results


_RECEIPT_INSERT: dict[str, Any] = {}


def _receive(session: Session, receipt: tuple[str, str], now: datetime) -> bool:
    """Record an inbound event id; False when it was recorded before (a retry of that event)."""
    dialect = session.get_bind().dialect.name
    if dialect not in _RECEIPT_INSERT:
        insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(InboundReceipt)
        _RECEIPT_INSERT[dialect] = insert.on_conflict_do_nothing(index_elements=["source", "key"])
    source, key = receipt
    # Core on the session's connection: a CursorResult, whose rowcount says whether it was new.
    return session.connection().execute(_RECEIPT_INSERT[dialect],
                                        {"source": source, "key": key, "received_at": now}).rowcount > 0


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
    _save(session, lead, seen)
    for name in _FACTS:
        setattr(lead, name, getattr(lead_in, name))
    lead.name = lead_in.display_name
    lead.payload = body
    session.flush()
    add_event(session, lead, at=now, actor=actor, type="updated", fields=list(changed))
    queue_card(session, ctx, lead, now, channels)
    return changed


class _Routing:
    """Rep loads and round-robin cursors, read once per team per transaction and kept current as
    leads are assigned in it (SQLite's write lock, or PostgreSQL's cursor row lock, keeps other
    writers out until commit)."""

    def __init__(self, session: Session, ctx: Context, now: datetime) -> None:
        self.session, self.ctx, self.now = session, ctx, now
        self.loads: dict[str, dict[str, RepLoad]] = {}
        self.cursors: dict[str, str | None] = {}

    def forget(self) -> None:
        """After a rolled-back savepoint: read everything again."""
        self.loads.clear()
        self.cursors.clear()

    def choose(self, team: Team, exclude: frozenset[str]) -> tuple[str | None, str]:
        if team.key not in self.loads:
            with self.session.no_autoflush:
                self.cursors[team.key] = _last_rep(self.session, team.key, self.now)
                self.loads[team.key] = rep_loads(self.session, self.ctx, team, self.now)
        loads = self.loads[team.key]
        routing = self.ctx.agreement.routing
        choice = choose_rep(team=team, strategy=routing.strategy, loads=loads, last_rep=self.cursors[team.key],
                            skip_unavailable=routing.skip_unavailable, exclude=exclude)
        if choice.rep is not None:
            _save_cursor(self.session, team.key, choice.rep, self.now)
            self.cursors[team.key] = choice.rep
            load = loads.get(choice.rep, RepLoad())
            loads[choice.rep] = replace(load, open_leads=load.open_leads + 1,
                                        assigned_this_week=load.assigned_this_week + 1)
        return choice.rep, choice.reason


def _new_lead(session: Session, ctx: Context, lead_in: LeadIn, idempotency_key: str | None,
              now: datetime, actor: str, routing: _Routing, channels: dict[tuple[str, str], str | None]) -> Lead:
    decision = qualify(ctx.agreement, lead_in)
    experiment = _experiment(session, ctx, lead_in, decision, now)
    to_sales = decision.workable or experiment is not None
    payload = _body(lead_in)
    lead = Lead(
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
    team = ctx.agreement.team(route_team(ctx.agreement, lead_in)) if to_sales else None
    reason = ""
    if team is not None:
        # Route before the INSERT, so the lead is written once with its owner and deadlines.
        lead.team, lead.routed_at = team.key, now
        reason = _set_owner(session, ctx, lead, team, now, exclude=frozenset(), actor="system", routing=routing)
        lead.sla_due = lead.first_touch_due
    # Intake is the hot path (hundreds a second): one Core INSERT, built once and compiled once,
    # with the values as parameters (an ORM flush or `.values()` costs more than the write itself).
    row = {name: getattr(lead, name) for name in _LEAD_COLUMNS}
    lead.id = session.execute(_INSERT_LEAD, row).scalar_one()
    add_event(session, lead, at=now, actor=actor, type="received", score=decision.score,
              reasons=decision.reasons, agreement_version=ctx.agreement.version)
    if team is None:
        add_event(session, lead, at=now, actor="system", type="nurture", reason=decision.nurture_reason)
        return lead
    if experiment is not None:
        add_event(session, lead, at=now, actor="system", type="experiment", experiment=experiment.key,
                  reason=decision.nurture_reason)
    _announce_owner(session, ctx, lead, team, now, actor="system", reason=reason)
    queue_card(session, ctx, lead, now, channels)
    return lead


def _experiment(session: Session, ctx: Context, lead_in: LeadIn, decision: Decision,
                now: datetime) -> Experiment | None:
    """The agreement experiment that sends this not-workable lead to Sales, if one has room left
    (its place is claimed in this transaction: a rolled-back lead gives it back)."""
    for experiment in experiment_candidates(ctx.agreement, lead_in, decision, ctx.calendar.local_date(now)):
        if take_place(session, experiment, now):
            return experiment
    return None


def rep_loads(session: Session, ctx: Context, team: Team, now: datetime) -> dict[str, RepLoad]:
    """Open leads and this week's assignments per rep: two counts, each driven by an index on
    (owner, ...), so the cost follows the reps' current load, never their history."""
    keys = [r.key for r in team.reps]
    week_start, _ = ctx.calendar.week_bounds(now)
    open_counts = dict(session.execute(
        select(Lead.owner, sa.func.count()).where(col(Lead.owner).in_(keys), col(Lead.is_open).is_(True))
        .group_by(col(Lead.owner))).all())
    week_counts = dict(session.execute(
        select(Lead.owner, sa.func.count()).where(col(Lead.owner).in_(keys), col(Lead.owner_since) >= week_start)
        .group_by(col(Lead.owner))).all())
    away = {s.rep for s in session.execute(select(RepStatus).where(col(RepStatus.rep).in_(keys)))
            .scalars() if is_away(s, now)}
    return {k: RepLoad(away=k in away, open_leads=int(open_counts.get(k, 0)),
                       assigned_this_week=int(week_counts.get(k, 0))) for k in keys}


def is_away(status: RepStatus, now: datetime) -> bool:
    return status.away and (status.away_until is None or status.away_until > now)


def _last_rep(session: Session, team: str, now: datetime) -> str | None:
    """The team's round-robin cursor, locked for this transaction (SQLite: BEGIN IMMEDIATE
    already serializes writers; PostgreSQL: the row lock)."""
    query = select(RoutingCursor.last_rep).where(col(RoutingCursor.team) == team)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.text(
            "INSERT INTO routing_cursor (team, updated_at) VALUES (:t, :n) ON CONFLICT DO NOTHING"),
            {"t": team, "n": now})
        query = query.with_for_update()
    last: str | None = session.execute(query).scalar_one_or_none()
    return last


_CURSOR_UPSERT: dict[str, Any] = {}


def _save_cursor(session: Session, team: str, rep: str, now: datetime) -> None:
    dialect = session.get_bind().dialect.name
    if dialect not in _CURSOR_UPSERT:
        insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(RoutingCursor)
        _CURSOR_UPSERT[dialect] = insert.on_conflict_do_update(
            index_elements=["team"], set_={"last_rep": insert.excluded.last_rep,
                                           "updated_at": insert.excluded.updated_at})
    session.execute(_CURSOR_UPSERT[dialect], {"team": team, "last_rep": rep, "updated_at": now})


def assign(session: Session, ctx: Context, lead: Lead, team: Team, now: datetime, *,
           exclude: frozenset[str], actor: str, to_rep: str | None = None, why: str = "") -> None:
    """Give the lead an owner with a fresh first-touch window, or leave it for the team to claim."""
    reason = _set_owner(session, ctx, lead, team, now, exclude=exclude, actor=actor, to_rep=to_rep, why=why)
    _announce_owner(session, ctx, lead, team, now, actor=actor, reason=reason)


def _set_owner(session: Session, ctx: Context, lead: Lead, team: Team, now: datetime, *,
               exclude: frozenset[str], actor: str, to_rep: str | None = None, why: str = "",
               routing: _Routing | None = None) -> str:
    if to_rep is not None:
        rep_key: str | None = to_rep
        reason = why or f"assigned by {actor}"
    else:
        rep_key, chosen_because = (routing or _Routing(session, ctx, now)).choose(team, exclude)
        reason = (f"{why}; " if why else "") + chosen_because
    if lead.owner and lead.owner not in lead.previous_owners:
        lead.previous_owners = [*lead.previous_owners, lead.owner]
    lead.owner = rep_key
    lead.owner_since = now
    lead.owner_seq = (lead.owner_seq or 0) + 1
    lead.routing_reason = reason[:500]
    lead.state = State.ROUTED
    lead.is_open = True
    lead.claimed_at = None
    lead.nudge_steps_done = 0
    assert lead.tier is not None
    lead.first_touch_due = ctx.clocks.first_touch_due(lead.tier, now)
    lead.claim_due = ctx.clocks.claim_due(now)
    refresh_next_check(ctx, lead)
    return reason


def _announce_owner(session: Session, ctx: Context, lead: Lead, team: Team, now: datetime, *,
                    actor: str, reason: str) -> None:
    add_event(session, lead, at=now, actor=actor, type="routed", team=team.key, rep=lead.owner,
              reason=reason, first_touch_due=_iso(lead.first_touch_due))
    if lead.owner is None and team.manager is not None:
        notify_person(session, ctx, person_key=f"manager:{team.key}", now=now, lead_id=lead.id,
                      dedupe=f"unrouted:{lead.id}:{lead.owner_seq}",
                      text=f"No rep of {team.name} is available for {lead.name}: {reason}.")


def lead_clock(lead: Lead) -> LeadClock:
    assert lead.tier and lead.routed_at and lead.owner_since
    return LeadClock(tier=lead.tier, routed_at=lead.routed_at, owner_since=lead.owner_since,
                     # A handled claim timeout (claim_due cleared) stops that clock too.
                     claimed=lead.claimed_at is not None or lead.claim_due is None,
                     touched=lead.attempts > 0,
                     attempts=lead.attempts, nudge_steps_done=lead.nudge_steps_done,
                     cadence_reminded=lead.cadence_reminded, cadence_warned=lead.cadence_warned)


def refresh_next_check(ctx: Context, lead: Lead) -> None:
    due = ctx.clocks.next_due(lead_clock(lead)) if lead.is_open and lead.tier else None
    lead.next_check_at = due.at if due else None


# --- actions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    lead: Lead | None
    text: str
    refused: bool = False


def _save(session: Session, lead: Lead, seen_version: int) -> None:
    """Compare-and-set: the change only lands if the lead is still at the version we read (a
    double click, or two people at once); otherwise the whole transaction is rolled back.
    PostgreSQL also holds the row lock from the read; SQLite's BEGIN IMMEDIATE serializes."""
    changed = affected(session.execute(
        sa.update(Lead).where(col(Lead.id) == lead.id, col(Lead.version) == seen_version)
        .values(version=seen_version + 1)
        .execution_options(synchronize_session=False)
    ))
    if not changed:
        raise Refused("Someone else just changed this lead; the card has been refreshed.")
    lead.version = seen_version + 1
    session.flush()


def perform(ctx: Context, *, lead_id: int, action: Action, actor: Actor, version: int | None = None,
            reason: str | None = None, amount: float | None = None, to_rep: str | None = None) -> Outcome:
    """Run one person's action on a lead: authorize at click time, transition, record, queue."""
    now = ctx.now()
    try:
        with ctx.db.write() as session:
            lead = session.execute(
                select(Lead).where(col(Lead.id) == lead_id).with_for_update()
                if not ctx.db.is_sqlite else select(Lead).where(col(Lead.id) == lead_id)
            ).scalars().first()
            if lead is None:
                raise Refused(f"Lead {lead_id} does not exist.")
            role = actor.role_for(ctx.agreement, lead)
            target = next_state(State(lead.state), action, role, unowned=lead.owner is None)
            if version is not None and version != lead.version:
                raise Refused("This card was out of date, so nothing was recorded. It shows the "
                              "lead as it is now: click again if you still mean it.")
            seen = lead.version
            text = _apply(session, ctx, lead, action, target, actor, role, now, reason, amount, to_rep)
            _save(session, lead, seen)
            queue_card(session, ctx, lead, now)
            return Outcome(lead, text)
    except Refused as refused:
        with ctx.db.read() as session:
            current = session.get(Lead, lead_id)
        return Outcome(current, refused.reason, refused=True)


def _apply(session: Session, ctx: Context, lead: Lead, action: Action, target: State, actor: Actor,
           role: Role, now: datetime, reason: str | None, amount: float | None,
           to_rep: str | None) -> str:
    who = actor.label
    if action is Action.CLAIM:
        if lead.owner is None and actor.rep:
            lead.owner, lead.owner_since = actor.rep, now
        lead.claimed_at = now
        lead.state = target
        add_event(session, lead, at=now, actor=who, type="claimed")
        refresh_next_check(ctx, lead)
        return f"Claimed {lead.name}."
    if action in ATTEMPTS:
        return _record_attempt(session, ctx, lead, action, target, who, now)
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
    return _close(session, ctx, lead, action, target, who, role, now, reason, amount)


def _record_attempt(session: Session, ctx: Context, lead: Lead, action: Action, target: State,
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
    add_event(session, lead, at=now, actor=who, type=action.value, attempt=lead.attempts)
    words = {Action.LOG_CALL: "a call", Action.LOG_EMAIL: "an email", Action.CONNECTED: "a connect"}
    assert lead.tier is not None
    count = ctx.clocks.tier(lead.tier).attempts.count
    return f"Logged {words[action]} on {lead.name}: attempt {lead.attempts} of {count}."


def _close(session: Session, ctx: Context, lead: Lead, action: Action, target: State, who: str,
           role: Role, now: datetime, reason: str | None, amount: float | None) -> str:
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
    add_event(session, lead, at=now, actor=who, type=action.value, reason=reason, amount=amount,
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
        lead: Lead | None = session.execute(
            select(Lead).where(col(Lead.external_id) == external_id)).scalars().first()
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
        add_event(session, lead, at=now, actor="crm", type=type, amount=amount, crm_url=crm_url,
                  reported_at=_iso(when))
        _save(session, lead, seen)
        queue_card(session, ctx, lead, now)
        return lead


def set_away(ctx: Context, *, rep: str, away: bool, until: datetime | None = None) -> None:
    now = ctx.now()
    with ctx.db.write() as session:
        status = session.get(RepStatus, rep) or RepStatus(rep=rep, updated_at=now)
        status.away, status.away_until, status.updated_at = away, until if away else None, now
        session.add(status)

