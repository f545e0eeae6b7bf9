"""Lead actions against a real database (SQLite and PostgreSQL): authorization at click time,
compare-and-set, reassignment, cadence rules, restarts and races."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any

from sqlmodel import col, select

from commands.actions import ActionRequest, perform, record_outcome, set_away
from commands.context import Actor, Context, identify
from commands.intake import handoff
from sla.agreement import Agreement
from sla.clock import FixedClock
from sla.lead import LeadIn
from sla.lifecycle import Action, State
from storage.db import Database
from storage.tables import Lead, LeadEvent, OutboxMessage
from tests.conftest import EXAMPLE_LEAD


def new_lead(ctx: Context, **changes: Any) -> Lead:
    body = json.loads(EXAMPLE_LEAD.read_text())
    body.update(changes)
    return handoff(ctx, LeadIn.model_validate(body)).lead


def slack_actor(agreement: Agreement, user: str) -> Actor:
    return identify(agreement, platform="slack", user_id=user)


EVE, FAY, DIEGO, ANA = "U0EVE00001", "U0FAY00001", "U0DIEGO001", "U0ANA00001"


def make_ctx(db: Database, agreement: Agreement, clock: FixedClock) -> Context:
    return Context(db=db, agreement=agreement, clock=clock, platforms=("slack",))


def events(ctx: Context, lead_id: int) -> list[str]:
    with ctx.db.read() as s:
        return [e.type for e in s.execute(select(LeadEvent).where(col(LeadEvent.lead_id) == lead_id)
                                          .order_by(col(LeadEvent.id))).scalars()]


def test_owner_claims_calls_connects_and_qualifies(any_db: Database, agreement: Agreement,
                                                   clock: FixedClock) -> None:
    ctx = make_ctx(any_db, agreement, clock)
    lead = new_lead(ctx)
    assert lead.owner == "eve" and lead.id is not None
    eve = slack_actor(agreement, EVE)
    clock.advance(timedelta(minutes=3))
    out = perform(ctx, ActionRequest(lead_id=lead.id, action=Action.CLAIM, actor=eve, version=1))
    assert not out.refused and out.lead is not None and out.lead.state == State.CLAIMED
    clock.advance(timedelta(minutes=4))
    out = perform(ctx, ActionRequest(lead_id=lead.id, action=Action.LOG_CALL, actor=eve, version=2))
    assert out.text == "Logged a call on Jane Doe: attempt 1 of 6."
    assert out.lead is not None and out.lead.first_touch_met is True
    assert out.lead.speed_to_lead_min == 7.0
    out = perform(ctx, ActionRequest(lead_id=lead.id, action=Action.CONNECTED, actor=eve, version=3))
    assert out.lead is not None and (out.lead.attempts, out.lead.connects, out.lead.state) == (2, 1, "connected")
    out = perform(ctx, ActionRequest(lead_id=lead.id, action=Action.QUALIFY, actor=eve, version=4, amount=24000))
    assert out.lead is not None and out.lead.state == "qualified" and out.lead.opportunity_amount == 24000
    assert not out.lead.is_open
    assert events(ctx, lead.id) == ["received", "routed", "claimed", "log_call", "connected", "qualify"]
    with any_db.read() as s:
        cards = s.execute(select(OutboxMessage.dedupe_key).where(col(OutboxMessage.kind) == "card")
                          .order_by(col(OutboxMessage.id))).scalars().all()
    assert cards == [f"card:{lead.id}:slack:v{v}" for v in range(1, 6)]


def test_a_click_by_someone_else_changes_nothing(any_db: Database, agreement: Agreement,
                                                 clock: FixedClock) -> None:
    ctx = make_ctx(any_db, agreement, clock)
    lead = new_lead(ctx)
    assert lead.id is not None
    for user in (FAY, ANA, "U0STRANGER"):
        out = perform(ctx, ActionRequest(lead_id=lead.id, action=Action.CLAIM,
                                         actor=slack_actor(agreement, user), version=1))
        assert out.refused and "owner or the team's manager" in out.text
    with any_db.read() as s:
        stored = s.get(Lead, lead.id)
        assert stored is not None and stored.state == "routed" and stored.version == 1
    assert events(ctx, lead.id) == ["received", "routed"]


def test_stale_card_and_double_click_are_harmless(any_db: Database, agreement: Agreement,
                                                  clock: FixedClock) -> None:
    ctx = make_ctx(any_db, agreement, clock)
    lead = new_lead(ctx)
    assert lead.id is not None
    eve = slack_actor(agreement, EVE)
    first = perform(ctx, ActionRequest(lead_id=lead.id, action=Action.LOG_CALL, actor=eve, version=1))
    again = perform(ctx, ActionRequest(lead_id=lead.id, action=Action.LOG_CALL,
                                       actor=eve, version=1))  # same card twice
    assert not first.refused and again.refused and "out of date" in again.text
    assert again.lead is not None and again.lead.attempts == 1


def test_concurrent_clicks_record_one_claim(any_db: Database, agreement: Agreement, clock: FixedClock) -> None:
    ctx = make_ctx(any_db, agreement, clock)
    lead = new_lead(ctx)
    assert lead.id is not None
    lead_id = lead.id
    eve = slack_actor(agreement, EVE)
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def click() -> None:
        barrier.wait()
        results.append(perform(ctx, ActionRequest(lead_id=lead_id, action=Action.CLAIM, actor=eve, version=1)).refused)

    threads = [threading.Thread(target=click) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] + [True] * 7
    assert events(ctx, lead.id).count("claimed") == 1


def test_manager_reassigns_with_a_fresh_window_and_the_new_owner_is_told(
        any_db: Database, agreement: Agreement, clock: FixedClock) -> None:
    ctx = make_ctx(any_db, agreement, clock)
    lead = new_lead(ctx)
    assert lead.id is not None and lead.sla_due is not None
    clock.advance(timedelta(minutes=20))
    refused = perform(ctx, ActionRequest(lead_id=lead.id, action=Action.REASSIGN, actor=slack_actor(agreement, EVE),
                      version=1, to_rep="fay"))
    assert refused.refused and "manager" in refused.text
    out = perform(ctx, ActionRequest(lead_id=lead.id, action=Action.REASSIGN, actor=slack_actor(agreement, DIEGO),
                  version=1, to_rep="fay"))
    assert not out.refused and out.lead is not None
    assert out.lead.owner == "fay" and out.lead.previous_owners == ["eve"]
    assert out.lead.first_touch_due == clock.now() + timedelta(minutes=15)   # fresh window
    assert out.lead.sla_due == lead.sla_due                                   # the numbers keep the original
    with any_db.read() as s:
        dms = s.execute(select(OutboxMessage).where(col(OutboxMessage.kind) == "dm")).scalars().all()
    assert [(m.target, m.payload["text"].split(" is now")[0]) for m in dms] == [("U0FAY00001", "Jane Doe (Globex)")]
    wrong = perform(ctx, ActionRequest(lead_id=lead.id, action=Action.REASSIGN, actor=slack_actor(agreement, DIEGO),
                    version=2, to_rep="ana"))
    assert wrong.refused and "not a rep of Mid-Market" in wrong.text


def test_recycling_before_the_cadence_needs_a_manager(any_db: Database, agreement: Agreement,
                                                      clock: FixedClock) -> None:
    ctx = make_ctx(any_db, agreement, clock)
    lead = new_lead(ctx)
    assert lead.id is not None
    eve = slack_actor(agreement, EVE)
    perform(ctx, ActionRequest(lead_id=lead.id, action=Action.LOG_CALL, actor=eve, version=1))
    out = perform(ctx, ActionRequest(lead_id=lead.id, action=Action.RECYCLE, actor=eve, version=2))
    assert out.refused and "6 attempts" in out.text and "has 1" in out.text
    out = perform(ctx, ActionRequest(lead_id=lead.id, action=Action.RECYCLE,
                                     actor=slack_actor(agreement, DIEGO), version=2))
    assert not out.refused and out.lead is not None and out.lead.state == "recycled"


def test_disqualify_needs_an_agreed_reason(any_db: Database, agreement: Agreement, clock: FixedClock) -> None:
    ctx = make_ctx(any_db, agreement, clock)
    lead = new_lead(ctx)
    assert lead.id is not None
    eve = slack_actor(agreement, EVE)
    out = perform(ctx, ActionRequest(lead_id=lead.id, action=Action.DISQUALIFY, actor=eve, version=1, reason="meh"))
    assert out.refused and "no_budget" in out.text
    out = perform(ctx, ActionRequest(lead_id=lead.id, action=Action.DISQUALIFY,
                                     actor=eve, version=1, reason="competitor"))
    assert out.lead is not None and out.lead.state == "disqualified" and out.lead.disqualify_reason == "competitor"


def test_round_robin_position_and_dedupe_survive_a_restart(any_db: Database, agreement: Agreement,
                                                            clock: FixedClock) -> None:
    first = make_ctx(any_db, agreement, clock)
    assert [new_lead(first, external_id=f"r{i}", employees=20).owner for i in range(2)] == ["ana", "ben"]
    restarted = make_ctx(Database(any_db.url), agreement, clock)   # a new process: new engine, same data
    assert new_lead(restarted, external_id="r2", employees=20).owner == "cho"
    assert handoff(restarted, LeadIn(external_id="r0", email="x@y.example")).duplicate


def test_away_reps_get_no_leads(any_db: Database, agreement: Agreement, clock: FixedClock) -> None:
    ctx = make_ctx(any_db, agreement, clock)
    set_away(ctx, rep="ana", away=True)
    assert [new_lead(ctx, external_id=f"a{i}", employees=20).owner for i in range(3)] == ["ben", "cho", "ben"]
    set_away(ctx, rep="ana", away=False)
    assert new_lead(ctx, external_id="a3", employees=20).owner == "cho"


def test_same_external_id_racing_creates_one_lead(any_db: Database, agreement: Agreement,
                                                  clock: FixedClock) -> None:
    ctx = make_ctx(any_db, agreement, clock)
    barrier = threading.Barrier(6)
    duplicates: list[bool] = []

    def submit() -> None:
        barrier.wait()
        duplicates.append(handoff(ctx, LeadIn(external_id="race-1", email="r@x.example")).duplicate)

    threads = [threading.Thread(target=submit) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(duplicates) == [False] + [True] * 5
    with any_db.read() as s:
        assert len(s.execute(select(Lead)).scalars().all()) == 1


def test_crm_outcomes_are_idempotent(any_db: Database, agreement: Agreement, clock: FixedClock) -> None:
    ctx = make_ctx(any_db, agreement, clock)
    lead = new_lead(ctx)
    for _ in range(2):
        out = record_outcome(ctx, external_id="hubspot-contact-90210", type="opportunity_created",
                             amount=24000, at=None, crm_url=None)
        assert out is not None and out.state == "qualified"
    won = record_outcome(ctx, external_id="hubspot-contact-90210", type="won", amount=None, at=None, crm_url=None)
    assert won is not None and won.state == "won" and won.bookings == 24000
    assert lead.id is not None and events(ctx, lead.id).count("opportunity_created") == 1


def test_a_batch_of_handoffs_routes_and_dedupes_like_single_ones(any_db: Database, agreement: Agreement,
                                                                  clock: FixedClock) -> None:
    from commands.intake import Handoff, handoff_many

    ctx = make_ctx(any_db, agreement, clock)
    body = json.loads(EXAMPLE_LEAD.read_text())
    items = [Handoff(LeadIn.model_validate({**body, "external_id": f"b{i % 5}", "employees": 40}))
             for i in range(7)]                       # b0..b4, then b0 and b1 again
    results = handoff_many(ctx, items)
    assert [r.duplicate for r in results] == [False] * 5 + [True, True]
    assert [r.lead.owner for r in results] == ["ana", "ben", "cho", "ana", "ben", "ana", "ben"]
    assert results[5].lead.id == results[0].lead.id
    set_away(ctx, rep="cho", away=True)
    more = handoff_many(ctx, [Handoff(LeadIn.model_validate({**body, "external_id": f"c{i}", "employees": 40}))
                              for i in range(3)])
    assert [r.lead.owner for r in more] == ["ana", "ben", "ana"]   # the cursor and away status carry over
    with any_db.read() as s:
        assert len(s.execute(select(Lead)).scalars().all()) == 8
        assert len(s.execute(select(OutboxMessage)).scalars().all()) == 8


def test_concurrent_http_handoffs_are_all_stored_once(live: Any, services: Any) -> None:
    import asyncio

    import httpx

    from tests.conftest import INTAKE_TOKEN

    body = json.loads(EXAMPLE_LEAD.read_text())

    async def fire() -> list[int]:
        async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {INTAKE_TOKEN}"}) as http:
            responses = await asyncio.gather(*(
                http.post("/api/v1/leads", json={**body, "external_id": f"h{i % 40}", "employees": 40})
                for i in range(60)))
        return [r.status_code for r in responses]

    codes = asyncio.run(fire())
    assert sorted(codes) == [200] * 20 + [201] * 40
    with services.ctx.db.read() as s:
        owners = [lead.owner for lead in s.execute(select(Lead).order_by(col(Lead.id))).scalars()]
    assert len(owners) == 40 and owners[:6] == ["ana", "ben", "cho", "ana", "ben", "cho"]
