"""The metrics of DESIGN.md 2.7 against a hand-built set of leads, every number worked out by hand.

The agreement is the example one: America/New_York, Mon-Fri 09:00-18:00, US holidays. In November
2026 (EST, UTC-5, after the DST change on Sunday 11-01) business hours are 14:00-23:00Z; on Friday
10-30 (EDT, UTC-4) they are 13:00-22:00Z. `holidays.US(years=2026)` has Veterans Day (Wed 11-11)
and Thanksgiving (Thu 11-26) in November; the day after Thanksgiving is not a federal holiday.
Nov 2026 business days: weekdays 2-6, 9-13, 16-20, 23-27, 30 = 21, minus 11-11 and 11-26 = 19
days x 9 h = 171 h = 10260 business minutes.

Leads (times UTC, all 2026; webinar value 900, demo_request 2400, ebook 300; "ft" = first touch):

  id rep team src/offer        routed      sla_due     ft                  state and notes
   1 ana smb  webinar/q4-web   11-02 15:00 11-02 17:00 11-02 15:30 met 30m won; opp 11-05 20000, won 11-20
                                                                           for 18000; 6 att, 1 connect
   2 ben smb  demo/demo (hot)  11-03 14:00 11-03 14:15 11-03 14:45 late 45 working; 3 att, the last on 11-20
                                                                           (events 11-03, 11-05, 11-20)
   3 cho smb  ebook/sla-ebook  11-10 20:00 11-10 22:00 -                   routed; open breach
   4 eve mid  webinar/q4-web   11-16 15:00 11-16 17:00 11-16 16:00 met 60m recycled 11-20 after 6 att
   5 fay mid  webinar/q4-web   11-17 15:00 11-17 17:00 11-17 15:10 met 10m recycled 11-19 after 2 att; 1 conn
   6 ana smb  demo/demo (hot)  11-24 14:50 11-24 15:05 11-24 14:55 met 5m  deadline ahead at T0 but touched:
                                                                           in; opp 11-24 20:00 (after T0)
   7 ben smb  webinar/q4-web   11-24 14:30 11-24 16:30 -                   deadline ahead, untouched: out
   8 cho smb  ebook/sla-ebook  10-30 14:00 10-30 16:00 -                   routed LAST month: out, but still
                                                                           an open breach
   9 -   -    list_purchase/-  handed off 11-05 15:00                      nurture
  10 -   -    ebook/sla-ebook  handed off 11-20 15:00                      nurture
  11 eve mid  ebook/sla-ebook  11-18 15:00 11-18 17:00 11-18 17:20 late 140 disqualified no_budget 11-18 18:00
  12 ana smb  webinar/q4-web   11-25 15:00 (after T0: counts nowhere)
  13 ana smb  webinar/-        11-23 15:00 11-23 17:00 11-24 16:00 late    connected; its 2 attempts are after
                                                       (after T0)          T0 (events 16:00 call, 17:00 conn)
  14 fay mid  demo/demo        11-20 15:00 11-20 17:00 -                   disqualified duplicate 11-24 18:00,
                                                                           after T0: an open breach at T0
  15 eve mid  webinar/q4-web   10-20 14:00 (last month), touched in time; opportunity 11-10 for 50000
  16 ben smb  webinar/q4-web   11-12 15:00 11-12 17:00 11-12 18:00 late 180 qualified; opp 11-13 16:00 10000;
                                                                           2 att, 1 connect
("demo" = source demo_request, offer demo; "q4-web" = offer q4-webinar.)

System delays (seconds): 1:2 2:6 3:8 4:3 5:1 6:4 7:100 8:50 11:6 12:1000 13:7 14:10 15:0.5 16:12.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from sla.agreement import Agreement, parse_agreement
from sla.calendar import BusinessCalendar
from sla.metrics import elapsed_fraction, fraction, pace, percentile, projection, ratio
from storage import metrics
from storage.db import Database
from storage.tables import Lead, LeadEvent
from tests.conftest import EXAMPLE_AGREEMENT

#: Tuesday 2026-11-24 10:00 in New York.
T0 = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
#: Tuesday 2026-11-10 16:00 in New York: a past as_of.
PAST = datetime(2026, 11, 10, 21, 0, tzinfo=UTC)

VALUES = {"webinar": 900.0, "demo_request": 2400.0, "ebook": 300.0, "list_purchase": 0.0}
OWNER_TEAM = {"ana": "smb", "ben": "smb", "cho": "smb", "eve": "midmarket", "fay": "midmarket"}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def lead(id: int, *, source: str, routed: str, offer: str | None = None, owner: str | None = None,
         tier: str = "standard", sla_due: str | None = None, **columns: Any) -> Lead:
    """A routed workable lead (or, without `owner`, a nurture lead) with explicit columns."""
    at = utc(routed)
    values: dict[str, Any] = {
        "id": id, "agreement_version": "test", "name": f"Lead {id}", "company": f"Co {id}",
        "source": source, "offer": offer, "handed_off_at": at, "received_at": at,
        "value": VALUES[source], "score": 60 if tier == "hot" else 25,
    }
    if owner is None:
        values.update(workable=False, state="nurture", score=0)
    else:
        due = utc(sla_due) if sla_due else None
        values.update(workable=True, tier=tier, team=OWNER_TEAM[owner], owner=owner, routed_at=at,
                      owner_since=at, sla_due=due, first_touch_due=due, state="routed", is_open=True)
    for key, value in columns.items():
        values[key] = utc(value) if key.endswith("_at") and isinstance(value, str) else value
    return Lead(**values)


def touched(first_touch: str, *, met: bool, speed: float, attempts: int, last: str | None = None,
            connects: int = 0) -> dict[str, Any]:
    return {"first_touch_at": first_touch, "first_touch_met": met, "speed_to_lead_min": speed,
            "attempts": attempts, "calls": attempts, "connects": connects,
            "last_attempt_at": last or first_touch, "claimed_at": first_touch}


def closed(state: str, at: str, **columns: Any) -> dict[str, Any]:
    return {"state": state, "is_open": False, "closed_at": at, **columns}


def posted(routed: str, delay: float) -> dict[str, Any]:
    return {"card_posted_at": routed, "system_delay_s": delay}   # delays are seconds: same minute


def make_leads() -> list[Lead]:
    """Fresh rows each time: an ORM object belongs to one session."""
    return [
        lead(1, source="webinar", offer="q4-webinar", owner="ana", routed="2026-11-02T15:00",
             sla_due="2026-11-02T17:00",
             **touched("2026-11-02T15:30", met=True, speed=30.0, attempts=6, connects=1,
                       last="2026-11-04T16:00"),
             **closed("won", "2026-11-05T16:00", opportunity_at="2026-11-05T16:00",
                      opportunity_amount=20000.0, won_at="2026-11-20T15:00", bookings=18000.0),
             **posted("2026-11-02T15:00", 2.0)),
        lead(2, source="demo_request", offer="demo", owner="ben", tier="hot", routed="2026-11-03T14:00",
             sla_due="2026-11-03T14:15",
             **touched("2026-11-03T14:45", met=False, speed=45.0, attempts=3, last="2026-11-20T15:00"),
             state="working", **posted("2026-11-03T14:00", 6.0)),
        lead(3, source="ebook", offer="sla-ebook", owner="cho", routed="2026-11-10T20:00",
             sla_due="2026-11-10T22:00", **posted("2026-11-10T20:00", 8.0)),
        lead(4, source="webinar", offer="q4-webinar", owner="eve", routed="2026-11-16T15:00",
             sla_due="2026-11-16T17:00",
             **touched("2026-11-16T16:00", met=True, speed=60.0, attempts=6, last="2026-11-19T15:00"),
             **closed("recycled", "2026-11-20T15:00"), **posted("2026-11-16T15:00", 3.0)),
        lead(5, source="webinar", offer="q4-webinar", owner="fay", routed="2026-11-17T15:00",
             sla_due="2026-11-17T17:00",
             **touched("2026-11-17T15:10", met=True, speed=10.0, attempts=2, connects=1,
                       last="2026-11-18T15:00"),
             **closed("recycled", "2026-11-19T15:00"), **posted("2026-11-17T15:00", 1.0)),
        lead(6, source="demo_request", offer="demo", owner="ana", tier="hot", routed="2026-11-24T14:50",
             sla_due="2026-11-24T15:05",
             **touched("2026-11-24T14:55", met=True, speed=5.0, attempts=1),
             **closed("qualified", "2026-11-24T20:00", opportunity_at="2026-11-24T20:00",
                      opportunity_amount=99999.0),
             **posted("2026-11-24T14:50", 4.0)),
        lead(7, source="webinar", offer="q4-webinar", owner="ben", routed="2026-11-24T14:30",
             sla_due="2026-11-24T16:30", **posted("2026-11-24T14:30", 100.0)),
        lead(8, source="ebook", offer="sla-ebook", owner="cho", routed="2026-10-30T14:00",
             sla_due="2026-10-30T16:00", **posted("2026-10-30T14:00", 50.0)),
        lead(9, source="list_purchase", routed="2026-11-05T15:00"),
        lead(10, source="ebook", offer="sla-ebook", routed="2026-11-20T15:00"),
        lead(11, source="ebook", offer="sla-ebook", owner="eve", routed="2026-11-18T15:00",
             sla_due="2026-11-18T17:00",
             **touched("2026-11-18T17:20", met=False, speed=140.0, attempts=1),
             **closed("disqualified", "2026-11-18T18:00", disqualify_reason="no_budget"),
             **posted("2026-11-18T15:00", 6.0)),
        lead(12, source="webinar", offer="q4-webinar", owner="ana", routed="2026-11-25T15:00",
             sla_due="2026-11-25T17:00", **posted("2026-11-25T15:00", 1000.0)),
        lead(13, source="webinar", owner="ana", routed="2026-11-23T15:00", sla_due="2026-11-23T17:00",
             **touched("2026-11-24T16:00", met=False, speed=600.0, attempts=2, connects=1,
                       last="2026-11-24T17:00"),
             state="connected", **posted("2026-11-23T15:00", 7.0)),
        lead(14, source="demo_request", offer="demo", owner="fay", routed="2026-11-20T15:00",
             sla_due="2026-11-20T17:00",
             **closed("disqualified", "2026-11-24T18:00", disqualify_reason="duplicate"),
             **posted("2026-11-20T15:00", 10.0)),
        lead(15, source="webinar", offer="q4-webinar", owner="eve", routed="2026-10-20T14:00",
             sla_due="2026-10-20T16:00",
             **touched("2026-10-20T14:30", met=True, speed=30.0, attempts=2),
             **closed("qualified", "2026-11-10T15:00", opportunity_at="2026-11-10T15:00",
                      opportunity_amount=50000.0),
             **posted("2026-10-20T14:00", 0.5)),
        lead(16, source="webinar", offer="q4-webinar", owner="ben", routed="2026-11-12T15:00",
             sla_due="2026-11-12T17:00",
             **touched("2026-11-12T18:00", met=False, speed=180.0, attempts=2, connects=1,
                       last="2026-11-12T19:00"),
             **closed("qualified", "2026-11-13T16:00", opportunity_at="2026-11-13T16:00",
                      opportunity_amount=10000.0),
             **posted("2026-11-12T15:00", 12.0)),
    ]

#: Attempt events, needed where a lead's counters moved after an as_of the tests use (2 and 13).
EVENTS = [
    (2, "2026-11-03T14:45", "log_call"), (2, "2026-11-05T15:00", "log_email"),
    (2, "2026-11-20T15:00", "log_call"),
    (13, "2026-11-24T16:00", "log_call"), (13, "2026-11-24T17:00", "connected"),
]


@pytest.fixture
def loaded(any_db: Database) -> Database:
    with any_db.write() as session:
        session.add_all(make_leads())
        session.flush()
        session.add_all(LeadEvent(lead_id=i, at=utc(at), actor="rep", type=kind, data={})
                        for i, at, kind in EVENTS)
    return any_db


@pytest.fixture
def calendar(agreement: Agreement) -> BusinessCalendar:
    return agreement.calendar()


def status(db: Database, agreement: Agreement, as_of: datetime = T0, scope: str = "all") -> dict[str, Any]:
    with db.read() as session:
        result = metrics.status(session, agreement=agreement, calendar=agreement.calendar(),
                                as_of=as_of, scope=scope).model_dump(mode="json")
    json.dumps(result)   # the API returns it as is
    return result


# --- sla.metrics -----------------------------------------------------------------------------


def test_percentile_is_numpy_default_linear_interpolation() -> None:
    # h = (n - 1) * q; x[floor h] + frac(h) * (x[floor h + 1] - x[floor h])
    assert percentile([30, 5, 20, 10], 0.5) == 15.0         # h = 1.5: 10 + .5 * 10
    assert percentile([5, 10, 20, 30], 0.9) == pytest.approx(27.0)   # h = 2.7: 20 + .7 * 10
    assert percentile([7], 0.9) == 7.0
    assert percentile([], 0.5) is None
    assert percentile([1, 2, 3], 0.0) == 1.0
    assert percentile([1, 2, 3], 1.0) == 3.0
    with pytest.raises(ValueError):
        percentile([1], 1.5)
    # The standard library's "inclusive" quantiles are the same linear method (numpy is no dependency).
    sample = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0, 5.0]
    for i, cut in enumerate(statistics.quantiles(sample, n=20, method="inclusive"), start=1):
        assert percentile(sample, i / 20) == pytest.approx(cut)
    assert percentile(sample, 0.0) == min(sample) and percentile(sample, 1.0) == max(sample)


def test_ratios_pace_and_projection() -> None:
    assert ratio(1, 0) is None
    assert fraction(2, 3) == 0.6667
    assert fraction(0, 0) is None
    assert pace(10, 0, 0.5) is None                          # no goal
    assert pace(10, 100, 0.0) is None                        # nothing elapsed yet
    assert pace(10, 100, 0.5) == 0.2                         # 10 / (100 * .5)
    assert projection(10, 0.5) == 20.0
    assert projection(10, 0.0) is None
    assert elapsed_fraction(timedelta(hours=1), timedelta(0)) == 0.0
    assert elapsed_fraction(timedelta(hours=3), timedelta(hours=2)) == 1.0


# --- period ------------------------------------------------------------------------------------


def test_period_business_time_fraction_by_hand(calendar: BusinessCalendar) -> None:
    # The holiday facts the arithmetic below relies on (the `holidays` package's US calendar).
    assert calendar.holiday_name(date(2026, 11, 11)) == "Veterans Day"
    assert calendar.holiday_name(date(2026, 11, 26)) == "Thanksgiving Day"
    assert calendar.holiday_name(date(2026, 11, 27)) is None          # day after: a business day
    assert sum(calendar.is_business_day(date(2026, 11, d)) for d in range(1, 31)) == 19
    period = metrics.period_of(calendar, T0)
    # Local midnight 11-01 is still EDT (the clocks go back at 02:00): 04:00Z; 12-01 is EST: 05:00Z.
    assert period.start == utc("2026-11-01T04:00")
    assert period.end == utc("2026-12-01T05:00")
    # Elapsed to Tue 11-24 10:00 local: business days 2-6, 9, 10, 12, 13, 16-20, 23 = 15 x 9 h = 135 h,
    # plus 09:00-10:00 on the 24th = 136 h; the month has 171 h (see the module docstring).
    assert period.business_elapsed.total_seconds() == 136 * 3600
    assert period.business_total.total_seconds() == 171 * 3600
    assert period.numbers().model_dump(mode="json") == {
        "start": "2026-11-01T04:00:00Z", "end": "2026-12-01T05:00:00Z",
        "elapsed": 0.7953,                                   # 136 / 171 = 0.79532
        "business_minutes_elapsed": 8160.0, "business_minutes_total": 10260.0,
    }


# --- status: everything, as of T0 ----------------------------------------------------------------


def test_status_all_as_of_t0(loaded: Database, agreement: Agreement) -> None:
    result = status(loaded, agreement)
    assert result["as_of"] == "2026-11-24T15:00:00Z"
    assert result["scope"] == "all"
    assert result["period"]["elapsed"] == 0.7953

    marketing = result["marketing"]
    # MTD (handed off 11-01 04:00Z..T0): 1-7, 9, 10, 11, 13, 14, 16 = 13; 8 and 15 last month, 12 after.
    assert marketing["leads"] == 13
    assert marketing["workable"] == 11                       # all but nurture 9 and 10
    assert marketing["nurture"] == 2
    assert marketing["goal"] == 200                          # 40 x 5 active reps
    assert marketing["pace"] == 0.0692                       # 11 / (200 x 136/171) = 1881/27200 = 0.06915
    assert marketing["projected"] == 13.8                    # 11 / (136/171) = 1881/136 = 13.83
    assert marketing["value"] == 13200.0                     # 6 webinar x 900 + 3 demo x 2400 + 2 ebook x 300
    assert marketing["value_goal"] == 250000.0
    assert marketing["by_source"] == {"webinar": 6, "demo_request": 3, "ebook": 2}
    assert marketing["mix"] == {"source": {"webinar": 6, "demo_request": 3, "ebook": 2},
                                "offer": {"q4-webinar": 5, "demo": 3, "sla-ebook": 2, "unknown": 1}}
    # ana 1, 6, 13; ben 2, 7, 16; cho 3; eve 4, 11; fay 5, 14
    assert marketing["per_rep"] == {"ana": 3, "ben": 3, "cho": 1, "eve": 2, "fay": 2}

    sales = result["sales"]
    # Cohort: routed this month by T0 and workable = 1-7, 11, 13, 14, 16; 7 is out (deadline 16:30
    # not passed, untouched); 6 is in (deadline 15:05 not passed, but touched); 13 is in (deadline
    # passed; its touch came after T0). So 1, 2, 3, 4, 5, 6, 11, 13, 14, 16 = 10.
    assert sales["cohort"] == 10
    assert sales["worked"] == 7                              # 1, 2, 4, 5, 6, 11, 16
    assert sales["worked_pct"] == 0.7
    assert sales["within_sla"] == 4                          # 1, 4, 5, 6
    assert sales["within_sla_pct"] == 0.4
    # Speeds of the touched: [5, 10, 30, 45, 60, 140, 180]; p50: h = 3 -> 45;
    # p90: h = 5.4 -> 140 + .4 x (180 - 140) = 156
    assert sales["speed_to_lead_p50"] == 45.0
    assert sales["speed_to_lead_p90"] == 156.0
    # Delays of the cohort: [1, 2, 3, 4, 6, 6, 7, 8, 10, 12]; p50: h = 4.5 -> 6 + .5 x 0 = 6;
    # p95: h = 8.55 -> 10 + .55 x 2 = 11.1
    assert sales["system_delay_p50_s"] == 6.0
    assert sales["system_delay_p95_s"] == 11.1
    # Attempts by T0: 6 + 3 + 0 + 6 + 2 + 1 + 1 + 0 (13's came after T0) + 0 + 2 = 21 over 10
    assert sales["attempts"] == 21
    assert sales["attempts_per_lead"] == 2.1
    assert sales["connected"] == 3                           # 1, 5, 16 (13 connected after T0)
    assert sales["connect_rate"] == 0.4286                   # 3 / 7 worked
    assert sales["recycled"] == 2                            # 4 (6 attempts >= 6), 5 (2 < 6)
    assert sales["cadence_met_pct"] == 0.5
    # Opportunities by T0 among the 11 workable MTD: 1 and 16 (6's came after T0; 15 is last month's)
    assert sales["opportunities"] == 2
    assert sales["opportunity_rate"] == 0.1818               # 2 / 11
    assert sales["opportunity_rate_target"] == 0.10
    assert sales["pipeline_value"] == 30000.0                # 20000 + 10000
    # Split over the cohort: met 1, 4, 5, 6 -> opp 1: 1/4; missed 2, 3, 11, 13, 14, 16 -> opp 16: 1/6
    assert sales["opportunity_rate_first_touch_met"] == 0.25
    assert sales["opportunity_rate_first_touch_missed"] == 0.1667
    assert sales["open_breaches"] == 4                       # 8, 3, 14, 13 (see below)
    assert sales["per_rep"] == {
        # ana: 1, 6, 13 (13 untouched at T0)
        "ana": {"cohort": 3, "worked_pct": 0.6667, "within_sla_pct": 0.6667, "attempts_per_lead": 2.33,
                "connect_rate": 0.5, "cadence_met_pct": None, "open_breaches": 1},
        # ben: 2, 16: (3 + 2) / 2 attempts, connect 16
        "ben": {"cohort": 2, "worked_pct": 1.0, "within_sla_pct": 0.0, "attempts_per_lead": 2.5,
                "connect_rate": 0.5, "cadence_met_pct": None, "open_breaches": 0},
        # cho: 3 (and 8, last month's, is only a breach)
        "cho": {"cohort": 1, "worked_pct": 0.0, "within_sla_pct": 0.0, "attempts_per_lead": 0.0,
                "connect_rate": None, "cadence_met_pct": None, "open_breaches": 2},
        # eve: 4, 11: (6 + 1) / 2
        "eve": {"cohort": 2, "worked_pct": 1.0, "within_sla_pct": 0.5, "attempts_per_lead": 3.5,
                "connect_rate": 0.0, "cadence_met_pct": 1.0, "open_breaches": 0},
        # fay: 5, 14: (2 + 0) / 2
        "fay": {"cohort": 2, "worked_pct": 0.5, "within_sla_pct": 0.5, "attempts_per_lead": 1.0,
                "connect_rate": 1.0, "cadence_met_pct": 0.0, "open_breaches": 1},
    }

    # Open at T0, deadline passed, untouched at T0: 8 and 3 (still open), 13 (touched after T0),
    # 14 (closed after T0). Business minutes overdue:
    #   8:  Fri 10-30 16:00-22:00Z = 360, + 15 Nov days x 540 = 8100, + 14:00-15:00 on 11-24 = 60 -> 8520
    #   3:  11-10 22:00-23:00 = 60, (11-11 holiday) + 8 days (12, 13, 16-20, 23) x 540 = 4320, + 60 -> 4440
    #   14: 11-20 17:00-23:00 = 360, + 11-23 540, + 60 -> 960
    #   13: 11-23 17:00-23:00 = 360, + 60 -> 420
    listed = [(b["lead_id"], b["owner"], b["team"], b["due"], b["minutes_overdue"])
              for b in result["breaches"]]
    assert listed == [
        (8, "cho", "smb", "2026-10-30T16:00:00Z", 8520.0),
        (3, "cho", "smb", "2026-11-10T22:00:00Z", 4440.0),
        (14, "fay", "midmarket", "2026-11-20T17:00:00Z", 960.0),
        (13, "ana", "smb", "2026-11-23T17:00:00Z", 420.0),
    ]
    assert result["breaches"][0]["owner_name"] == "Cho Park"
    assert set(result) >= {"as_of", "period", "marketing", "sales", "breaches", "closed_loop", "capacity",
                           "rejected", "yesterday"}


def test_status_has_every_contract_key(loaded: Database, agreement: Agreement) -> None:
    result = status(loaded, agreement)
    assert set(result["period"]) >= {"start", "end", "elapsed"}
    assert set(result["marketing"]) >= {"workable", "goal", "pace", "projected", "value", "value_goal",
                                        "nurture", "by_source", "per_rep"}
    assert set(result["sales"]) >= {"cohort", "worked_pct", "within_sla_pct", "speed_to_lead_p50",
                                    "speed_to_lead_p90", "attempts_per_lead", "connect_rate",
                                    "opportunity_rate", "pipeline_value", "open_breaches"}


# --- as of the past ------------------------------------------------------------------------------


def test_status_as_of_the_past(loaded: Database, agreement: Agreement) -> None:
    result = status(loaded, agreement, as_of=PAST)
    # Elapsed to Tue 11-10 16:00 local: 2-6 and 9 = 6 days x 9 h = 54 h, + 09:00-16:00 = 7 h -> 61 / 171
    assert result["period"]["elapsed"] == 0.3567
    marketing = result["marketing"]
    # Handed off by then: 1, 2, 3 (20:00Z) and nurture 9
    assert (marketing["leads"], marketing["workable"], marketing["nurture"]) == (4, 3, 1)
    assert marketing["value"] == 3600.0                      # 900 + 2400 + 300
    assert marketing["pace"] == 0.042                        # 3 / (200 x 61/171) = 513/12200 = 0.04205
    assert marketing["projected"] == 8.4                     # 3 x 171 / 61 = 8.41
    assert marketing["by_source"] == {"demo_request": 1, "ebook": 1, "webinar": 1}

    sales = result["sales"]
    # Cohort: 1, 2 (touched); 3's deadline (22:00Z) has not passed at 21:00Z and it is untouched
    assert sales["cohort"] == 2
    assert sales["worked_pct"] == 1.0
    assert sales["within_sla_pct"] == 0.5                   # 1 met, 2 late
    assert sales["speed_to_lead_p50"] == 37.5               # [30, 45]: h = .5
    assert sales["speed_to_lead_p90"] == 43.5               # h = .9: 30 + .9 x 15
    assert sales["system_delay_p50_s"] == 4.0               # [2, 6]: 2 + .5 x 4
    assert sales["system_delay_p95_s"] == 5.8               # 2 + .95 x 4
    # 1: 6 (its last attempt 11-04 is before PAST); 2: 3 now, but its third attempt is on 11-20,
    # so its events up to PAST count 2 -> 8 / 2
    assert sales["attempts"] == 8
    assert sales["attempts_per_lead"] == 4.0
    assert sales["connect_rate"] == 0.5                     # 1 of 2 worked
    assert sales["recycled"] == 0
    assert sales["cadence_met_pct"] is None                 # nothing recycled yet: unknown, not 0
    assert sales["opportunity_rate"] == 0.3333              # 1's opportunity (11-05) / 3 workable
    assert sales["pipeline_value"] == 20000.0
    # Only 8 was breached then: 3's deadline was still ahead, 13 and 14 not routed yet.
    # 8: 10-30 16:00-22:00Z = 360 + 6 days (2-6, 9) x 540 = 3240 + 11-10 14:00-21:00Z = 420 -> 4020
    assert sales["open_breaches"] == 1
    assert [(b["lead_id"], b["minutes_overdue"]) for b in result["breaches"]] == [(8, 4020.0)]
    # 1 was an opportunity but not won yet on 11-10
    webinar = next(s for s in result["closed_loop"]["segments"] if s["offer"] == "q4-webinar")
    assert (webinar["leads"], webinar["opportunities"], webinar["won"], webinar["bookings"]) == (1, 1, 0, 0.0)
    assert result["rejected"]["total"] == 0


# --- scopes --------------------------------------------------------------------------------------


def test_status_team_scope(loaded: Database, agreement: Agreement) -> None:
    result = status(loaded, agreement, scope="team:smb")
    assert result["scope"] == "team:smb"
    marketing = result["marketing"]
    # smb MTD: 1, 2, 3, 6, 7, 13, 16 (8 is last month's); nurture leads have no team
    assert (marketing["workable"], marketing["nurture"]) == (7, 0)
    assert marketing["goal"] == 120                          # 40 x 3 reps
    assert marketing["value_goal"] == 150000.0               # 250000 x 3/5
    assert marketing["value"] == 8700.0                      # 4 x 900 + 2 x 2400 + 300
    assert marketing["pace"] == 0.0733                       # 7 x 171 / (120 x 136) = 1197/16320
    assert marketing["projected"] == 8.8                     # 1197 / 136 = 8.80
    assert marketing["by_source"] == {"webinar": 4, "demo_request": 2, "ebook": 1}
    assert marketing["per_rep"] == {"ana": 3, "ben": 3, "cho": 1}

    sales = result["sales"]
    assert sales["cohort"] == 6                              # 1, 2, 3, 6, 13, 16
    assert sales["worked_pct"] == 0.6667                     # 1, 2, 6, 16
    assert sales["within_sla_pct"] == 0.3333                 # 1, 6
    assert sales["speed_to_lead_p50"] == 37.5                # [5, 30, 45, 180]: h = 1.5
    assert sales["speed_to_lead_p90"] == 139.5               # h = 2.7: 45 + .7 x 135
    assert sales["system_delay_p50_s"] == 6.5                # [2, 4, 6, 7, 8, 12]: h = 2.5
    assert sales["system_delay_p95_s"] == 11.0               # h = 4.75: 8 + .75 x 4
    assert sales["attempts_per_lead"] == 2.0                 # (6 + 3 + 0 + 1 + 0 + 2) / 6
    assert sales["connect_rate"] == 0.5                      # 1, 16 of 4 worked
    assert sales["cadence_met_pct"] is None
    assert sales["opportunity_rate"] == 0.2857               # 1, 16 of 7
    assert sales["pipeline_value"] == 30000.0
    assert sales["open_breaches"] == 3                       # 8, 3, 13
    assert set(sales["per_rep"]) == {"ana", "ben", "cho"}
    assert [b["lead_id"] for b in result["breaches"]] == [8, 3, 13]
    assert result["capacity"]["capacity"] == 130             # 50 + 50 + 30


def test_status_rep_scope(loaded: Database, agreement: Agreement) -> None:
    result = status(loaded, agreement, scope="rep:fay")
    marketing = result["marketing"]
    assert (marketing["workable"], marketing["goal"], marketing["value_goal"]) == (2, 40, 50000.0)
    assert marketing["pace"] == 0.0629                       # 2 x 171 / (40 x 136) = 342/5440
    assert marketing["projected"] == 2.5                     # 342 / 136 = 2.51
    assert marketing["value"] == 3300.0                      # 900 + 2400
    assert marketing["per_rep"] == {"fay": 2}
    sales = result["sales"]
    assert sales["cohort"] == 2                              # 5, 14
    assert (sales["worked_pct"], sales["within_sla_pct"]) == (0.5, 0.5)
    assert (sales["speed_to_lead_p50"], sales["speed_to_lead_p90"]) == (10.0, 10.0)
    assert sales["attempts_per_lead"] == 1.0                 # (2 + 0) / 2
    assert sales["connect_rate"] == 1.0
    assert sales["cadence_met_pct"] == 0.0                   # 5 recycled after 2 of 6 attempts
    assert (sales["opportunity_rate"], sales["pipeline_value"]) == (0.0, 0.0)
    assert sales["open_breaches"] == 1                       # 14
    assert result["capacity"]["capacity"] == 40


@pytest.mark.parametrize("scope, message", [
    ("team:nope", "unknown team 'nope'"),
    ("rep:nope", "unknown rep 'nope'"),
    ("everyone", "bad scope"),
    ("team:", "bad scope"),
])
def test_unknown_scope_is_a_clear_error(loaded: Database, agreement: Agreement, scope: str,
                                        message: str) -> None:
    with pytest.raises(ValueError, match=message):
        status(loaded, agreement, scope=scope)


# --- the other reports ---------------------------------------------------------------------------


def test_closed_loop(loaded: Database, agreement: Agreement, calendar: BusinessCalendar) -> None:
    with loaded.read() as session:
        loop = metrics.closed_loop(session, agreement=agreement, calendar=calendar, as_of=T0).model_dump(mode="json")
    assert loop["start"] == "2026-11-01T04:00:00Z"
    assert loop["segments"] == [
        # 1, 4, 5, 7, 16: opportunities 1, 16; 1 won for 18000 -> 18000 / 5 per lead
        {"source": "webinar", "offer": "q4-webinar", "leads": 5, "workable": 5, "opportunities": 2,
         "won": 1, "bookings": 18000.0, "value_per_lead": 3600.0},
        # 2, 6, 14: 6's opportunity is after T0
        {"source": "demo_request", "offer": "demo", "leads": 3, "workable": 3, "opportunities": 0,
         "won": 0, "bookings": 0.0, "value_per_lead": 0.0},
        # 3, 11 and nurture 10
        {"source": "ebook", "offer": "sla-ebook", "leads": 3, "workable": 2, "opportunities": 0,
         "won": 0, "bookings": 0.0, "value_per_lead": 0.0},
        {"source": "list_purchase", "offer": None, "leads": 1, "workable": 0, "opportunities": 0,
         "won": 0, "bookings": 0.0, "value_per_lead": 0.0},
        {"source": "webinar", "offer": None, "leads": 1, "workable": 1, "opportunities": 0,
         "won": 0, "bookings": 0.0, "value_per_lead": 0.0},
    ]
    assert (loop["first_touch_met_leads"], loop["first_touch_missed_leads"]) == (4, 6)
    assert loop["opportunity_rate_first_touch_met"] == 0.25          # 1 of 1, 4, 5, 6
    assert loop["opportunity_rate_first_touch_missed"] == 0.1667     # 16 of 2, 3, 11, 13, 14, 16

    # A wider span takes in last month's 8 and 15 (15's opportunity on 11-10, touched in time).
    with loaded.read() as session:
        wider = metrics.closed_loop(session, agreement=agreement, calendar=calendar, as_of=T0,
                                    start=utc("2026-10-01T04:00")).model_dump(mode="json")
    webinar = wider["segments"][0]
    assert (webinar["leads"], webinar["opportunities"]) == (6, 3)
    assert (wider["first_touch_met_leads"], wider["first_touch_missed_leads"]) == (5, 7)
    assert wider["opportunity_rate_first_touch_met"] == 0.4          # 1, 15 of 1, 4, 5, 6, 15


def test_cumulative_workable(loaded: Database, agreement: Agreement) -> None:
    """The digest chart's counts: workable leads handed off from the month's start up to (not at)
    each instant, then up to and including as_of. November's workable leads by hand-off instant:
    1 (11-02), 2 (11-03), 3 (11-10 20:00), 16 (11-12), 4 (11-16), 5 (11-17 15:00), 11 (11-18),
    14 (11-20), 13 (11-23), 7 (11-24 14:30), 6 (11-24 14:50); 12 is after T0, 8 and 15 were last
    month, 9 and 10 are nurture. Team smb: 1, 2, 3, 16, 13, 7, 6."""
    start = utc("2026-11-01T04:00")
    ends = [utc("2026-11-10T00:00"), utc("2026-11-17T15:00"), utc("2026-11-24T14:50")]

    def counts(as_of: datetime, scope: str = "all", instants: list[datetime] = ends) -> list[int]:
        with loaded.read() as session:
            return metrics.cumulative_workable(session, agreement=agreement, start=start, ends=instants,
                                               as_of=as_of, scope=scope)

    assert counts(T0) == [2, 5, 10, 11]
    assert counts(T0)[-1] == status(loaded, agreement)["marketing"]["workable"]
    assert counts(T0, "team:smb") == [2, 4, 6, 7]
    assert counts(T0, "rep:ana") == [1, 1, 2, 3]
    # as_of is inclusive: lead 6 was handed off at 14:50:00.
    assert counts(utc("2026-11-24T14:50"), instants=[]) == [11]
    assert counts(utc("2026-11-24T14:49:59"), instants=[]) == [10]
    with pytest.raises(ValueError, match="ascending"):
        counts(T0, instants=[ends[1], ends[0]])


def test_capacity(loaded: Database, agreement: Agreement, calendar: BusinessCalendar) -> None:
    with loaded.read() as session:
        week = metrics.capacity(session, agreement=agreement, calendar=calendar, as_of=T0).model_dump(mode="json")
    # Week of Mon 11-23 00:00 local (05:00Z): routed by T0: 13 (11-23), 7 and 6 (11-24); 12 is after T0
    assert (week["week_start"], week["week_end"]) == ("2026-11-23T05:00:00Z", "2026-11-30T05:00:00Z")
    assert week["delivered"] == 3
    assert week["capacity"] == 210                           # 50 + 50 + 30 + 40 + 40
    assert week["utilization"] == 0.0143                     # 3 / 210
    assert week["per_rep"]["ana"] == {"delivered": 2, "capacity": 50, "utilization": 0.04}
    assert week["per_rep"]["ben"] == {"delivered": 1, "capacity": 50, "utilization": 0.02}
    assert week["per_rep"]["eve"] == {"delivered": 0, "capacity": 40, "utilization": 0.0}


def test_rejected_by_reason(loaded: Database, agreement: Agreement, calendar: BusinessCalendar) -> None:
    with loaded.read() as session:
        at_t0 = metrics.rejected_by_reason(session, agreement=agreement, calendar=calendar,
                                           as_of=T0).model_dump(mode="json")
        later = metrics.rejected_by_reason(session, agreement=agreement, calendar=calendar,
                                           as_of=utc("2026-11-25T12:00")).model_dump(mode="json")
    # At T0 only 11 was disqualified (14 on 11-24 18:00Z, after T0)
    assert at_t0 == {"total": 1, "by_reason": {"no_budget": 1}, "by_source": {"ebook": 1},
                     "rows": [{"reason": "no_budget", "source": "ebook", "count": 1}]}
    assert later["total"] == 2
    assert later["by_reason"] == {"duplicate": 1, "no_budget": 1}
    assert later["by_source"] == {"demo_request": 1, "ebook": 1}


def test_yesterday(loaded: Database, agreement: Agreement, calendar: BusinessCalendar) -> None:
    with loaded.read() as session:
        # as of T0 (Tue), yesterday is Mon 11-23 (05:00Z..11-24 05:00Z): 13 handed off; its deadline
        # (17:00Z) passed untouched that day; no first touch or opportunity that day.
        monday = metrics.yesterday(session, agreement=agreement, calendar=calendar, as_of=T0).model_dump(mode="json")
        # as of Thu 11-19 09:30 local, yesterday is Wed 11-18: 11 handed off and touched late.
        wednesday = metrics.yesterday(session, agreement=agreement, calendar=calendar,
                                      as_of=utc("2026-11-19T14:30")).model_dump(mode="json")
        # Any day: Fri 11-13, when 16 became a 10000 opportunity.
        friday = metrics.yesterday(session, agreement=agreement, calendar=calendar, as_of=T0,
                                   day=date(2026, 11, 13)).model_dump(mode="json")
    assert monday == {
        "date": "2026-11-23", "workable": 1, "nurture": 0, "first_touches": 0, "first_touches_within_sla": 0,
        "opportunities": 0, "opportunity_amount": 0.0, "breaches": 1,
        "breached": [{"lead_id": 13, "name": "Lead 13", "owner": "ana", "team": "smb",
                      "due": "2026-11-23T17:00:00Z"}],
    }
    assert (wednesday["date"], wednesday["workable"], wednesday["first_touches"],
            wednesday["first_touches_within_sla"], wednesday["breaches"]) == ("2026-11-18", 1, 1, 0, 1)
    assert (friday["opportunities"], friday["opportunity_amount"], friday["workable"]) == (1, 10000.0, 0)
    with loaded.read() as session:
        smb_friday = metrics.yesterday(session, agreement=agreement, calendar=calendar, as_of=T0,
                                       day=date(2026, 11, 13), scope="team:midmarket").model_dump(mode="json")
    assert smb_friday["opportunities"] == 0                  # 16 is smb's


def test_cadence_uses_each_tiers_attempt_count(loaded: Database, agreement: Agreement) -> None:
    # The same leads under an agreement asking only 2 attempts of standard leads: 5 now met it too.
    text = EXAMPLE_AGREEMENT.read_text().replace(
        "first_touch_within: 2h, attempts: {count: 6, within: 10d}",
        "first_touch_within: 2h, attempts: {count: 2, within: 10d}")
    lenient = parse_agreement(text)
    assert lenient.tier("standard") is not None and lenient.tier("standard").attempts.count == 2  # type: ignore[union-attr]
    assert status(loaded, lenient)["sales"]["cadence_met_pct"] == 1.0       # 4 (6 >= 2), 5 (2 >= 2)
    assert status(loaded, agreement)["sales"]["cadence_met_pct"] == 0.5


def test_empty_database(any_db: Database, agreement: Agreement) -> None:
    result = status(any_db, agreement)
    assert result["marketing"]["workable"] == 0
    assert result["marketing"]["pace"] == 0.0
    assert result["sales"]["cohort"] == 0
    for key in ("worked_pct", "within_sla_pct", "speed_to_lead_p50", "system_delay_p95_s",
                "attempts_per_lead", "connect_rate", "opportunity_rate", "cadence_met_pct"):
        assert result["sales"][key] is None, key
    assert result["sales"]["open_breaches"] == 0
    assert result["breaches"] == []
    # The first instant of the month: no business time yet, so no pace and no projection.
    start = status(any_db, agreement, as_of=utc("2026-11-01T04:00"))
    assert start["period"]["elapsed"] == 0.0
    assert (start["marketing"]["pace"], start["marketing"]["projected"]) == (None, None)


def test_every_query_is_driven_by_an_index(tmp_path: Path, agreement: Agreement) -> None:
    """Report cost follows the period, not the history: SQLite's EXPLAIN QUERY PLAN shows each query
    finding its lead rows through a range of `routed_at`/`handed_off_at` (SEARCH, never SCAN) in a
    covering index (the month's leads are never read from the wide lead rows), except the breach
    queries, whose two "still open" parts go through `is_open` (open leads not yet touched) and
    whose third part through `closed_at`, and yesterday's highlights, each through one day's range
    of its own instant. Without the care taken in Scope.where, a team or rep scope would walk that
    team's or rep's whole history."""
    db = Database(f"sqlite:///{tmp_path / 'plan.db'}")
    db.upgrade()
    statements: list[tuple[str, Any]] = []

    @event.listens_for(db.read_engine, "before_cursor_execute")
    def _record(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        statements.append((statement, params))

    calendar = agreement.calendar()
    for scope in ("all", "team:smb", "rep:ana"):
        status(db, agreement, scope=scope)
        with db.read() as session:          # the digest chart's counts
            metrics.cumulative_workable(session, agreement=agreement, start=utc("2026-11-01T04:00"),
                                        ends=[utc("2026-11-02T05:00"), utc("2026-11-03T05:00")], as_of=T0,
                                        scope=scope)
            # The modules' own entry points (status() folds these from its shared scans).
            metrics.closed_loop(session, agreement=agreement, calendar=calendar, as_of=T0, scope=scope)
            metrics.rejected_by_reason(session, agreement=agreement, calendar=calendar, as_of=T0, scope=scope)
    db.dispose()
    selects = [(sql, params) for sql, params in statements if sql.lstrip().upper().startswith("SELECT")]
    assert len(selects) >= 30
    with sqlite3.connect(tmp_path / "plan.db") as connection:
        for sql, params in selects:
            plan = [row[3] for row in connection.execute("EXPLAIN QUERY PLAN " + sql, params)]
            on_lead = [step for step in plan if f"{step} ".find(" lead ") >= 0]
            assert on_lead, (sql, plan)
            assert all(step.startswith("SEARCH lead USING") for step in on_lead), (sql, plan)
            by_open = [step for step in on_lead if "is_open=?" in step]
            by_range = [step for step in on_lead if "routed_at>?" in step or "handed_off_at>?" in step]
            by_day = [step for step in on_lead if step not in by_open and any(
                f"INDEX ix_lead_{column} ({column}>? AND {column}<?)" in step
                for column in ("first_touch_at", "opportunity_at", "sla_due"))]
            by_closed = [step for step in on_lead if "INDEX ix_lead_closed_at (closed_at>?)" in step]
            assert len(by_open) + len(by_range) + len(by_day) + len(by_closed) == len(on_lead), (sql, plan)
            assert all("USING COVERING INDEX ix_lead_" in step for step in by_range), (sql, plan)
            breaches = "UNION ALL" in sql and "is_open" in sql
            assert len(by_open) == (2 if breaches else 0), (sql, plan)
            assert len(by_closed) == (1 if breaches else 0), (sql, plan)


FRACTIONAL_SPEEDS = [10.12, 10.48, 10.93, 11.37, 11.81, 30.05, 30.55, 30.95]
FRACTIONAL_DELAYS = [2.01, 2.04, 2.07, 2.5, 2.52, 7.33, 7.36, 7.39]


def add_fractional_cohort(db: Database) -> None:
    """Eight touched leads whose speeds and delays share buckets (whole minutes, tenths of a second)."""
    with db.write() as session:
        session.add_all(
            lead(100 + i, source="webinar", owner="ana", routed=f"2026-11-{2 + i:02d}T15:00",
                 sla_due=f"2026-11-{2 + i:02d}T17:00",
                 **touched(f"2026-11-{2 + i:02d}T15:30", met=True, speed=speed, attempts=1),
                 **posted(f"2026-11-{2 + i:02d}T15:00", delay))
            for i, (speed, delay) in enumerate(zip(FRACTIONAL_SPEEDS, FRACTIONAL_DELAYS, strict=True)))


def test_percentiles_of_fractional_values_are_exact(any_db: Database, agreement: Agreement) -> None:
    """Real speeds (business minutes) and delays (seconds) are fractional: several distinct values
    within one minute or one tenth of a second, which the database's first pass counts together.
    The percentiles are still exactly `sla.metrics.percentile`'s."""
    speeds, delays = FRACTIONAL_SPEEDS, FRACTIONAL_DELAYS
    add_fractional_cohort(any_db)
    sales = status(any_db, agreement)["sales"]
    assert sales["speed_to_lead_p50"] == 11.6 == round(percentile(speeds, 0.5) or 0, 1)   # h = 3.5
    assert sales["speed_to_lead_p90"] == 30.7 == round(percentile(speeds, 0.9) or 0, 1)   # h = 6.3
    assert sales["system_delay_p50_s"] == 2.5 == round(percentile(delays, 0.5) or 0, 1)   # 2.51
    assert sales["system_delay_p95_s"] == 7.4 == round(percentile(delays, 0.95) or 0, 1)  # 7.3795


def test_percentiles_second_pass_reads_only_the_rank_buckets(tmp_path: Path, agreement: Agreement) -> None:
    """The second pass of each percentile (the values of the buckets holding the ranks) finds its
    rows by bucket and routing instant through its partial index, so it reads a few rows, not the
    month's cohort again: its bucket test must be the index's very expression (no bound multiplier)."""
    db = Database(f"sqlite:///{tmp_path / 'buckets.db'}")
    db.upgrade()
    add_fractional_cohort(db)
    statements: list[tuple[str, Any]] = []

    @event.listens_for(db.read_engine, "before_cursor_execute")
    def _record(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        statements.append((statement, params))

    status(db, agreement)
    db.dispose()
    second = {column: [(sql, params) for sql, params in statements if f"GROUP BY lead.{column} " in sql]
              for column in ("speed_to_lead_min", "system_delay_s")}
    with sqlite3.connect(tmp_path / "buckets.db") as connection:
        for column, index in (("speed_to_lead_min", "ix_lead_speed_bucket"),
                              ("system_delay_s", "ix_lead_delay_bucket")):
            assert len(second[column]) == 1, statements
            sql, params = second[column][0]
            plan = [row[3] for row in connection.execute("EXPLAIN QUERY PLAN " + sql, params)]
            on_lead = [step for step in plan if " lead " in f"{step} "]
            assert on_lead == [f"SEARCH lead USING INDEX {index} (<expr>=? AND routed_at>? AND routed_at<?)"], plan
