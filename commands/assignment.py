"""Who owns a lead: routing (round robin or least loaded, over the reps' loads and the team's
cursor), assigning, reassigning, and the lead's clock that follows from its owner."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from commands.context import Context
from commands.notification import notify_person
from sla.agreement import Team
from sla.deadlines import LeadClock
from sla.lead import LeadIn
from sla.lifecycle import State
from sla.qualification import route_team
from sla.routing import RepLoad, choose_rep
from storage.db import Session
from storage.leads import add_event, iso, set_values
from storage.routing import last_reps, rep_counts, save_cursor, save_cursors
from storage.tables import Lead

__all__ = ["Routing", "announce_owner", "assign", "lead_clock", "refresh_next_check", "rep_loads", "set_owner"]


class Routing:
    """Rep loads and round-robin cursors, read once per team per transaction and kept current as
    leads are assigned in it (SQLite's write lock, or PostgreSQL's cursor row lock, keeps other
    writers out until commit)."""

    def __init__(self, session: Session, ctx: Context, now: datetime) -> None:
        self.session, self.ctx, self.now = session, ctx, now
        self.loads: dict[str, dict[str, RepLoad]] = {}
        self.cursors: dict[str, str | None] = {}
        #: Teams whose cursor moved but is not written yet (see `defer_cursors`).
        self.unsaved: set[str] | None = None
        #: The teams the transaction may route to (see `expect`).
        self.expected: list[Team] = []
        #: The team each handoff of the transaction routes to, by the handoff (see `team_of`).
        self._routes: dict[int, tuple[LeadIn, str]] = {}

    def team_of(self, lead_in: LeadIn) -> str:
        """The key of the team the agreement's routing rules send this lead to, worked out once per
        transaction (a batch asks before it reads the routing state, and again as it builds each lead)."""
        known = self._routes.get(id(lead_in))
        if known is not None and known[0] is lead_in:
            return known[1]
        key = route_team(self.ctx.agreement, lead_in)
        self._routes[id(lead_in)] = (lead_in, key)
        return key

    def expect(self, teams: list[Team]) -> None:
        """The teams a batch may route to: the first read of routing state locks all their cursors
        at once, in team order (locking some now and others later could deadlock with another
        process locking the same teams the other way round). The read itself waits until a lead
        needs an owner, so the rows are held as briefly as possible."""
        self.expected = teams

    def forget(self) -> None:
        """After a rolled-back savepoint: read everything again."""
        self.loads.clear()
        self.cursors.clear()
        if self.unsaved is not None:
            self.unsaved.clear()

    def prefetch(self, teams: list[Team]) -> None:
        """Read the cursors (locked, in team order) and rep loads of these teams in one go, not team
        by team as leads come to them: a batch's routing state costs a few queries, not a few per team."""
        needed = {team.key: team for team in [*self.expected, *teams] if team.key not in self.loads}
        if not needed:
            return
        week_start, _ = self.ctx.calendar.week_bounds(self.now)
        with self.session.no_autoflush:
            cursors = last_reps(self.session, teams=list(needed), now=self.now, lock=True)
            counts = rep_counts(self.session, reps=sorted({r.key for t in needed.values() for r in t.reps}),
                                week_start=week_start, now=self.now)
        for key, team in needed.items():
            self.cursors[key] = cursors[key]
            self.loads[key] = {r.key: RepLoad(away=counts[r.key][0], open_leads=counts[r.key][1],
                                              assigned_this_week=counts[r.key][2]) for r in team.reps}

    def defer_cursors(self) -> None:
        """Write each team's cursor once, at `save_cursors`, not at every assignment (a batch)."""
        self.unsaved = set()

    def save_cursors(self) -> None:
        """Write the cursors moved since `defer_cursors`, one row per team, and stop deferring."""
        moved = {team: rep for team in self.unsaved or () if (rep := self.cursors.get(team)) is not None}
        save_cursors(self.session, cursors=moved, now=self.now)
        self.unsaved = None

    def choose(self, team: Team, exclude: frozenset[str]) -> tuple[str | None, str]:
        if team.key not in self.loads:
            self.prefetch([team])
        loads = self.loads[team.key]
        routing = self.ctx.agreement.routing
        choice = choose_rep(team=team, strategy=routing.strategy, loads=loads, last_rep=self.cursors[team.key],
                            skip_unavailable=routing.skip_unavailable, exclude=exclude)
        if choice.rep is not None:
            if self.unsaved is None:
                save_cursor(self.session, team=team.key, rep=choice.rep, now=self.now)
            else:
                self.unsaved.add(team.key)
            self.cursors[team.key] = choice.rep
            load = loads.get(choice.rep, RepLoad())
            loads[choice.rep] = replace(load, open_leads=load.open_leads + 1,
                                        assigned_this_week=load.assigned_this_week + 1)
        return choice.rep, choice.reason


def rep_loads(session: Session, ctx: Context, team: Team, now: datetime) -> dict[str, RepLoad]:
    """Open leads and this week's assignments per rep, and whether they are away."""
    week_start, _ = ctx.calendar.week_bounds(now)
    counts = rep_counts(session, reps=[r.key for r in team.reps], week_start=week_start, now=now)
    return {k: RepLoad(away=away, open_leads=open_leads, assigned_this_week=week)
            for k, (away, open_leads, week) in counts.items()}


def assign(session: Session, ctx: Context, lead: Lead, team: Team, now: datetime, *,
           exclude: frozenset[str], actor: str, to_rep: str | None = None, why: str = "") -> None:
    """Give the lead an owner with a fresh first-touch window, or leave it for the team to claim."""
    reason = set_owner(session, ctx, lead, team, now, exclude=exclude, actor=actor, to_rep=to_rep, why=why)
    announce_owner(session, ctx, lead, team, now, actor=actor, reason=reason)


def set_owner(session: Session, ctx: Context, lead: Lead, team: Team, now: datetime, *,
               exclude: frozenset[str], actor: str, to_rep: str | None = None, why: str = "",
               routing: Routing | None = None) -> str:
    if to_rep is not None:
        rep_key: str | None = to_rep
        reason = why or f"assigned by {actor}"
    else:
        rep_key, chosen_because = (routing or Routing(session, ctx, now)).choose(team, exclude)
        reason = (f"{why}; " if why else "") + chosen_because
    assert lead.tier is not None
    values: dict[str, Any] = {"owner": rep_key, "owner_since": now, "owner_seq": (lead.owner_seq or 0) + 1,
              "routing_reason": reason[:500], "state": State.ROUTED, "is_open": True, "claimed_at": None,
              "nudge_steps_done": 0, "first_touch_due": ctx.clocks.first_touch_due(lead.tier, now),
              "claim_due": ctx.clocks.claim_due(now)}
    if lead.owner and lead.owner not in lead.previous_owners:
        values["previous_owners"] = [*lead.previous_owners, lead.owner]
    set_values(lead, values)
    refresh_next_check(ctx, lead)
    return reason


def announce_owner(session: Session, ctx: Context, lead: Lead, team: Team, now: datetime, *,
                    actor: str, reason: str) -> None:
    add_event(session, lead=lead, at=now, actor=actor, type="routed", team=team.key, rep=lead.owner,
              reason=reason, first_touch_due=iso(lead.first_touch_due))
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
    set_values(lead, {"next_check_at": due.at if due else None})
