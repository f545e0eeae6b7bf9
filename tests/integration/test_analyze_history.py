"""`slabot analyze --from-db` and the planner's rates from history, on a real database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from commands.actions import record_outcome
from commands.analyze import Options, analyze_history
from commands.context import Context
from commands.intake import Handoff, handoff_many
from sla.agreement import Agreement
from sla.clock import FixedClock
from sla.lead import LeadIn
from storage.db import Database
from storage.history import history_batches, outcome_totals
from tests.conftest import EXAMPLE_AGREEMENT

OCTOBER = datetime(2026, 10, 14, 15, 0, tzinfo=UTC)
NOVEMBER = datetime(2026, 11, 18, 15, 0, tzinfo=UTC)
WORKABLE = {"employees": 50, "stage": "solution_research", "activities": [{"type": "demo_requested"}],
            "bant": {"need": "yes", "budget": "yes"}}
NURTURE = {**WORKABLE, "activities": [{"type": "ebook_downloaded"}]}   # score 5 < 20


def hand_off(ctx: Context, clock: FixedClock, at: datetime, leads: list[dict[str, Any]]) -> None:
    clock.set(at)
    handoff_many(ctx, [Handoff(LeadIn.model_validate(body), actor="test") for body in leads])


def outcome(ctx: Context, external_id: str, type: str, amount: float | None = None) -> None:
    assert record_outcome(ctx, external_id=external_id, type=type, amount=amount, at=None, crm_url=None)


@pytest.fixture
def history(db: Database, agreement: Agreement, clock: FixedClock) -> Context:
    ctx = Context(db=db, agreement=agreement, clock=clock, platforms=("console",))
    hand_off(ctx, clock, OCTOBER, [
        {"external_id": "o1", "source": "Webinar", **WORKABLE},
        {"external_id": "o2", "source": " webinar", **WORKABLE},
        {"external_id": "o3", "source": "Ebook", **NURTURE},
    ])
    hand_off(ctx, clock, NOVEMBER, [
        {"external_id": "n1", "source": "WEBINAR", **WORKABLE},
        {"external_id": "n2", "source": "ebook", **NURTURE},
        {"external_id": "n3", **WORKABLE},                       # no source: the blank segment
    ])
    outcome(ctx, "o1", "opportunity_created")
    outcome(ctx, "o2", "won", 24000)
    outcome(ctx, "n2", "opportunity_created")
    return ctx


def test_segments_from_slabots_own_leads_and_outcomes(history: Context, db: Database,
                                                      agreement: Agreement) -> None:
    report = analyze_history(history_batches(db, batch=2), Options(min_leads=1), agreement.calendar())
    data = report.to_json()
    assert (data["rows"], data["leads"], data["opportunities"], data["won"], data["bookings"]) == (6, 6, 3, 1, 24000)
    segments = {s["key"]["source"]: s for s in data["segments"]}
    assert set(segments) == {"webinar", "ebook", None}
    webinar = segments["webinar"]
    assert (webinar["leads"], webinar["opportunities"], webinar["won"], webinar["bookings"]) == (3, 2, 1, 24000)
    assert webinar["value_per_lead"] == 8000
    assert (segments["ebook"]["leads"], segments["ebook"]["opportunities"]) == (2, 1)
    assert data["thresholds"] == [] and data["backtest"] is None


def test_since_and_until_are_local_dates(history: Context, db: Database, agreement: Agreement) -> None:
    calendar = agreement.calendar()
    start = calendar.day_bounds(date(2026, 11, 1))[0]
    november = analyze_history(history_batches(db, start=start), Options(min_leads=1), calendar).to_json()
    assert november["leads"] == 3 and november["opportunities"] == 1
    end = calendar.day_bounds(date(2026, 10, 14))[1]
    october = analyze_history(history_batches(db, end=end), Options(min_leads=1), calendar).to_json()
    assert october["leads"] == 3 and october["won"] == 1


def test_rescoring_stored_leads_with_an_agreement(history: Context, db: Database, agreement: Agreement) -> None:
    options = Options(min_leads=1, agreement=agreement, target_rate=0.5)
    data = analyze_history(history_batches(db, with_payload=True), options, agreement.calendar()).to_json()
    # scores: the four demo requests 30, the two e-books 5; opportunities o1, o2 (30) and n2 (5)
    assert [(t["score"], t["leads"], t["opportunity_rate"]) for t in data["thresholds"]] == [
        (5, 6, 0.5), (30, 4, 0.5)]
    assert data["suggested_threshold"] == 5
    months = {m["month"]: m for m in data["backtest"]["months"]}
    assert months["2026-10"]["workable"]["leads"] == 2 and months["2026-10"]["nurture"]["leads"] == 1
    assert months["2026-11"]["workable"]["leads"] == 2 and months["2026-11"]["nurture"]["opportunities"] == 1


def test_outcome_totals(history: Context, db: Database) -> None:
    totals = outcome_totals(db)
    assert (totals.workable, totals.workable_opportunities, totals.opportunities, totals.won) == (4, 2, 3, 1)


def slabot(cwd: Path, db: Database, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "DATABASE_URL": db.url, "SLABOT_AGREEMENT": str(EXAMPLE_AGREEMENT)}
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], capture_output=True, text=True,
                          env=environment, timeout=120, cwd=cwd)


def test_cli_from_db(history: Context, db: Database, tmp_path: Path) -> None:
    result = slabot(tmp_path, db, "analyze", "--from-db", "--since", "2026-11-01", "--min-leads", "1", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["leads"] == 3 and {s["key"]["source"] for s in data["segments"]} == {"webinar", "ebook", None}
    bad = slabot(tmp_path, db, "analyze", "--from-db", "--since", "November")
    assert bad.returncode == 2 and "'November' is not a date" in bad.stderr
    # plan: two outcomes are not history enough for a win rate
    plan = slabot(tmp_path, db, "plan", "--bookings", "100000", "--deal-size", "1000", "--opportunity-rate", "0.1")
    assert plan.returncode == 2 and "supply --win-rate R" in plan.stderr and "history is not enough" in plan.stderr


def test_plan_takes_missing_rates_from_history(db: Database, agreement: Agreement, clock: FixedClock,
                                               tmp_path: Path) -> None:
    ctx = Context(db=db, agreement=agreement, clock=clock, platforms=("console",))
    hand_off(ctx, clock, NOVEMBER, [{"external_id": f"w{i}", "source": "webinar", **WORKABLE} for i in range(40)])
    for i in range(32):
        outcome(ctx, f"w{i}", "opportunity_created")
    for i in range(8):
        outcome(ctx, f"w{i}", "won", 5000)
    # win rate 8 / 32 = 0.25, opportunity rate 32 / 40 = 0.8: 120,000 a year at 5,000 = 24 deals,
    # 96 opportunities, 120 workable leads, 10 a month, 5 per rep of 2
    result = slabot(tmp_path, db, "plan", "--bookings", "120000", "--deal-size", "5000", "--reps", "2", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["win_rate"] == 0.25 and data["opportunity_rate"] == 0.8
    assert data["workable_leads"] == pytest.approx(120) and data["per_rep_per_month"]["workable_leads"] == 5
    assert any("8 won of 32 opportunities" in note for note in data["notes"])
    # a rate given on the command line wins over history
    given = slabot(tmp_path, db, "plan", "--bookings", "120000", "--deal-size", "5000", "--win-rate", "0.5",
                   "--json")
    assert json.loads(given.stdout)["win_rate"] == 0.5
