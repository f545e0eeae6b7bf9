"""The overview's change from the previous period (commands/changes.py): which instant the previous
period is, and each figure's change worked out by hand from two months of leads.

The example agreement's calendar: America/New_York, Mon-Fri 09:00-18:00, US holidays. November 2026
has 19 business days (Veterans Day 11-11 and Thanksgiving 11-26 off): 10,260 business minutes.
October 2026 has 21 (22 weekdays, Columbus Day 10-12 off): 11,340. At T0, Tuesday 11-24 10:00 EST,
15 business days and 60 minutes of November have passed: 8,160 / 10,260 of its business time. The
same share of October is 9,018.9 minutes: 16 business days (to Friday 10-23) and 378.9 minutes of
the 17th, Monday 10-26: 15:18:56 EDT (19:18:56Z).

Leads (UTC; October is EDT, business hours 13:00-22:00Z; November EST, 14:00-23:00Z):

  id  rep  source        routed       due          first touch         notes
  101 ana  webinar       10-05 14:00  10-05 16:00  10-05 14:30 met 30
  102 ben  webinar       10-06 14:00  10-06 16:00  -                   open breach since October
  103 -    list_purchase 10-07 14:00                                   nurture
  104 eve  demo_request  10-28 14:00  10-28 14:15  10-28 14:05 met 5   after the previous instant
  201 ana  webinar       11-02 15:00  11-02 17:00  11-02 15:10 met 10
  202 ben  demo_request  11-03 15:00  11-03 15:15  11-03 15:20 late 20 (hot)
  203 eve  webinar       11-04 15:00  11-04 17:00  11-04 15:30 met 30
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from commands.changes import change, changes, describe, previous_as_of
from sla.agreement import Agreement
from storage import metrics
from storage.db import Database
from storage.tables import Lead

T0 = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
PREVIOUS = datetime(2026, 10, 26, 19, 18, 56, tzinfo=UTC)
TEAM = {"ana": "smb", "ben": "smb", "eve": "midmarket"}
VALUE = {"webinar": 900.0, "demo_request": 2400.0, "list_purchase": 0.0}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def lead(id: int, source: str, routed: str, owner: str | None = None, due: str | None = None,
         touched: str | None = None, met: bool = True, speed: float | None = None, tier: str = "standard") -> Lead:
    at = utc(routed)
    values: dict[str, Any] = {"id": id, "agreement_version": "test", "name": f"Lead {id}", "company": f"Co {id}",
                              "source": source, "handed_off_at": at, "received_at": at, "value": VALUE[source]}
    if owner is None:
        values.update(workable=False, state="nurture", score=0)
    else:
        values.update(workable=True, tier=tier, team=TEAM[owner], owner=owner, routed_at=at, owner_since=at,
                      sla_due=utc(due or routed), first_touch_due=utc(due or routed), state="routed", is_open=True,
                      score=60 if tier == "hot" else 25)
    if touched:
        values.update(first_touch_at=utc(touched), first_touch_met=met, speed_to_lead_min=speed, attempts=1,
                      calls=1, last_attempt_at=utc(touched), claimed_at=utc(touched), state="working")
    return Lead(**values)


@pytest.fixture
def two_months(db: Database) -> Database:
    with db.write() as session:
        session.add_all([
            lead(101, "webinar", "2026-10-05T14:00", "ana", "2026-10-05T16:00", "2026-10-05T14:30", True, 30),
            lead(102, "webinar", "2026-10-06T14:00", "ben", "2026-10-06T16:00"),
            lead(103, "list_purchase", "2026-10-07T14:00"),
            lead(104, "demo_request", "2026-10-28T14:00", "eve", "2026-10-28T14:15", "2026-10-28T14:05", True, 5,
                 tier="hot"),
            lead(201, "webinar", "2026-11-02T15:00", "ana", "2026-11-02T17:00", "2026-11-02T15:10", True, 10),
            lead(202, "demo_request", "2026-11-03T15:00", "ben", "2026-11-03T15:15", "2026-11-03T15:20", False, 20,
                 tier="hot"),
            lead(203, "webinar", "2026-11-04T15:00", "eve", "2026-11-04T17:00", "2026-11-04T15:30", True, 30),
        ])
    return db


def status(db: Database, agreement: Agreement, as_of: datetime) -> dict[str, Any]:
    with db.read() as session:
        return metrics.status(session, agreement=agreement, calendar=agreement.calendar(),
                              as_of=as_of).model_dump(mode="json")


def test_the_previous_period_is_the_previous_month_at_the_same_share_of_its_business_time(
        agreement: Agreement) -> None:
    calendar = agreement.calendar()
    previous = previous_as_of(calendar, T0)
    assert previous.as_of == PREVIOUS and not previous.whole_month
    assert previous.share == pytest.approx(8160 / 10260)
    assert describe(calendar, previous, "Mon Oct 26, 15:18 EDT") == (
        "October 2026 as of Mon Oct 26, 15:18 EDT, when the same 80% of its business time had passed")

    # A whole month (as "last month" asks: its last second) compares with the whole month before.
    end_of_november = datetime(2026, 12, 1, 4, 59, 59, tzinfo=UTC)   # Nov 30 23:59:59 EST
    whole = previous_as_of(calendar, end_of_november)
    assert whole.whole_month and whole.as_of == datetime(2026, 11, 1, 3, 59, 59, tzinfo=UTC)   # Oct 31 23:59:59 EDT
    assert describe(calendar, whole, "whenever") == "the whole of October 2026"
    # After the last business hour of a month the share is whole too (Monday Nov 30, 19:00 EST).
    assert previous_as_of(calendar, datetime(2026, 12, 1, 0, 0, tzinfo=UTC)).whole_month

    # Before the month's first business hour nothing of it has passed: the month before's first instant.
    early = previous_as_of(calendar, datetime(2026, 12, 1, 6, 0, tzinfo=UTC))   # Tue Dec 1, 01:00 EST
    assert early.share == 0 and early.as_of == datetime(2026, 11, 1, 4, 0, tzinfo=UTC)
    # Into January: the previous month is last year's December.
    january = previous_as_of(calendar, datetime(2027, 1, 15, 20, 0, tzinfo=UTC))
    assert calendar.local(january.as_of).month == 12 and calendar.local(january.as_of).year == 2026
    assert not january.whole_month


def test_each_figure_changes_from_the_previous_period(two_months: Database, agreement: Agreement) -> None:
    now, before = status(two_months, agreement, T0), status(two_months, agreement, PREVIOUS)
    found = changes(now, before, currency="USD")
    text = {key: c.text for key, c in found.items()}

    assert text["marketing.workable"] == "▲ 1 from 2, better"   # 104 came after the previous instant
    assert text["marketing.value"] == "▲ $2,400 from $1,800, better"
    assert text["marketing.nurture"] == "▼ 1 from 1"              # neither way is good
    assert text["marketing.by_source.webinar"] == "= no change from 2"
    assert text["marketing.by_source.demo_request"] == "▲ 1 from 0, better"
    assert text["sales.worked_pct"] == "▲ 50 pts from 50%, better"
    assert text["sales.within_sla_pct"] == "▲ 17 pts from 50%, better"   # 2 of 3 against 1 of 2
    assert text["sales.speed_to_lead_p50"] == "▼ 10 min from 30 min, better"
    assert text["sales.open_breaches"] == "= no change from 1"   # 102, open since October
    assert text["marketing.per_rep.eve"] == "▲ 1 from 0, better"
    assert text["sales.per_rep.ben.open_breaches"] == "= no change from 1"
    assert text["sales.per_rep.ana.worked_pct"] == "= no change from 100%"
    assert text["sales.per_rep.eve.worked_pct"] == "n/a then"   # no cohort in October yet
    assert text["rejected.total"] == "= no change from 0"
    # Each change carries the figure's previous value as GET /api/v1/status has it at that instant.
    assert found["sales.worked_pct"].previous == before["sales"]["worked_pct"] == 0.5
    assert found["marketing.workable"].verdict == "better" and found["marketing.nurture"].verdict is None


def test_a_change_is_the_difference_of_the_figures_as_shown() -> None:
    # Percentages by whole points of the shown percentages; which way is good decides the word.
    assert change("pct", "up", 0.6249, 0.6151).text == "= no change from 62%"
    assert change("pct", "up", 0.6351, 0.6249).text == "▲ 2 pts from 62%, better"
    assert change("pct", "up", 0.63, 0.62).text == "▲ 1 pt from 62%, better"
    assert change("pct", "down", 0.5, 0.62).text == "▼ 12 pts from 62%, better"
    assert change("pct", None, 0.9, 0.5).text == "▲ 40 pts from 50%"
    # Business minutes, money, decimals and counts.
    assert change("minutes", "down", 95.2, 30.0).text == "▲ 1 h 5 min from 30 min, worse"
    assert change("money", "up", 1000.0, 2400.0, currency="EUR").text == "▼ €1,400 from €2,400, worse"
    assert change("number", "up", 2.25, 2.0).text == "▲ 0.2 from 2, better"
    assert change("count", "down", 3, 1).text == "▲ 2 from 1, worse"
    # No figure in one of the periods.
    assert change("pct", "up", 0.5, None).text == "n/a then"
    assert change("pct", "up", None, None).text == "n/a then too"
    assert change("pct", "up", None, 0.5).text == "was 50%"


def test_breakdowns_list_keys_of_either_period() -> None:
    now = {"marketing": {"by_source": {"webinar": 3}, "per_rep": {}}, "rejected": {"by_reason": {}},
           "sales": {"per_rep": {}}}
    then = {"marketing": {"by_source": {"ebook": 2}, "per_rep": {}}, "rejected": {"by_reason": {"no_budget": 1}},
            "sales": {"per_rep": {}}}
    found = changes(now, then)
    assert found["marketing.by_source.ebook"].text == "▼ 2 from 2, worse"
    assert found["marketing.by_source.webinar"].text == "▲ 3 from 0, better"
    assert found["rejected.by_reason.no_budget"].text == "▼ 1 from 1, better"
    assert found["marketing.workable"].text == "n/a then too"
