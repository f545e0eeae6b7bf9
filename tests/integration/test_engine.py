"""The engine's sweep on a real SQLite database with an injected clock: ladder deadlines across
weekends, holidays and DST, each step exactly once, reassignment, claim timeouts, cadence
reminders, business hours, replays, and the whole tick end to end through a recording transport."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlmodel import col, select

from bot.presentation.cards import Card
from bot.services import Services, build_services
from bot.worker.delivery import Posted
from bot.worker.scheduler import TICK_JOB_ID, serve_worker, start_scheduler
from bot.worker.tick import TickReport, tick
from commands.actions import ActionRequest, perform
from commands.context import Actor, Context
from commands.intake import handoff
from commands.sweep import CLOSE_GRACE, due_lead_ids, sweep
from sla.agreement import Agreement, Nudge
from sla.clock import FixedClock
from sla.lead import LeadIn
from sla.lifecycle import Action
from storage.db import Database
from storage.tables import Lead, LeadEvent, OutboxMessage
from tests.conftest import make_settings

NY = ZoneInfo("America/New_York")


def local(y: int, m: int, d: int, hh: int, mm: int, ss: int = 0) -> datetime:
    """A New York wall time as a UTC instant (the example agreement's zone)."""
    return datetime(y, m, d, hh, mm, ss, tzinfo=NY).astimezone(UTC)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def lead_in(name: str = "Hot Lead", *, hot: bool = True, employees: int = 50, **extra: Any) -> LeadIn:
    """A workable lead for the example agreement: score 40 (hot, 15m window) or 30 (standard, 2h)."""
    activities = [{"type": "demo_requested"}] + ([{"type": "pricing_page_viewed"}] if hot else [])
    first, _, last = name.partition(" ")
    body: dict[str, Any] = {
        "email": f"{first.lower()}.{(last or 'x').lower()}@initech.example", "first_name": first,
        "last_name": last or None, "company": "Initech", "employees": employees,
        "stage": "solution_research", "source": "demo_request", "activities": activities,
        "bant": {"need": "yes", "budget": True},
    }
    body.update(extra)
    return LeadIn.model_validate(body)


def route(ctx: Context, clock: FixedClock, at: datetime, lead: LeadIn | None = None) -> Lead:
    clock.set(at)
    result = handoff(ctx, lead or lead_in())
    assert not result.duplicate and result.lead.id is not None
    return result.lead


def rep_actor(ctx: Context, rep: str) -> Actor:
    person = ctx.agreement.rep(rep)
    assert person is not None
    return Actor(platform="console", user_id=person.name, name=person.name, rep=rep)


def act(ctx: Context, clock: FixedClock, at: datetime, lead_id: int, action: Action, rep: str) -> None:
    clock.set(at)
    outcome = perform(ctx, ActionRequest(lead_id=lead_id, action=action, actor=rep_actor(ctx, rep)))
    assert not outcome.refused, outcome.text


def get(ctx: Context, lead_id: int) -> Lead:
    with ctx.db.read() as session:
        lead = session.get(Lead, lead_id)
        assert lead is not None
        return lead


def outbox(ctx: Context, *, kind: str | None = None, prefix: str = "") -> list[OutboxMessage]:
    with ctx.db.read() as session:
        query = select(OutboxMessage).order_by(col(OutboxMessage.id))
        if kind is not None:
            query = query.where(col(OutboxMessage.kind) == kind)
        return [m for m in session.execute(query).scalars() if m.dedupe_key.startswith(prefix)]


def dms(ctx: Context, prefix: str = "") -> list[tuple[str, str]]:
    """(target, text) of every DM queued, in order."""
    return [(m.target, m.payload["text"]) for m in outbox(ctx, kind="dm", prefix=prefix)]


def events(ctx: Context, lead_id: int, type: str | None = None) -> list[LeadEvent]:
    with ctx.db.read() as session:
        found = session.execute(select(LeadEvent).where(col(LeadEvent.lead_id) == lead_id)
                                .order_by(col(LeadEvent.id))).scalars().all()
    return [e for e in found if type is None or e.type == type]


def with_nudges(agreement: Agreement, nudges: list[Nudge]) -> Agreement:
    return agreement.model_copy(update={"nudges": nudges})


# --- deadlines in business time ------------------------------------------------------------------


@pytest.mark.parametrize(("routed", "half", "full", "double"), [
    # Friday 17:55 EST: 5 business minutes on Friday, then Monday from 09:00.
    pytest.param(utc("2026-11-20T22:55:00Z"), utc("2026-11-23T14:02:30Z"), utc("2026-11-23T14:10:00Z"),
                 utc("2026-11-23T14:25:00Z"), id="weekend"),
    # Wednesday 17:55 before Thanksgiving (Thu 2026-11-26): the clock resumes Friday 09:00 EST.
    pytest.param(utc("2026-11-25T22:55:00Z"), utc("2026-11-27T14:02:30Z"), utc("2026-11-27T14:10:00Z"),
                 utc("2026-11-27T14:25:00Z"), id="holiday"),
    # Friday 2026-10-30 17:55 EDT (21:55Z); DST ends Sunday 11-01, so Monday 09:00 is 14:00Z.
    pytest.param(utc("2026-10-30T21:55:00Z"), utc("2026-11-02T14:02:30Z"), utc("2026-11-02T14:10:00Z"),
                 utc("2026-11-02T14:25:00Z"), id="dst-ends"),
    # Friday 2026-03-06 17:55 EST (22:55Z); DST starts Sunday 03-08, so Monday 09:00 is 13:00Z.
    pytest.param(utc("2026-03-06T22:55:00Z"), utc("2026-03-09T13:02:30Z"), utc("2026-03-09T13:10:00Z"),
                 utc("2026-03-09T13:25:00Z"), id="dst-starts"),
])
def test_hot_lead_ladder_deadlines_in_business_time(ctx: Context, clock: FixedClock, routed: datetime,
                                                    half: datetime, full: datetime, double: datetime) -> None:
    lead = route(ctx, clock, routed)
    assert lead.id is not None and lead.tier == "hot" and lead.owner == "ana"
    assert lead.first_touch_due == full and lead.sla_due == full
    assert lead.next_check_at == half                  # the 50% step comes before the claim timeout
    act(ctx, clock, routed + timedelta(minutes=1), lead.id, Action.CLAIM, "ana")

    # Nothing over the weekend or holiday, nor a moment before the step is due.
    for at in (routed + timedelta(hours=2), routed + timedelta(days=1), half - timedelta(seconds=1)):
        assert sweep(ctx, now=at).nudges == 0
    assert dms(ctx) == []

    assert sweep(ctx, now=half).nudges == 1
    assert [t for t, _ in dms(ctx, "nudge:")] == ["Ana Ruiz"]
    assert "50% of its 15 min first-touch window" in dms(ctx)[0][1]
    assert get(ctx, lead.id).next_check_at == full

    assert sweep(ctx, now=full - timedelta(seconds=1)).nudges == 0
    assert sweep(ctx, now=full).nudges == 1
    assert get(ctx, lead.id).next_check_at == double
    assert sweep(ctx, now=double - timedelta(seconds=1)).nudges == 0
    report = sweep(ctx, now=double)
    assert report.nudges == 1 and report.reassigned == 1


def test_standard_lead_deadlines_on_a_weekday(ctx: Context, clock: FixedClock) -> None:
    # Tue 10:00 EST, 2h window: claim timeout 10:10, 50% 11:00, deadline 12:00, 200% 14:00.
    lead = route(ctx, clock, local(2026, 11, 24, 10, 0), lead_in("Std Lead", hot=False))
    assert lead.tier == "standard" and lead.first_touch_due == local(2026, 11, 24, 12, 0)
    assert lead.claim_due == local(2026, 11, 24, 10, 10)
    assert lead.next_check_at == local(2026, 11, 24, 10, 10)


# --- the ladder: once each -----------------------------------------------------------------------


def test_each_ladder_step_fires_exactly_once(ctx: Context, clock: FixedClock, agreement: Agreement) -> None:
    routed = local(2026, 11, 20, 17, 55)
    lead = route(ctx, clock, routed)
    assert lead.id is not None
    act(ctx, clock, routed + timedelta(minutes=1), lead.id, Action.CLAIM, "ana")
    half, full, double = local(2026, 11, 23, 9, 2, 30), local(2026, 11, 23, 9, 10), local(2026, 11, 23, 9, 25)
    schedule = [half - timedelta(seconds=1), half, half, half + timedelta(minutes=1), full, full,
                full + timedelta(seconds=5), half, double, double, double + timedelta(minutes=1), full]
    for at in schedule:
        for _ in range(3):
            sweep(ctx, now=at)

    version = agreement.version
    keys = [m.dedupe_key for m in outbox(ctx, kind="dm")]
    assert keys == [
        f"nudge:{lead.id}:1:0:{version}:rep:console",
        f"nudge:{lead.id}:1:1:{version}:rep:console",
        f"nudge:{lead.id}:1:1:{version}:manager:console",
        f"assigned:{lead.id}:2:console",
        f"nudge:{lead.id}:1:2:{version}:manager:console",
        f"nudge:{lead.id}:1:2:{version}:marketing_vp:console",
    ]
    assert [t for t, _ in dms(ctx)] == ["Ana Ruiz", "Ana Ruiz", "Priya Shah", "Ben Okafor", "Priya Shah",
                                        "Maya Lin"]
    steps = [e.data["step"] for e in events(ctx, lead.id, "nudge")]
    assert steps == [0, 1, 2]
    # The new owner's own ladder has not started yet (50% of 15m after 09:25 is 09:32:30).
    assert get(ctx, lead.id).next_check_at == local(2026, 11, 23, 9, 32, 30)


def test_overdue_steps_after_downtime_each_fire_once_in_order(ctx: Context, clock: FixedClock) -> None:
    lead = route(ctx, clock, local(2026, 11, 24, 10, 0), lead_in("Std Lead", hot=False))
    assert lead.id is not None
    act(ctx, clock, local(2026, 11, 24, 10, 1), lead.id, Action.CLAIM, "ana")
    # Down from 10:01 to 12:30: the 50% (11:00) and 100% (12:00) steps both fire, in ladder order.
    report = sweep(ctx, now=local(2026, 11, 24, 12, 30))
    assert report.nudges == 2 and report.notifications == 3
    assert [e.data["step"] for e in events(ctx, lead.id, "nudge")] == [0, 1]
    assert sweep(ctx, now=local(2026, 11, 24, 12, 30)).nudges == 0


def test_no_nudges_for_a_touched_lead(ctx: Context, clock: FixedClock) -> None:
    lead = route(ctx, clock, local(2026, 11, 24, 10, 0))
    assert lead.id is not None
    act(ctx, clock, local(2026, 11, 24, 10, 4), lead.id, Action.LOG_CALL, "ana")
    for minutes in (7, 8, 10, 15, 30, 60, 120):
        sweep(ctx, now=local(2026, 11, 24, 10, 0) + timedelta(minutes=minutes))
    assert dms(ctx) == []
    assert events(ctx, lead.id, "nudge") == [] and events(ctx, lead.id, "claim_timeout") == []
    assert get(ctx, lead.id).owner == "ana"


def test_a_touch_between_steps_stops_the_ladder(ctx: Context, clock: FixedClock) -> None:
    lead = route(ctx, clock, local(2026, 11, 24, 10, 0), lead_in("Std Lead", hot=False))
    assert lead.id is not None
    act(ctx, clock, local(2026, 11, 24, 10, 1), lead.id, Action.CLAIM, "ana")
    assert sweep(ctx, now=local(2026, 11, 24, 11, 0)).nudges == 1
    act(ctx, clock, local(2026, 11, 24, 11, 5), lead.id, Action.LOG_EMAIL, "ana")
    for at in (local(2026, 11, 24, 12, 0), local(2026, 11, 24, 14, 0), local(2026, 11, 24, 17, 0)):
        assert sweep(ctx, now=at).nudges == 0
    assert len(dms(ctx, "nudge:")) == 1


# --- reassignment --------------------------------------------------------------------------------


def test_escalation_reassigns_with_a_fresh_window(ctx: Context, clock: FixedClock) -> None:
    routed = local(2026, 11, 20, 17, 55)
    lead = route(ctx, clock, routed)
    assert lead.id is not None
    act(ctx, clock, routed + timedelta(minutes=1), lead.id, Action.CLAIM, "ana")
    original_due = local(2026, 11, 23, 9, 10)
    before = get(ctx, lead.id)
    double = local(2026, 11, 23, 9, 25)
    report = sweep(ctx, now=double)
    assert report.reassigned == 1 and report.nudges == 3      # 50%, 100% and 200% were all due

    after = get(ctx, lead.id)
    assert after.owner == "ben" and after.previous_owners == ["ana"] and after.owner_seq == 2
    assert after.owner_since == double and after.claimed_at is None and after.state == "routed"
    assert after.first_touch_due == double + timedelta(minutes=15)     # fresh 15m window
    assert after.sla_due == original_due                               # the numbers keep the original
    assert after.nudge_steps_done == 0 and after.version == before.version + 1
    cards = outbox(ctx, kind="card")
    assert [c.dedupe_key for c in cards][-1] == f"card:{lead.id}:console:v{after.version}"
    assert cards[-1].target == "#smb"
    new_owner = dms(ctx, "assigned:")
    assert new_owner == [("Ben Okafor", new_owner[0][1])]
    assert "is now yours" in new_owner[0][1] and "Mon Nov 23, 09:40 EST" in new_owner[0][1]
    routed_events = events(ctx, lead.id, "routed")
    assert routed_events[-1].data["rep"] == "ben" and "escalation" in routed_events[-1].data["reason"]
    manager = [text for target, text in dms(ctx) if target == "Priya Shah"][-1]
    assert "reassigned from Ana Ruiz to Ben Okafor" in manager


def test_reassignment_never_returns_to_a_previous_owner(ctx: Context, clock: FixedClock) -> None:
    """ana -(escalation)-> ben -(claim timeout)-> cho -(claim timeout: nobody left)-> stays with cho."""
    routed = local(2026, 11, 20, 17, 55)
    lead = route(ctx, clock, routed)
    assert lead.id is not None
    act(ctx, clock, routed + timedelta(minutes=1), lead.id, Action.CLAIM, "ana")
    sweep(ctx, now=local(2026, 11, 23, 9, 25))
    assert get(ctx, lead.id).owner == "ben"
    sweep(ctx, now=local(2026, 11, 23, 9, 35))                 # ben did not claim within 10m
    assert get(ctx, lead.id).owner == "cho"
    report = sweep(ctx, now=local(2026, 11, 23, 9, 45))        # cho neither; everyone had it
    assert report.claim_timeouts == 1 and report.reassigned == 0
    final = get(ctx, lead.id)
    assert final.owner == "cho" and final.previous_owners == ["ana", "ben"] and final.claim_due is None
    stays = [text for target, text in dms(ctx, "claim_timeout:")]
    assert len(stays) == 1 and "stays with Cho Park" in stays[0]
    # cho's ladder goes on: 100% of cho's window (09:35 + 15m) with the manager told.
    for _ in range(2):
        sweep(ctx, now=local(2026, 11, 23, 9, 50))
    assert [e.data["owner"] for e in events(ctx, lead.id, "nudge")][-1] == "cho"
    assert len(dms(ctx, "claim_timeout:")) == 1


def test_claim_timeout_gives_the_lead_to_the_next_rep(ctx: Context, clock: FixedClock) -> None:
    routed = local(2026, 11, 24, 10, 0)
    lead = route(ctx, clock, routed, lead_in("Std Lead", hot=False))
    assert lead.id is not None and lead.owner == "ana"
    assert sweep(ctx, now=routed + timedelta(minutes=10) - timedelta(seconds=1)).claim_timeouts == 0
    at = routed + timedelta(minutes=10)
    report = sweep(ctx, now=at)
    assert report.claim_timeouts == 1 and report.reassigned == 1
    assert sweep(ctx, now=at).claim_timeouts == 0
    after = get(ctx, lead.id)
    assert after.owner == "ben" and after.previous_owners == ["ana"]
    assert after.first_touch_due == local(2026, 11, 24, 12, 10) and after.sla_due == local(2026, 11, 24, 12, 0)
    assert after.claim_due == local(2026, 11, 24, 10, 20)
    timeout = events(ctx, lead.id, "claim_timeout")
    assert len(timeout) == 1 and timeout[0].data["owner"] == "ana" and timeout[0].data["reassigned_to"] == "ben"
    assert [t for t, _ in dms(ctx)] == ["Ben Okafor"]
    assert outbox(ctx, kind="card")[-1].payload == {"version": after.version}


def test_a_claimed_lead_has_no_claim_timeout(ctx: Context, clock: FixedClock) -> None:
    routed = local(2026, 11, 24, 10, 0)
    lead = route(ctx, clock, routed, lead_in("Std Lead", hot=False))
    assert lead.id is not None
    act(ctx, clock, routed + timedelta(minutes=5), lead.id, Action.CLAIM, "ana")
    for minutes in (10, 20, 59):
        assert sweep(ctx, now=routed + timedelta(minutes=minutes)).claim_timeouts == 0
    assert get(ctx, lead.id).owner == "ana" and dms(ctx) == []


# --- cadence -------------------------------------------------------------------------------------


def test_cadence_reminders_once_per_attempt_and_one_window_warning(ctx: Context, clock: FixedClock) -> None:
    # Hot: 6 attempts within 5d (45 business hours) from routing, Tue 2026-11-24 10:00 EST.
    # Attempt 2 is due after 1/5 of it (9h): Wed 10:00. Attempt 3 after 18h: Thanksgiving is
    # skipped, so Fri 10:00. The window-ending warning at 90% (40.5h): Tue 12-01 14:30.
    routed = local(2026, 11, 24, 10, 0)
    lead = route(ctx, clock, routed)
    assert lead.id is not None
    act(ctx, clock, routed + timedelta(minutes=5), lead.id, Action.LOG_CALL, "ana")
    assert get(ctx, lead.id).next_check_at == local(2026, 11, 25, 10, 0)

    assert sweep(ctx, now=local(2026, 11, 25, 9, 59, 59)).cadence_reminders == 0
    for at in (local(2026, 11, 25, 10, 0), local(2026, 11, 25, 10, 0), local(2026, 11, 25, 16, 0),
               local(2026, 11, 27, 10, 0)):
        sweep(ctx, now=at)
    reminders = dms(ctx, "cadence:")
    assert reminders == [("Ana Ruiz", reminders[0][1])] and "Attempt 2 of 6" in reminders[0][1]

    act(ctx, clock, local(2026, 11, 27, 10, 30), lead.id, Action.LOG_EMAIL, "ana")
    for at in (local(2026, 11, 27, 10, 31), local(2026, 11, 27, 10, 31), local(2026, 12, 1, 14, 29)):
        sweep(ctx, now=at)
    assert [text.split(" on ")[0] for _, text in dms(ctx, "cadence:")] == ["Attempt 2 of 6", "Attempt 3 of 6"]
    assert dms(ctx, "cadence_end:") == []

    for at in (local(2026, 12, 1, 14, 30), local(2026, 12, 1, 14, 30), local(2026, 12, 1, 17, 0)):
        sweep(ctx, now=at)
    warnings = dms(ctx, "cadence_end:")
    assert len(warnings) == 1 and "2 of 6 attempts so far" in warnings[0][1]
    assert get(ctx, lead.id).cadence_warned is True
    assert len(events(ctx, lead.id, "cadence_reminder")) == 2
    assert len(events(ctx, lead.id, "cadence_warning")) == 1


def test_no_cadence_reminders_once_the_cadence_is_met(ctx: Context, clock: FixedClock) -> None:
    routed = local(2026, 11, 24, 10, 0)
    lead = route(ctx, clock, routed)
    assert lead.id is not None
    for minutes in range(1, 7):
        act(ctx, clock, routed + timedelta(minutes=minutes), lead.id, Action.LOG_CALL, "ana")
    assert get(ctx, lead.id).next_check_at is None
    sweep(ctx, now=local(2026, 12, 4, 12, 0))
    assert dms(ctx) == []


# --- business hours ------------------------------------------------------------------------------


def test_a_step_due_at_the_close_waits_for_the_next_opening(ctx: Context, clock: FixedClock) -> None:
    # Standard lead routed Tue 17:00: the 50% step (1h) falls exactly at the 18:00 close.
    lead = route(ctx, clock, local(2026, 11, 24, 17, 0), lead_in("Late Lead", hot=False))
    assert lead.id is not None
    act(ctx, clock, local(2026, 11, 24, 17, 1), lead.id, Action.CLAIM, "ana")
    assert get(ctx, lead.id).next_check_at == local(2026, 11, 24, 18, 0)
    # The service was busy until 18:10: too late after the close; the nudge waits for Wed 09:00.
    report = sweep(ctx, now=local(2026, 11, 24, 18, 10))
    assert report.nudges == 0 and report.deferred == 1
    assert get(ctx, lead.id).next_check_at == local(2026, 11, 25, 9, 0)
    for at in (local(2026, 11, 24, 23, 0), local(2026, 11, 25, 3, 0), local(2026, 11, 25, 8, 59, 59)):
        assert sweep(ctx, now=at).nudges == 0
    assert dms(ctx) == []
    report = sweep(ctx, now=local(2026, 11, 25, 9, 0))
    assert report.nudges == 1 and len(dms(ctx, "nudge:")) == 1
    # The 100% step (2h of business time: 17:00-18:00 Tue, 09:00-10:00 Wed) is next.
    assert get(ctx, lead.id).next_check_at == local(2026, 11, 25, 10, 0)


def test_a_step_that_came_due_just_before_the_close_still_goes_out(ctx: Context, clock: FixedClock) -> None:
    lead = route(ctx, clock, local(2026, 11, 24, 17, 0), lead_in("Late Lead", hot=False))
    assert lead.id is not None
    act(ctx, clock, local(2026, 11, 24, 17, 1), lead.id, Action.CLAIM, "ana")
    # The tick after the close (within CLOSE_GRACE) still sends the 18:00 step, once.
    at = local(2026, 11, 24, 18, 0) + CLOSE_GRACE
    assert sweep(ctx, now=at).nudges == 1
    assert sweep(ctx, now=at).nudges == 0
    assert len(dms(ctx, "nudge:")) == 1


def test_outside_business_hours_steps_fire_at_night(db: Database, agreement: Agreement,
                                                    clock: FixedClock) -> None:
    nudges = [agreement.nudges[0].model_copy(update={"outside_business_hours": True}), *agreement.nudges[1:]]
    ctx = Context(db=db, agreement=with_nudges(agreement, nudges), clock=clock, platforms=("console",))
    lead = route(ctx, clock, local(2026, 11, 24, 17, 0), lead_in("Late Lead", hot=False))
    assert lead.id is not None
    act(ctx, clock, local(2026, 11, 24, 17, 1), lead.id, Action.CLAIM, "ana")
    report = sweep(ctx, now=local(2026, 11, 24, 22, 0))
    assert report.nudges == 1 and report.deferred == 0
    # The next step has no such flag; it is due Wed 10:00 in any case.
    assert get(ctx, lead.id).next_check_at == local(2026, 11, 25, 10, 0)


# --- replays, selection, speed -------------------------------------------------------------------


def test_a_replayed_sweep_sends_nothing_new(ctx: Context, clock: FixedClock) -> None:
    for i in range(5):
        route(ctx, clock, local(2026, 11, 24, 10, i), lead_in(f"Lead N{i}", hot=i % 2 == 0))
    instants = [local(2026, 11, 24, 10, 0) + timedelta(minutes=m) for m in range(0, 180, 3)]
    for at in instants:
        sweep(ctx, now=at)
    first = [(m.dedupe_key, m.target, m.payload) for m in outbox(ctx)]
    for at in instants:           # `slabot tick --now` replayed for every instant
        report = sweep(ctx, now=at)
        assert report.nudges == report.claim_timeouts == report.notifications == 0
    assert [(m.dedupe_key, m.target, m.payload) for m in outbox(ctx)] == first


def test_the_sweep_selects_due_leads_through_the_index(ctx: Context, clock: FixedClock) -> None:
    with ctx.db.read() as session:
        query = (select(Lead.id).where(col(Lead.is_open) == sa.true(), col(Lead.next_check_at) <= clock.now())
                 .order_by(col(Lead.next_check_at), col(Lead.id)).limit(1000))
        compiled = query.compile(session.get_bind())
        # The plan does not depend on the values: SQLite stores instants as naive UTC text.
        values = tuple({"next_check_at_1": "2026-11-24 15:00:00.000000"}.get(k, 1000)
                       for k in compiled.positiontup or [])
        plan = session.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled), values).all()
    detail = " ".join(str(row[-1]) for row in plan)
    assert "ix_lead_open_next_check" in detail and "SCAN lead" not in detail, detail


def test_a_sweep_over_many_open_leads_picks_only_the_due_ones(ctx: Context, clock: FixedClock,
                                                               agreement: Agreement) -> None:
    """Among 100,000 open leads the sweep handles exactly the 4 that are due, and a second sweep
    at the same instant none (its speed is measured by `python -m benchmarks sweep`)."""
    now = clock.now()
    stamp = "%Y-%m-%d %H:%M:%S.%f"          # how SQLite stores UTC instants (naive text)
    day_before, soon = (now - timedelta(days=1)).strftime(stamp), now.strftime(stamp)
    with ctx.db.write() as session:
        # 100,000 worked leads, generated inside SQLite; every 25,000th is due a minute ago.
        session.connection().exec_driver_sql(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 99999) "
            "INSERT INTO lead (agreement_version, name, payload, handed_off_at, workable, score, "
            "score_reasons, reasons, value, tier, state, is_open, version, team, owner, previous_owners, "
            "routed_at, owner_since, attempts, calls, emails, connects, first_touch_at, next_check_at, "
            "nudge_steps_done, cadence_reminded, cadence_warned, owner_seq) "
            "SELECT ?, 'L' || i, '{}', ?, 1, 30, '[]', '[]', 0, 'standard', 'working', 1, 1, 'smb', 'ana', "
            "'[]', ?, ?, 1, 1, 0, 0, ?, "
            "CASE WHEN i % 25000 = 0 THEN strftime('%Y-%m-%d %H:%M:%f000', ?, '-1 minutes') "
            "ELSE strftime('%Y-%m-%d %H:%M:%f000', ?, '+' || (i + 1) || ' minutes') END, "
            "0, 0, 0, 1 FROM n",
            (agreement.version, day_before, day_before, day_before, day_before, soon, soon))
    with ctx.db.read() as session:
        assert session.execute(sa.select(sa.func.count()).select_from(Lead)).scalar_one() == 100_000
        assert len(due_lead_ids(session, now=now, limit=1000)) == 4
    report = sweep(ctx, now=now)
    assert report.due == 4 and report.errors == []
    assert sweep(ctx, now=now).due == 0


# --- the whole tick, end to end ------------------------------------------------------------------


class RecordingTransport:
    """A console-like chat platform that records what it was asked to deliver."""

    platform = "console"

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []      # (kind, target, summary)
        self._next = 0

    def min_interval(self, kind: str) -> float:
        return 0.0

    async def post_card(self, channel: str, card: Card, *, outbox_id: int) -> Posted:
        self._next += 1
        self.sent.append(("post", channel, f"{card.title}: {card.owner.name if card.owner else None}"))
        return Posted(channel, f"m{self._next}")

    async def update_card(self, ref: Posted, card: Card) -> None:
        self.sent.append(("update", ref.channel, f"{card.title}: {card.owner.name if card.owner else None}"))

    async def find_posted(self, channel: str, *, outbox_id: int, since: datetime) -> Posted | None:
        return None

    async def send_message(self, kind: str, target: str, payload: dict[str, Any], *,
                           outbox_id: int) -> Posted | None:
        self.sent.append((kind, target, payload.get("title") or payload.get("text", "")))
        return None


@pytest.fixture
def console_services(db: Database, agreement: Agreement, clock: FixedClock) -> tuple[Services, RecordingTransport]:
    services = build_services(make_settings(database_url=db.url, console=True), clock=clock,
                              agreement=agreement, db=db)
    transport = RecordingTransport()
    services.transports["console"] = transport
    assert services.ctx.platforms == ("console",)
    return services, transport


async def test_tick_end_to_end_delivers_each_message_once(
        console_services: tuple[Services, RecordingTransport], clock: FixedClock) -> None:
    services, transport = console_services
    ctx = services.ctx
    # The service already ran on Friday morning (a first-ever start would not catch digests up).
    assert (await tick(services, now=local(2026, 11, 20, 8, 0))).delivered.sent == 0
    routed = local(2026, 11, 20, 17, 55)            # Friday evening
    lead = route(ctx, clock, routed)
    assert lead.id is not None

    report = await tick(services, now=routed)
    friday = "daily SLA digest, Fri Nov 20"
    assert sorted(transport.sent) == sorted([
        ("post", "#smb", "Hot Lead: Ana Ruiz"),
        # Friday's digests were due since 08:30 and 09:00 (the service was down): the first tick
        # afterwards, inside business hours, catches them up.
        ("digest", "Maya Lin", f"{ctx.agreement.name}: {friday}"),
        ("digest", "Sam Ortiz", f"{ctx.agreement.name}: {friday}"),
        ("digest", "#smb", f"SMB Inbound: {friday}"),
        ("digest", "#midmarket", f"Mid-Market: {friday}"),
    ])
    assert isinstance(report, TickReport) and report.delivered.sent == 5

    for at in (local(2026, 11, 21, 12, 0), local(2026, 11, 23, 8, 0)):   # Saturday, Monday early
        await tick(services, now=at)
    assert len(transport.sent) == 5

    half = local(2026, 11, 23, 9, 2, 30)
    report = await tick(services, now=half)
    got = transport.sent[5:]
    assert sorted(got) == sorted([
        ("dm", "Ana Ruiz", dms(ctx, "nudge:")[0][1]),
        ("digest", "Maya Lin", f"{ctx.agreement.name}: daily SLA digest, Mon Nov 23"),
        ("digest", "Sam Ortiz", f"{ctx.agreement.name}: daily SLA digest, Mon Nov 23"),
        ("digest", "#smb", "SMB Inbound: daily SLA digest, Mon Nov 23"),
        ("digest", "#midmarket", "Mid-Market: daily SLA digest, Mon Nov 23"),
    ])
    assert report.sweep.nudges == 1 and len(report.digests) == 4
    assert any("1 nudge step(s)" in line for line in report.lines())

    count = len(transport.sent)
    replay = await tick(services, now=half)          # `slabot tick --now` replayed
    assert len(transport.sent) == count
    assert replay.delivered.sent == 0 and replay.sweep.nudges == 0 and replay.digests == []

    report = await tick(services, now=local(2026, 11, 23, 9, 5))        # claim timeout: to ben
    assert sorted(transport.sent[count:]) == sorted([("update", "#smb", "Hot Lead: Ben Okafor"),
                                                     ("dm", "Ben Okafor", dms(ctx, "assigned:")[0][1])])
    assert dms(ctx, "assigned:")[0][1] == ("Hot Lead (Initech) is now yours: Ana Ruiz did not claim it "
                                           "within 10 min. First touch due Mon Nov 23, 09:20 EST.")
    assert report.sweep.claim_timeouts == 1
    with ctx.db.read() as session:
        pending = session.execute(select(OutboxMessage).where(col(OutboxMessage.status) != "done")).scalars().all()
    assert pending == []


def test_the_outbox_key_stops_a_second_message_even_if_a_counter_were_lost(ctx: Context,
                                                                           clock: FixedClock) -> None:
    """Defence in depth: were the step counter rolled back (a restored backup, a bug), the unique
    outbox key still keeps the DM from going out twice."""
    lead = route(ctx, clock, local(2026, 11, 24, 10, 0), lead_in("Std Lead", hot=False))
    assert lead.id is not None
    act(ctx, clock, local(2026, 11, 24, 10, 1), lead.id, Action.CLAIM, "ana")
    assert sweep(ctx, now=local(2026, 11, 24, 11, 0)).nudges == 1
    with ctx.db.write() as session:
        session.execute(sa.update(Lead).where(col(Lead.id) == lead.id)
                        .values(nudge_steps_done=0, next_check_at=local(2026, 11, 24, 11, 0)))
    assert sweep(ctx, now=local(2026, 11, 24, 11, 1)).nudges == 1
    assert len(dms(ctx, "nudge:")) == 1


# --- the scheduler -------------------------------------------------------------------------------


async def wait_for(predicate: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_the_scheduler_ticks_at_once_then_every_30_seconds(
        console_services: tuple[Services, RecordingTransport], clock: FixedClock) -> None:
    services, transport = console_services
    route(services.ctx, clock, local(2026, 11, 24, 8, 0))       # before the day's digests
    scheduler = start_scheduler(services)
    try:
        assert scheduler.running
        job = scheduler.get_job(TICK_JOB_ID)
        assert job.coalesce is True and job.max_instances == 1 and job.misfire_grace_time == 60
        assert job.trigger.interval == timedelta(seconds=30) and str(job.trigger.timezone) == "UTC"
        await wait_for(lambda: ("post", "#smb", "Hot Lead: Ana Ruiz") in transport.sent)
        await asyncio.sleep(0.2)            # let the tick finish its sweep
    finally:
        scheduler.shutdown(wait=False)


async def test_the_worker_runs_until_told_to_stop(console_services: tuple[Services, RecordingTransport],
                                                  clock: FixedClock) -> None:
    services, transport = console_services
    stop = asyncio.Event()
    running = asyncio.create_task(serve_worker(services, stop=stop, poll_seconds=0.05))
    await asyncio.sleep(0.1)
    route(services.ctx, clock, clock.now())
    await wait_for(lambda: any(kind == "post" for kind, _, _ in transport.sent))
    stop.set()                              # the first tick (digests included) is let finish
    await asyncio.wait_for(running, timeout=30)
    assert services.worker is not None
