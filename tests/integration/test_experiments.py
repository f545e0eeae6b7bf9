"""Experiments against a real database (SQLite and PostgreSQL): nurture leads routed to Sales up to the
limit, within the dates, tagged in the data; counted exactly under concurrent intake; reported in the
status JSON, the digest and `slabot analyze --from-db`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from commands.actions import record_outcome
from commands.context import Context
from commands.digest import build_digest
from commands.intake import Handoff, handoff_many
from sla.agreement import Agreement, parse_agreement
from sla.clock import FixedClock
from sla.lead import LeadIn
from sla.lifecycle import State
from storage.db import Database
from storage.metrics import status
from storage.tables import ExperimentCount, Lead, LeadEvent, OutboxMessage
from tests.conftest import EXAMPLE_AGREEMENT, T0

TRIAL = """
experiments:
  - key: justify-ebook
    name: Justify-the-purchase e-book
    when: {offer: justify_purchase_ebook}
    limit: 3
    start: 2026-11-23
    end: 2026-11-30
"""
#: Not workable: an SMB lead whose only activity scores 5, below the threshold of 20.
EBOOK = {"employees": 50, "stage": "solution_research", "offer": "justify-purchase-ebook",
         "activities": [{"type": "ebook_downloaded"}], "bant": {"need": "yes", "budget": "yes"}}
WORKABLE = {**EBOOK, "offer": "product_demo", "activities": [{"type": "demo_requested"}]}


def trial_agreement(text: str = TRIAL) -> Agreement:
    return parse_agreement(EXAMPLE_AGREEMENT.read_text(encoding="utf-8") + text)


@pytest.fixture
def trial_ctx(any_db: Database, clock: FixedClock) -> Context:
    return Context(db=any_db, agreement=trial_agreement(), clock=clock, platforms=("slack",))


def hand_off(ctx: Context, bodies: list[dict[str, Any]]) -> list[Lead]:
    return [r.lead for r in handoff_many(ctx, [Handoff(LeadIn.model_validate(b), actor="test") for b in bodies])]


def test_nurture_leads_go_to_sales_up_to_the_limit_and_not_past_it(trial_ctx: Context) -> None:
    leads = hand_off(trial_ctx, [{**EBOOK, "external_id": f"e{i}"} for i in range(5)])
    sent, kept = leads[:3], leads[3:]
    for lead in sent:
        assert lead.experiment == "justify-ebook" and not lead.workable
        assert lead.state == State.ROUTED and lead.team == "smb" and lead.owner is not None
        assert lead.tier == "standard" and lead.first_touch_due is not None and lead.is_open
    assert len({lead.owner for lead in sent}) == 3              # round robin as for any lead
    for lead in kept:
        assert lead.experiment is None and lead.state == State.NURTURE and lead.owner is None
    # a later batch finds the experiment full
    (late,) = hand_off(trial_ctx, [{**EBOOK, "external_id": "late"}])
    assert late.experiment is None and late.state == State.NURTURE
    with trial_ctx.db.read() as session:
        cards = session.execute(select(OutboxMessage.lead_id).where(col(OutboxMessage.kind) == "card")).scalars()
        assert Counter(cards) == Counter(lead.id for lead in sent)   # a card for each, in the team channel
        kinds = session.execute(select(LeadEvent.type).where(col(LeadEvent.lead_id) == sent[0].id)).scalars()
        assert "experiment" in list(kinds)
        count = session.get(ExperimentCount, "justify-ebook")
        assert count is not None and count.taken == 3


def test_workable_other_and_excluded_leads_are_untouched(trial_ctx: Context) -> None:
    workable, other, bought = hand_off(trial_ctx, [
        {**WORKABLE, "external_id": "w"},
        {**EBOOK, "external_id": "o", "offer": "whitepaper"},
        {**EBOOK, "external_id": "b", "source": "list_purchase"},    # a purchased list: never sent
    ])
    assert workable.workable and workable.experiment is None and workable.state == State.ROUTED
    assert other.experiment is None and other.state == State.NURTURE
    assert bought.experiment is None and bought.state == State.NURTURE
    with trial_ctx.db.read() as session:
        assert session.get(ExperimentCount, "justify-ebook") is None or \
            session.get(ExperimentCount, "justify-ebook").taken == 0  # type: ignore[union-attr]


def test_the_dates_are_local_days_both_included(trial_ctx: Context, clock: FixedClock) -> None:
    # 2026-11-23 00:30 in New York is 05:30 UTC: the first day; 2026-11-22 23:30 local is not yet
    clock.set(datetime(2026, 11, 23, 4, 30, tzinfo=UTC))
    (before,) = hand_off(trial_ctx, [{**EBOOK, "external_id": "before"}])
    clock.set(datetime(2026, 11, 23, 5, 30, tzinfo=UTC))
    (first,) = hand_off(trial_ctx, [{**EBOOK, "external_id": "first"}])
    clock.set(datetime(2026, 12, 1, 4, 30, tzinfo=UTC))           # Nov 30, 23:30 local: the last day
    (last,) = hand_off(trial_ctx, [{**EBOOK, "external_id": "last"}])
    clock.set(datetime(2026, 12, 1, 5, 30, tzinfo=UTC))           # Dec 1, 00:30 local: over
    (after,) = hand_off(trial_ctx, [{**EBOOK, "external_id": "after"}])
    assert [lead.experiment for lead in (before, first, last, after)] == [None, "justify-ebook", "justify-ebook",
                                                                          None]


def test_two_concurrent_batches_never_pass_the_limit(trial_ctx: Context) -> None:
    """Two intake transactions at once (two web processes): the conditional UPDATE on the counter
    row lets exactly `limit` leads in, whichever commits first."""
    barrier = threading.Barrier(2)
    results: dict[int, list[Lead]] = {}
    errors: list[BaseException] = []

    def batch(n: int) -> None:
        bodies = [{**EBOOK, "external_id": f"b{n}-{i}", "employees": 50 + i} for i in range(4)]
        try:
            barrier.wait(timeout=10)
            results[n] = hand_off(trial_ctx, bodies)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=batch, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert sum(len(r) for r in results.values()) == 8
    with trial_ctx.db.read() as session:
        tagged = session.execute(select(Lead).where(col(Lead.experiment) == "justify-ebook")).scalars().all()
        nurture = session.execute(select(Lead).where(col(Lead.state) == State.NURTURE)).scalars().all()
        count = session.get(ExperimentCount, "justify-ebook")
    assert len(tagged) == 3 and len(nurture) == 5
    assert all(lead.owner is not None for lead in tagged)
    assert count is not None and count.taken == 3


def test_status_reports_each_experiment_with_its_verdict(trial_ctx: Context, clock: FixedClock) -> None:
    agreement = trial_agreement(TRIAL.replace("limit: 3", "limit: 100") + """
  - key: later
    when: {offer: webinar_replay}
    limit: 10
    start: 2026-12-01
    end: 2026-12-31
""")
    ctx = Context(db=trial_ctx.db, agreement=agreement, clock=clock, platforms=("slack",))
    hand_off(ctx, [{**EBOOK, "external_id": f"e{i}"} for i in range(40)])
    for i in range(20):
        assert record_outcome(ctx, external_id=f"e{i}", type="opportunity_created", amount=None, at=None,
                              crm_url=None)
    with ctx.db.read() as session:
        data = status(session, agreement=agreement, calendar=ctx.calendar,
                      as_of=T0 + timedelta(hours=1)).model_dump(mode="json")
        before = status(session, agreement=agreement, calendar=ctx.calendar,
                        as_of=T0 - timedelta(hours=1)).model_dump(mode="json")
        team = status(session, agreement=agreement, calendar=ctx.calendar, as_of=T0 + timedelta(hours=1),
                      scope="team:midmarket").model_dump(mode="json")
    trial, later = data["experiments"]
    assert trial["key"] == "justify-ebook" and trial["name"] == "Justify-the-purchase e-book"
    assert (trial["leads"], trial["opportunities"], trial["opportunity_rate"]) == (40, 20, 0.5)
    assert trial["interval"] == pytest.approx([0.3520, 0.6480], abs=1e-4)
    assert trial["target"] == 0.1 and trial["verdict"] == "above" and trial["phase"] == "running"
    assert (trial["limit"], trial["start"], trial["end"]) == (100, "2026-11-23", "2026-11-30")
    assert later["phase"] == "not_started" and later["leads"] == 0 and later["verdict"] == "too_early"
    assert later["name"] == "later" and later["interval"] is None
    assert before["experiments"][0]["leads"] == 0                 # as of before the hand-off
    assert team["experiments"][0]["leads"] == 0                   # every lead went to SMB
    # workable numbers leave experiment leads out: they are not what Marketing owes
    assert data["marketing"]["workable"] == 0


def test_digest_says_how_each_experiment_is_doing(trial_ctx: Context) -> None:
    hand_off(trial_ctx, [{**EBOOK, "external_id": f"e{i}"} for i in range(2)])
    digest = build_digest(trial_ctx, as_of=T0 + timedelta(hours=1))
    (lines,) = [body for heading, body in digest.sections if heading.startswith("Experiments")]
    assert lines == ["Justify-the-purchase e-book (runs until 2026-11-30): 2 of up to 3 leads sent to Sales, "
                     "0 became opportunities: 0% (95% interval 0% to 65.8%). Too early to judge against the "
                     "10% target."]
    plain = Context(db=trial_ctx.db, agreement=trial_agreement(""), clock=trial_ctx.clock, platforms=("slack",))
    assert not [h for h, _ in build_digest(plain, as_of=T0).sections if h.startswith("Experiments")]


def test_analyze_from_db_reports_experiments(db: Database, clock: FixedClock, tmp_path: Path) -> None:
    agreement_file = tmp_path / "agreement.yaml"
    agreement_file.write_text(EXAMPLE_AGREEMENT.read_text(encoding="utf-8") + TRIAL, encoding="utf-8")
    ctx = Context(db=db, agreement=trial_agreement(), clock=clock, platforms=("slack",))
    hand_off(ctx, [{**EBOOK, "external_id": f"e{i}"} for i in range(3)])
    assert record_outcome(ctx, external_id="e0", type="won", amount=900, at=None, crm_url=None)
    environment = {**os.environ, "DATABASE_URL": db.url, "SLABOT_AGREEMENT": str(agreement_file)}

    def slabot(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "bot.cli", "analyze", "--from-db", *args], capture_output=True,
                              text=True, env=environment, timeout=120, cwd=tmp_path)

    shown = slabot("--until", "2026-11-30")
    assert shown.returncode == 0, shown.stderr
    assert "Experiments (leads the agreement keeps in nurture, sent to Sales as a trial):" in shown.stdout
    # as of the end of the window (Nov 30 was its last day): the experiment has ended
    assert ("Justify-the-purchase e-book (ended 2026-11-30): 3 of up to 3 leads sent to Sales, 1 became "
            "opportunities: 33.3% (95% interval 6.1% to 79.2%). Too early to judge against the 10% target."
            in shown.stdout)
    data = json.loads(slabot("--until", "2026-11-25", "--json").stdout)
    (trial,) = data["experiments"]
    assert (trial["leads"], trial["opportunities"], trial["verdict"], trial["phase"]) == (3, 1, "too_early",
                                                                                        "running")


def test_an_experiment_lead_routed_without_a_platform_gets_its_card_late(db: Database, clock: FixedClock) -> None:
    """As for a workable lead: routed while no chat platform is on, its card is posted once one is,
    and its owner gets a fresh first-touch window instead of an escalation for a window never seen."""
    from commands.sweep import sweep

    off = Context(db=db, agreement=trial_agreement(), clock=clock, platforms=())
    (lead,) = hand_off(off, [{**EBOOK, "external_id": "dark"}])
    assert lead.experiment == "justify-ebook" and lead.owner is not None
    on = Context(db=db, agreement=trial_agreement(), clock=clock, platforms=("console",))
    turned_on = T0 + timedelta(days=1)
    report = sweep(on, now=turned_on)
    assert (report.shown_late, report.reassigned, report.nudges) == (1, 0, 0)
    with db.read() as session:
        stored = session.get(Lead, lead.id)
        cards = session.execute(select(OutboxMessage).where(col(OutboxMessage.kind) == "card")).scalars().all()
    assert stored is not None and stored.owner == lead.owner and stored.owner_since == turned_on
    assert [(c.lead_id, c.platform) for c in cards] == [(lead.id, "console")]
