"""Issue 11 items 6 and 8 on a small hand-built month: capacity fill, the opportunity rate against the
target and the cold-call baseline, segments below the baseline, and whether the SLA pays (opportunity
rate and pipeline per lead by first touch met or missed, with 95% Wilson intervals), in the status,
the digest, `/sla status` and `slabot analyze --from-db`. Runs on SQLite and PostgreSQL.

The agreement is the example one (America/New_York; reps' weekly capacity 50+50+30+40+40 = 210;
opportunity rate target 0.10) with `cold_call_baseline_rate: 0.2` (high, so that a small segment can
be surely below it). November 2026 business hours are 14:00-23:00Z. T = Tue 11-24 15:00Z; its local
week starts Mon 11-23 05:00Z.

  id rep webinar/q4-webinar  routed      sla_due  first touch         opportunity
   1 ana                     11-02 15:00 17:00    11-02 15:30 met     11-05 for 10000
   2 ben                     11-03 15:00 17:00    11-03 15:10 met     11-06 for 6000
   3 eve                     11-09 15:00 17:00    11-09 16:00 met     -
   4 fay                     11-23 15:00 17:00    11-23 15:20 met     11-24 20:00 (after T) for 5000
   5 ana                     11-04 15:00 17:00    11-04 18:00 late    11-10 for 3000
   6 ben                     11-05 15:00 17:00    11-05 19:00 late    -
   7 cho                     11-12 15:00 17:00    none (breach)       -
   8 eve                     11-16 15:00 17:00    none (breach)       -
   9 fay                     11-23 16:00 18:00    11-23 20:00 late    -
  10 cho                     11-24 14:30 16:30    none, deadline ahead at T: not in the cohort
  11 ana  (routed LAST month) 10-28 14:00 16:00   10-28 14:30 met     11-03 for 50000: not this month's
  12-27  16 nurture leads ebook/sla-ebook handed off 11-10, no opportunity

By hand, as of T:
- Cohort: met 1-4 (4 leads, 2 opportunities by T: 1 and 2, pipeline 16000, 4000 per lead); missed
  5-9 (5 leads, 1 opportunity: 5, pipeline 3000, 600 per lead). Wilson 95% (z = 1.96, z^2 = 3.8416):
  2 of 4: centre (0.5 + 3.8416/8) / (1 + 3.8416/4) = 0.5, half 1.96 sqrt(0.25/4 + 3.8416/64) / 1.9604
  = 0.34996 -> [0.1500, 0.8500]; 1 of 5 -> [0.0362, 0.6245].
- Workable this month 1-10, opportunities by T 1, 2, 5: rate 0.3, 3 of 10 -> [0.1078, 0.6032]: above
  the 0.10 target (0.1078 > 0.10), too close to call against the 0.2 baseline.
- Capacity: routed this week 4, 9, 10 = 3 of 210 -> 0.0143.
- Segments: webinar/q4-webinar 10 leads, 3 opportunities (not below); ebook/sla-ebook 16 leads, 0
  opportunities: upper bound 3.8416 / (16 + 3.8416) = 0.1936 < 0.2 -> below the baseline.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from bot.cli_analyze import render_report
from commands import sla
from commands.analyze import Options, analyze_history
from commands.context import Context
from commands.digest import build_digest
from sla.agreement import Agreement, AgreementError, parse_agreement
from sla.clock import FixedClock
from storage import metrics
from storage.db import Database
from storage.history import history_batches
from storage.tables import Lead
from tests.conftest import EXAMPLE_AGREEMENT

T = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
TEAM = {"ana": "smb", "ben": "smb", "cho": "smb", "eve": "midmarket", "fay": "midmarket"}
TARGET_LINE = "  opportunity_rate_target: 0.10"


def with_baseline(line: str) -> str:
    text = EXAMPLE_AGREEMENT.read_text()
    start = text.index(TARGET_LINE)
    end = text.index("\n", start)
    return text[:end] + "\n" + line + text[end:]


@pytest.fixture
def agreement() -> Agreement:
    return parse_agreement(with_baseline("  cold_call_baseline_rate: 0.2"))


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def routed(id: int, owner: str, at: str, due: str, touch: str | None = None, opportunity: str | None = None,
           amount: float | None = None) -> Lead:
    met = None if touch is None else utc(touch) <= utc(due)
    return Lead(id=id, agreement_version="test", name=f"Lead {id}", source="webinar", offer="q4-webinar",
                handed_off_at=utc(at), received_at=utc(at), value=900.0, score=25, workable=True,
                tier="standard", team=TEAM[owner], owner=owner, routed_at=utc(at), owner_since=utc(at),
                sla_due=utc(due), first_touch_due=utc(due), state="working" if touch else "routed",
                is_open=True, first_touch_at=utc(touch) if touch else None, first_touch_met=met,
                attempts=1 if touch else 0, last_attempt_at=utc(touch) if touch else None,
                opportunity_at=utc(opportunity) if opportunity else None, opportunity_amount=amount)


def make_leads() -> list[Lead]:
    leads = [
        routed(1, "ana", "2026-11-02T15:00", "2026-11-02T17:00", "2026-11-02T15:30", "2026-11-05T16:00", 10000),
        routed(2, "ben", "2026-11-03T15:00", "2026-11-03T17:00", "2026-11-03T15:10", "2026-11-06T16:00", 6000),
        routed(3, "eve", "2026-11-09T15:00", "2026-11-09T17:00", "2026-11-09T16:00"),
        routed(4, "fay", "2026-11-23T15:00", "2026-11-23T17:00", "2026-11-23T15:20", "2026-11-24T20:00", 5000),
        routed(5, "ana", "2026-11-04T15:00", "2026-11-04T17:00", "2026-11-04T18:00", "2026-11-10T16:00", 3000),
        routed(6, "ben", "2026-11-05T15:00", "2026-11-05T17:00", "2026-11-05T19:00"),
        routed(7, "cho", "2026-11-12T15:00", "2026-11-12T17:00"),
        routed(8, "eve", "2026-11-16T15:00", "2026-11-16T17:00"),
        routed(9, "fay", "2026-11-23T16:00", "2026-11-23T18:00", "2026-11-23T20:00"),
        routed(10, "cho", "2026-11-24T14:30", "2026-11-24T16:30"),
        routed(11, "ana", "2026-10-28T14:00", "2026-10-28T16:00", "2026-10-28T14:30", "2026-11-03T16:00", 50000),
    ]
    for i in range(16):
        at = utc(f"2026-11-10T15:{i:02d}")
        leads.append(Lead(id=12 + i, agreement_version="test", name=f"Lead {12 + i}", source="ebook",
                          offer="sla-ebook", handed_off_at=at, received_at=at, value=300.0, score=0,
                          workable=False, state="nurture"))
    return leads


@pytest.fixture
def month(any_db: Database) -> Database:
    with any_db.write() as session:
        session.add_all(make_leads())
    return any_db


def status_of(db: Database, agreement: Agreement, scope: str = "all") -> metrics.Status:
    with db.read() as session:
        return metrics.status(session, agreement=agreement, calendar=agreement.calendar(), as_of=T, scope=scope)


# --- the agreement ------------------------------------------------------------------------------


def test_cold_call_baseline_is_optional_and_a_fraction() -> None:
    assert parse_agreement(EXAMPLE_AGREEMENT.read_text()).marketing.cold_call_baseline_rate is None
    assert parse_agreement(with_baseline("  cold_call_baseline_rate: 0.01")).marketing.cold_call_baseline_rate == 0.01
    for bad in ("1.5", "-0.1"):
        with pytest.raises(AgreementError, match="cold_call_baseline_rate"):
            parse_agreement(with_baseline(f"  cold_call_baseline_rate: {bad}"))


# --- the status ---------------------------------------------------------------------------------


def test_first_touch_split_counts_intervals_and_pipeline(month: Database, agreement: Agreement) -> None:
    data = status_of(month, agreement).model_dump(mode="json")
    loop = data["closed_loop"]
    assert loop["first_touch"] == {
        "met": {"leads": 4, "opportunities": 2, "opportunity_rate": 0.5, "interval": [0.15, 0.85],
                "pipeline": 16000.0, "pipeline_per_lead": 4000.0},
        "missed": {"leads": 5, "opportunities": 1, "opportunity_rate": 0.2, "interval": [0.0362, 0.6245],
                   "pipeline": 3000.0, "pipeline_per_lead": 600.0},
    }
    # The same cohort as the older keys.
    assert (loop["first_touch_met_leads"], loop["first_touch_missed_leads"]) == (4, 5)
    assert data["sales"]["opportunity_rate_first_touch_met"] == 0.5


def test_rate_against_target_and_baseline(month: Database, agreement: Agreement) -> None:
    sales = status_of(month, agreement).model_dump(mode="json")["sales"]
    assert (sales["opportunities"], sales["opportunity_rate"]) == (3, 0.3)
    assert sales["opportunity_rate_interval"] == [0.1078, 0.6032]
    assert sales["cold_call_baseline_rate"] == 0.2
    assert sales["opportunity_rate_vs_target"] == "above"        # 0.1078 > 0.10
    assert sales["opportunity_rate_vs_baseline"] == "unclear"    # 0.1078 <= 0.2 <= 0.6032
    # Without a baseline: nothing to compare with, and no segment is judged.
    plain = status_of(month, parse_agreement(EXAMPLE_AGREEMENT.read_text()))
    assert plain.sales.opportunity_rate_vs_baseline is None and plain.sales.cold_call_baseline_rate is None
    assert plain.closed_loop.below_baseline == []


def test_capacity_fill_and_segments_below_the_baseline(month: Database, agreement: Agreement) -> None:
    data = status_of(month, agreement).model_dump(mode="json")
    capacity = data["capacity"]
    assert (capacity["delivered"], capacity["capacity"], capacity["utilization"]) == (3, 210, 0.0143)
    assert data["closed_loop"]["cold_call_baseline_rate"] == 0.2
    assert data["closed_loop"]["below_baseline"] == [
        {"source": "ebook", "offer": "sla-ebook", "leads": 16, "opportunities": 0, "opportunity_rate": 0.0,
         "interval": [0.0, 0.1936]},
    ]


def test_team_scope_splits_only_the_teams_leads(month: Database, agreement: Agreement) -> None:
    # smb: met 1, 2 (both opportunities); missed 5 (opportunity), 6, 7.
    split = status_of(month, agreement, "team:smb").closed_loop.first_touch
    assert split is not None
    assert (split.met.leads, split.met.opportunities, split.met.pipeline) == (2, 2, 16000.0)
    assert (split.missed.leads, split.missed.opportunities, split.missed.pipeline_per_lead) == (3, 1, 1000.0)
    assert split.met.interval == [0.3424, 1.0]       # 2 of 2: low 2 / (2 + 3.8416) = 0.3424


def test_pipeline_query_stays_on_the_months_opportunities(tmp_path: Path, agreement: Agreement) -> None:
    """The cohort's covering indexes have no amounts: the pipeline split reads the month's
    opportunities through `ix_lead_opportunity_at`, a range of `opportunity_at`, and that index holds
    every column it filters on (migration 0008), so no lead row is read."""
    db = Database(f"sqlite:///{tmp_path / 'plan.db'}")
    db.upgrade()
    statements: list[tuple[str, Any]] = []

    @event.listens_for(db.read_engine, "before_cursor_execute")
    def _record(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        statements.append((statement, params))

    for scope in ("all", "team:smb", "rep:ana"):
        status_of(db, agreement, scope)
    db.dispose()
    pipeline = [(sql, params) for sql, params in statements
                if "opportunity_amount" in sql and "first_touch_met" in sql]
    assert len(pipeline) == 3
    with sqlite3.connect(tmp_path / "plan.db") as connection:
        for sql, params in pipeline:
            plan = [row[3] for row in connection.execute("EXPLAIN QUERY PLAN " + sql, params)]
            assert plan == ["SEARCH lead USING COVERING INDEX ix_lead_opportunity_at "
                            "(opportunity_at>? AND opportunity_at<?)"], plan


# --- in words ----------------------------------------------------------------------------------

PAYS = ("Leads touched within the SLA became opportunities 50% of the time (15–85%; only 4 leads), "
        "missed ones 20% (4–62%; only 5 leads); pipeline per lead $4,000 against $600")
AGAINST = "Opportunity rate 30% (11–60%): above the 10% target and too close to call against cold calling's 20%"
FILL = "Marketing's share of Sales' time: 3 workable leads this week fill 1% of the reps' weekly capacity of 210"
BELOW = "Below cold calling's 20%: Ebook / Sla-ebook (0 of 16 leads, at most 19.4%)"


def test_digest_says_it_in_plain_words(month: Database, agreement: Agreement) -> None:
    ctx = Context(db=month, agreement=agreement, clock=FixedClock(T), platforms=("console",))
    sections = dict(build_digest(ctx, as_of=T).sections)
    assert FILL in sections["Marketing: leads delivered"]
    assert BELOW in sections["Marketing: leads delivered"]
    assert AGAINST in sections["Sales: every lead worked"]
    assert PAYS in sections["Sales: every lead worked"]


def test_sla_status_says_it_in_plain_words(month: Database, agreement: Agreement) -> None:
    ctx = Context(db=month, agreement=agreement, clock=FixedClock(T), platforms=("console",))
    lines = sla.status_reply(ctx, scope="all", label="everyone").lines
    for sentence in (AGAINST, PAYS, FILL, BELOW):
        assert f"{sentence}." in lines
    text = "\n".join(lines)
    for raw in ("first_touch", "baseline_rate", "utilization", "sla-ebook", "unclear"):
        assert raw not in text


# --- slabot analyze --from-db -------------------------------------------------------------------


def test_analyze_from_db_splits_by_first_touch(month: Database, agreement: Agreement) -> None:
    # Every lead: met 1-4 and last month's 11 (opportunities 1, 2, 4, 11: outcomes to date; pipeline
    # 10000 + 6000 + 5000 + 50000 = 71000); missed 5-9 (7 and 8 untouched past their deadline before
    # T); 10 is still within its deadline; the nurture leads were never Sales'.
    report = analyze_history(history_batches(month, batch=4, as_of=T), Options(min_leads=1),
                             agreement.calendar()).to_json()
    assert report["first_touch"] == {
        "met": {"leads": 5, "opportunities": 4, "opportunity_rate": 0.8,
                "interval": [pytest.approx(0.37553, abs=1e-5), pytest.approx(0.96378, abs=1e-5)],
                "pipeline": 71000.0, "pipeline_per_lead": 14200.0},
        "missed": {"leads": 5, "opportunities": 1, "opportunity_rate": 0.2,
                   "interval": [pytest.approx(0.03622, abs=1e-5), pytest.approx(0.62447, abs=1e-5)],
                   "pipeline": 3000.0, "pipeline_per_lead": 600.0},
    }
    # November only (local dates): last month's lead 11 drops out.
    november = analyze_history(history_batches(month, start=utc("2026-11-01T04:00"), as_of=T),
                               Options(min_leads=1), agreement.calendar()).to_json()["first_touch"]
    assert (november["met"]["leads"], november["met"]["opportunities"], november["met"]["pipeline"]) == (4, 3, 21000.0)
    lines = render_report(report)
    assert "Does the SLA pay (first touch within the SLA or not):" in lines
    assert ("  Touched within the SLA: 5 leads, 4 became opportunities (80.0%, 95% interval 37.6% to 96.4%), "
            "pipeline per lead 14,200 (fewer than 30 leads: read the interval, not the rate)") in lines
    assert ("  Missed the SLA: 5 leads, 1 became opportunities (20.0%, 95% interval 3.6% to 62.4%), "
            "pipeline per lead 600 (fewer than 30 leads: read the interval, not the rate)") in lines
