"""The engine's sweep: fires due nudges, escalations, claim timeouts and cadence reminders, once each.

`sweep(ctx, now=...)` is a plain function of `now` (DESIGN 3.2 flow 4). It looks only at open leads
whose `next_check_at` has come (index `ix_lead_open_next_check`), never at all leads, and handles
each in its own short write transaction so a slow or broken lead never holds the others up.

Why nothing fires twice, even with two workers, a restart or a replayed `slabot tick --now`:
1. On PostgreSQL the lead row is locked `FOR UPDATE SKIP LOCKED`: a second worker skips a lead the
   first is handling, and after the first commits it sees the lead no longer due.
2. Every step is claimed with a conditional UPDATE on the counter it advances (`nudge_steps_done`,
   `cadence_reminded`, `cadence_warned`, `owner_seq`): only the worker whose UPDATE matched sends.
3. Every message goes into the outbox with a unique dedupe key
   (`nudge:{lead}:{owner_seq}:{step}:{agreement_version}:{role}`, plus the platform), so even a
   replay that got past 1 and 2 could not queue the same message again.

Rules where DESIGN 2.5-2.6 leave room (what a user expects):
- Business hours. Every deadline is computed in business time, so it falls inside business hours
  or exactly at a close. A step fires when `now >= due` and business hours are running; a step that
  came due in business hours may still fire up to `CLOSE_GRACE` after it when the close came in
  between (a nudge due at 17:59:50 goes out at 18:00:10, not 15 hours later). Otherwise it waits for
  the next opening (`next_check_at = calendar.next_open(now)`), unless the step says
  `outside_business_hours: true`.
- Overdue steps after downtime are all sent, in ladder order: each step of the ladder exactly once.
- The ladder role `rep` is the owner at the time the step came due (the one losing the lead on a
  reassigning step). People named by two roles of one step get one message.
- Engine reassignments (escalation and claim timeout) only go to reps who have not had the lead. When
  every available rep has had it, the lead stays with its owner: a claim timeout tells the manager
  once and stops rotating, an escalation still notifies and ends the ladder. A manager can still
  reassign by hand (which may return the lead to an earlier owner, DESIGN 2.3).
- No chat platform at all: nothing fires (no nudge, escalation, claim timeout or reassignment would
  reach anyone); due leads wait, and the log says why once. A lead routed then, untouched, gets its
  card when a platform comes on and its owner a fresh first-touch window from then (`sla_due`, the
  agreement's deadline the numbers count, stays): nobody is escalated for a window nobody could see.
- Plain nudges and cadence reminders do not change the card, so they do not bump the lead's version
  (a rep's click on the card stays valid); a reassignment does, and queues the card update.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from commands import labels
from commands.assignment import assign, lead_clock, rep_loads
from commands.context import Context, team_channel
from commands.notification import notify_person, queue_card, resolve_person
from sla.agreement import Nudge, Team
from sla.clock import as_utc
from sla.deadlines import Due
from sla.lifecycle import Action, Refused, Role, State, next_state
from sla.routing import choose_rep
from storage.db import Session
from storage.leads import NOT_NULL, add_event, claim_step, ever_shown, lead_due
from storage.routing import last_rep as cursor_rep
from storage.sweep import due_lead_ids
from storage.tables import Lead

__all__ = ["CLOSE_GRACE", "NO_PLATFORM", "SweepReport", "due_lead_ids", "next_check", "sweep"]

log = logging.getLogger("slabot.engine")

NO_PLATFORM = ("no chat platform is configured, so no nudge, escalation, claim timeout or reassignment "
               "fires and no digest is sent; set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET, or TEAMS_APP_ID "
               "and TEAMS_APP_PASSWORD")
#: A step that came due while business hours ran may fire this long after it, past the close.
CLOSE_GRACE = timedelta(minutes=2)
#: More steps than this for one lead in one sweep means a bug, not a ladder: stop and log.
_MAX_STEPS_PER_LEAD = 64


@dataclass
class SweepReport:
    """What one sweep did; `lines()` is what `slabot tick` prints."""

    due: int = 0                 # leads selected because their next check had come
    nudges: int = 0              # ladder steps fired (escalations included)
    reassigned: int = 0          # leads given to a new owner (escalation or claim timeout)
    claim_timeouts: int = 0
    cadence_reminders: int = 0
    cadence_warnings: int = 0
    notifications: int = 0       # people notified (each is one DM per enabled platform)
    deferred: int = 0            # due, but business hours are closed: waiting for the next opening
    no_platform: int = 0         # due, but no chat platform is configured: waiting, nothing fired
    shown_late: int = 0          # routed while no platform was on: card queued now, owner's window restarted
    skipped: int = 0             # another worker had it, or it stopped being due
    more: bool = False           # the limit was reached: more leads are due
    errors: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        lines = [f"sweep: {self.due} lead(s) due, {self.nudges} nudge step(s), "
                 f"{self.claim_timeouts} claim timeout(s), {self.reassigned} reassigned, "
                 f"{self.cadence_reminders} cadence reminder(s), {self.cadence_warnings} cadence "
                 f"warning(s), {self.notifications} notification(s), {self.deferred} waiting for "
                 f"business hours, {self.skipped} skipped"]
        if self.no_platform:
            lines.append(f"sweep: {self.no_platform} lead(s) due are waiting: {NO_PLATFORM}")
        if self.shown_late:
            lines.append(f"sweep: {self.shown_late} card(s) of leads routed while no chat platform was on are "
                         "posted now, each owner with a fresh first-touch window")
        if self.more:
            lines.append("sweep: limit reached, more leads are due (the next tick continues)")
        lines += [f"sweep error: {error}" for error in self.errors]
        return lines


class _LostRace(Exception):
    """Another worker claimed this step first: roll back whatever this transaction did."""


# --- selection: storage.sweep.due_lead_ids (re-exported here) -------------------------------------


def sweep(ctx: Context, *, now: datetime, limit: int = 1000) -> SweepReport:
    """Fire everything due at `now` for at most `limit` leads. Safe to run concurrently and to
    replay: see the module docstring."""
    now = as_utc(now)
    report = SweepReport()
    with ctx.db.read() as session:
        ids = due_lead_ids(session, now=now, limit=limit)
    if not ctx.platforms:
        # Nobody can see a card or a nudge: firing steps would reassign leads nobody was shown and
        # record messages that were never sent. The leads stay due and fire once a platform is on.
        report.no_platform = len(ids)
        if ids and "no_platform" not in ctx.noticed:
            ctx.noticed.add("no_platform")
            log.warning("%s lead(s) due are waiting: %s", len(ids), NO_PLATFORM, extra={"count": len(ids)})
        return report
    ctx.noticed.discard("no_platform")
    report.due = len(ids)
    report.more = len(ids) >= limit
    for lead_id in ids:
        partial = SweepReport()
        try:
            _sweep_lead(ctx, lead_id, now, partial)
        except _LostRace:
            report.skipped += 1
            continue
        except Exception as exc:
            log.exception("sweep of lead %s failed", lead_id, extra={"lead_id": lead_id})
            report.errors.append(f"lead {lead_id}: {type(exc).__name__}: {exc}"[:300])
            continue
        _merge(report, partial)
    return report


def _merge(into: SweepReport, part: SweepReport) -> None:
    for name in ("nudges", "reassigned", "claim_timeouts", "cadence_reminders", "cadence_warnings",
                 "notifications", "deferred", "skipped", "shown_late"):
        setattr(into, name, getattr(into, name) + getattr(part, name))


def _sweep_lead(ctx: Context, lead_id: int, now: datetime, report: SweepReport) -> None:
    """One lead, one transaction. Counts go into `report` only if the transaction commits."""
    with ctx.db.write() as session:
        # On PostgreSQL another worker holding this lead is handling it: skipped rather than waited for.
        lead = lead_due(session, lead_id=lead_id, now=now)
        if lead is None:
            report.skipped += 1
            return
        if not (lead.tier and lead.owner_since and lead.routed_at):
            lead.next_check_at = None    # nothing the engine can time
            return
        if _shown_late(session, ctx, lead, now):
            report.shown_late += 1
            lead.next_check_at = next_check(ctx, lead)
            return
        for _ in range(_MAX_STEPS_PER_LEAD):
            due = ctx.clocks.next_due(lead_clock(lead))
            if due is None or due.at > now:
                break
            if not _may_fire(ctx, due, now):
                lead.next_check_at = ctx.calendar.next_open(now)
                report.deferred += 1
                return
            if due.kind == "nudge":
                _fire_nudge(session, ctx, lead, due, now, report)
            elif due.kind == "claim_timeout":
                _fire_claim_timeout(session, ctx, lead, now, report)
            elif due.kind == "cadence":
                _fire_cadence(session, ctx, lead, due, now, report)
            elif due.kind == "cadence_ending":
                _fire_cadence_ending(session, ctx, lead, now, report)
            else:   # pragma: no cover - a new kind in sla.deadlines without a handler here
                raise ValueError(f"unknown due kind {due.kind!r}")
        else:
            log.error("lead %s: more than %s steps due at once; stopping", lead_id, _MAX_STEPS_PER_LEAD,
                      extra={"lead_id": lead_id})
        lead.next_check_at = next_check(ctx, lead)


# --- clocks --------------------------------------------------------------------------------------


def next_check(ctx: Context, lead: Lead) -> datetime | None:
    """The next instant the engine must look at `lead` (None: nothing left to time)."""
    if not (lead.is_open and lead.tier and lead.routed_at and lead.owner_since):
        return None
    due = ctx.clocks.next_due(lead_clock(lead))
    return due.at if due else None


def _may_fire(ctx: Context, due: Due, now: datetime) -> bool:
    if due.kind == "nudge" and _nudge(ctx, due.step).outside_business_hours:
        return True
    if ctx.calendar.is_open(now):
        return True
    # Came due while open (or exactly at the close) and the close is only just past.
    just_before_due = due.at - timedelta(microseconds=1)
    return now - due.at <= CLOSE_GRACE and ctx.calendar.is_open(just_before_due)


def _nudge(ctx: Context, step: int) -> Nudge:
    return ctx.agreement.nudges[step]


# --- leads nobody could see ----------------------------------------------------------------------


def _never_shown(session: Session, lead: Lead) -> bool:
    """No card was ever queued or posted for this lead, on any platform."""
    assert lead.id is not None
    return not ever_shown(session, lead_id=lead.id)


def _shown_late(session: Session, ctx: Context, lead: Lead, now: datetime) -> bool:
    """A lead routed while no chat platform was on, untouched since: nobody has seen it, so the
    engine must not nudge, escalate or reassign it for a window its owner never had. Its card is
    queued now and the owner gets a fresh first-touch window from now, as a reassigned owner does;
    `sla_due`, the agreement's deadline the numbers count, stays as it was."""
    if (not (lead.workable or lead.experiment) or lead.attempts or lead.claimed_at is not None or lead.nudge_steps_done
            or not _never_shown(session, lead)):
        return False
    team = ctx.agreement.team(lead.team or "")
    if team is None or not any(team_channel(session, ctx.agreement, team=team, platform=platform)
                               for platform in ctx.platforms):
        return False        # no channel to show it in: the ladder goes on as it would (a manager hears)
    assert lead.tier is not None
    _claim(session, lead, {**_untouched_guard(lead), "version": lead.version},
           version=lead.version + 1, owner_since=now, nudge_steps_done=0,
           first_touch_due=ctx.clocks.first_touch_due(lead.tier, now), claim_due=ctx.clocks.claim_due(now))
    queue_card(session, ctx, lead, now)
    add_event(session, lead=lead, at=now, actor="system", type="card_late",
              reason="routed while no chat platform was configured: card posted now, fresh first-touch window")
    if lead.owner:
        notify_person(session, ctx, person_key=f"rep:{lead.owner}", now=now, lead_id=lead.id,
                      dedupe=f"assigned:{lead.id}:{lead.owner_seq}:late",
                      text=f"{_lead_words(lead)} is yours: it came in while slabot had no chat platform, so "
                           f"its card is posted only now. First touch due {_local(ctx, lead.first_touch_due or now)}.")
    return True


# --- steps ---------------------------------------------------------------------------------------


def _claim(session: Session, lead: Lead, guard: dict[str, object], **values: object) -> None:
    """Claim a step: the UPDATE only matches if nobody advanced the lead since we read it.

    Here lay dragons: this is the guard that makes a step fire once across workers and replays.
    On a miss the whole transaction is rolled back and the lead counted as skipped.
    """
    if not claim_step(session, lead=lead, guard=guard, values=values):
        raise _LostRace()


def _untouched_guard(lead: Lead) -> dict[str, object]:
    return {"owner_seq": lead.owner_seq, "attempts": 0, "is_open": True}


def _fire_nudge(session: Session, ctx: Context, lead: Lead, due: Due, now: datetime,
                report: SweepReport) -> None:
    step = due.step
    nudge = _nudge(ctx, step)
    seq, owner = lead.owner_seq, lead.owner
    team = ctx.agreement.team(lead.team or "")
    due_before = lead.first_touch_due
    new_owner = _eligible_new_owner(session, ctx, lead, team, now) if nudge.reassign else None
    guard = {**_untouched_guard(lead), "nudge_steps_done": step}
    if new_owner is not None:
        guard["version"] = lead.version
        _claim(session, lead, guard, nudge_steps_done=step + 1, version=lead.version + 1)
    else:
        _claim(session, lead, guard, nudge_steps_done=step + 1)
    report.nudges += 1

    reassigned_to: str | None = None
    if new_owner is not None and team is not None:
        assert lead.tier is not None
        window = labels.duration(ctx.clocks.tier(lead.tier).first_touch_within)
        story = (f"{_rep_name(ctx, owner)} had not touched it at {nudge.at:.0%} of its {window} "
                 "first-touch window" if owner else "it had no owner")
        reassigned_to = _reassign(session, ctx, lead, team, now, story=story,
                                  why=f"escalation: no first touch within {nudge.at:.0%} of the "
                                      f"first-touch window")
        report.reassigned += int(reassigned_to is not None)

    texts = _nudge_texts(ctx, lead, nudge, owner=owner, team=team, due_before=due_before,
                         reassigned_to=reassigned_to, wanted_reassign=nudge.reassign)
    notified = _notify_roles(session, ctx, lead, roles=nudge.notify, owner=owner, team=team,
                             texts=texts, now=now,
                             dedupe=f"nudge:{lead.id}:{seq}:{step}:{ctx.agreement.version}")
    report.notifications += len(notified)
    add_event(session, lead=lead, at=now, actor="system", type="nudge", step=step,
              at_pct=round(nudge.at * 100, 2), owner=owner, notified=notified,
              reassigned_to=reassigned_to)


def _fire_claim_timeout(session: Session, ctx: Context, lead: Lead, now: datetime,
                        report: SweepReport) -> None:
    seq, owner = lead.owner_seq, lead.owner
    team = ctx.agreement.team(lead.team or "")
    new_owner = _eligible_new_owner(session, ctx, lead, team, now)
    guard = {**_untouched_guard(lead), "claimed_at": None, "claim_due": NOT_NULL, "version": lead.version}
    report.claim_timeouts += 1
    within = labels.duration(ctx.agreement.sales.claim_within)
    if new_owner is None or team is None:
        # Everyone available has had it: stop rotating, tell the manager once.
        _claim(session, lead, guard, claim_due=None)
        add_event(session, lead=lead, at=now, actor="system", type="claim_timeout", owner=owner,
                  reassigned_to=None, reason="no rep left who has not had this lead")
        if team is not None and team.manager is not None:
            who = _rep_name(ctx, owner) if owner else "nobody"
            notify_person(session, ctx, person_key=f"manager:{team.key}", now=now, lead_id=lead.id,
                          dedupe=f"claim_timeout:{lead.id}:{seq}:manager",
                          text=f"Nobody has claimed {_lead_words(lead)} in {team.name}: every available "
                               f"rep has had it for {within}. It stays with {who}; reassign it by hand "
                               "if someone else should take it.")
            report.notifications += 1
        return
    _claim(session, lead, guard, version=lead.version + 1)
    add_event(session, lead=lead, at=now, actor="system", type="claim_timeout", owner=owner,
              reassigned_to=new_owner, reason=f"not claimed or touched within {within}")
    story = f"{_rep_name(ctx, owner)} did not claim it within {within}" if owner else "it had no owner"
    reassigned_to = _reassign(session, ctx, lead, team, now, story=story,
                              why=f"claim timeout: not claimed within {within}")
    report.reassigned += int(reassigned_to is not None)


def _fire_cadence(session: Session, ctx: Context, lead: Lead, due: Due, now: datetime,
                  report: SweepReport) -> None:
    attempt = due.step
    _claim(session, lead, {"cadence_reminded": lead.cadence_reminded, "attempts": lead.attempts, "is_open": True},
           cadence_reminded=attempt)
    report.cadence_reminders += 1
    assert lead.tier is not None and lead.routed_at is not None
    tier = ctx.clocks.tier(lead.tier)
    window_end = ctx.calendar.add(lead.routed_at, tier.attempts.within.to_timedelta(ctx.calendar.day_length))
    text = (f"Attempt {attempt} of {tier.attempts.count} on {_lead_words(lead)} is due now "
            f"({lead.attempts} logged so far; the agreement asks for {tier.attempts.count} attempts "
            f"by {_local(ctx, window_end)}).")
    if lead.owner:
        notify_person(session, ctx, person_key=f"rep:{lead.owner}", now=now, lead_id=lead.id, text=text,
                      dedupe=f"cadence:{lead.id}:{attempt}:{ctx.agreement.version}")
        report.notifications += 1
    add_event(session, lead=lead, at=now, actor="system", type="cadence_reminder", attempt=attempt,
              owner=lead.owner)


def _fire_cadence_ending(session: Session, ctx: Context, lead: Lead, now: datetime,
                         report: SweepReport) -> None:
    _claim(session, lead, {"cadence_warned": False, "attempts": lead.attempts, "is_open": True},
           cadence_warned=True)
    report.cadence_warnings += 1
    assert lead.tier is not None and lead.routed_at is not None
    tier = ctx.clocks.tier(lead.tier)
    window_end = ctx.calendar.add(lead.routed_at, tier.attempts.within.to_timedelta(ctx.calendar.day_length))
    missing = tier.attempts.count - lead.attempts
    text = (f"The attempt window for {_lead_words(lead)} ends {_local(ctx, window_end)}: "
            f"{lead.attempts} of {tier.attempts.count} attempts so far, {missing} to go before it may "
            "go back to nurture as unresponsive.")
    if lead.owner:
        notify_person(session, ctx, person_key=f"rep:{lead.owner}", now=now, lead_id=lead.id, text=text,
                      dedupe=f"cadence_end:{lead.id}:{ctx.agreement.version}")
        report.notifications += 1
    add_event(session, lead=lead, at=now, actor="system", type="cadence_warning", attempts=lead.attempts,
              owner=lead.owner)


# --- reassignment --------------------------------------------------------------------------------


def _eligible_new_owner(session: Session, ctx: Context, lead: Lead, team: Team | None,
                        now: datetime) -> str | None:
    """Who routing would pick now among reps who have not had the lead; None if nobody."""
    if team is None:
        return None
    try:
        next_state(State(lead.state), Action.REASSIGN, Role.SYSTEM)
    except Refused:
        return None
    exclude = _had_it(lead)
    last_rep = cursor_rep(session, team=team.key, now=now, lock=False)
    choice = choose_rep(team=team, strategy=ctx.agreement.routing.strategy,
                        loads=rep_loads(session, ctx, team, now), last_rep=last_rep,
                        skip_unavailable=ctx.agreement.routing.skip_unavailable, exclude=exclude)
    return choice.rep if choice.rep is not None and choice.rep not in exclude else None


def _had_it(lead: Lead) -> frozenset[str]:
    return frozenset([*lead.previous_owners, *([lead.owner] if lead.owner else [])])


def _reassign(session: Session, ctx: Context, lead: Lead, team: Team, now: datetime, *,
              why: str, story: str) -> str | None:
    """Give the lead to the next rep with a fresh window (sla_due stays), update the card and DM
    the new owner. `why` goes into the routing reason, `story` into the new owner's message. The
    caller has claimed the step and bumped the version."""
    assign(session, ctx, lead, team, now, exclude=_had_it(lead), actor="system", why=why)
    queue_card(session, ctx, lead, now)
    if lead.owner:
        due = _local(ctx, lead.first_touch_due or now)
        notify_person(session, ctx, person_key=f"rep:{lead.owner}", now=now, lead_id=lead.id,
                      dedupe=f"assigned:{lead.id}:{lead.owner_seq}",
                      text=f"{_lead_words(lead)} is now yours: {story}. First touch due {due}.")
    return lead.owner


# --- messages ------------------------------------------------------------------------------------


def _notify_roles(session: Session, ctx: Context, lead: Lead, *, roles: Sequence[str], owner: str | None,
                  team: Team | None, texts: dict[str, str], now: datetime, dedupe: str) -> list[str]:
    """DM each role's person once (someone named by two roles gets the first role's message)."""
    notified: list[str] = []
    seen: set[str] = set()
    for role in roles:
        if role == "rep":
            key = f"rep:{owner}" if owner else None
        elif role == "manager":
            key = f"manager:{team.key}" if team is not None and team.manager is not None else None
        else:
            key = role
        person = resolve_person(ctx, key) if key else None
        if key is None or person is None:
            continue
        identity = str((person.email or "").lower() or next(iter(person.chat_ids()), None) or person.name)
        if identity in seen:
            continue
        seen.add(identity)
        notify_person(session, ctx, person_key=key, dedupe=f"{dedupe}:{role}", now=now,
                      text=texts[role], lead_id=lead.id)
        notified.append(key)
    return notified


def _nudge_texts(ctx: Context, lead: Lead, nudge: Nudge, *, owner: str | None, team: Team | None,
                 due_before: datetime | None, reassigned_to: str | None,
                 wanted_reassign: bool) -> dict[str, str]:
    """One neutral text per role: the owner hears about their lead, the others about the team's."""
    assert lead.tier is not None
    window = labels.duration(ctx.clocks.tier(lead.tier).first_touch_within)
    due_text = _local(ctx, due_before) if due_before else "n/a"
    if nudge.at < 1:
        state = f"{nudge.at:.0%} of its {window} first-touch window has passed (due {due_text})"
    elif nudge.at == 1:
        state = f"it has reached its first-touch deadline ({due_text}, {window} window)"
    else:
        state = f"it is at {nudge.at:.0%} of its {window} first-touch window (due {due_text})"
    owner_name = _rep_name(ctx, owner) if owner else "nobody"
    if reassigned_to is not None:
        outcome = f" It has been reassigned from {owner_name} to {_rep_name(ctx, reassigned_to)}."
    elif wanted_reassign:
        outcome = f" Nobody else is available to take it, so it stays with {owner_name}."
    else:
        outcome = ""
    words = _lead_words(lead)
    team_name = team.name if team is not None else (lead.team or "no team")
    mine = (f"No first touch yet on {words}: {state}." if reassigned_to is None
            else f"{words} had no first touch: {state}.")
    theirs = f"{owner_name}'s lead {words} in {team_name} has no first touch: {state}."
    return {"rep": mine + outcome, "manager": theirs + outcome,
            "marketing_vp": theirs + outcome, "sales_vp": theirs + outcome}


def _lead_words(lead: Lead) -> str:
    return f"{lead.name} ({lead.company})" if lead.company else lead.name


def _rep_name(ctx: Context, key: str | None) -> str:
    rep = ctx.agreement.rep(key or "")
    return rep.name if rep else (key or "nobody")


def _local(ctx: Context, at: datetime) -> str:
    local = ctx.calendar.local(at)
    return f"{local:%a %b} {local.day}, {local:%H:%M} {local.tzname()}"
