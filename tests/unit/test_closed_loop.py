"""The closed-loop definitions of the contract, pinned on small hand-computed histories."""

from __future__ import annotations

import re

import pytest

from sla.agreement import Agreement, parse_agreement
from sla.closed_loop import (
    Analysis,
    Backtest,
    SegmentStats,
    ThresholdTable,
    segment_key,
    segments_yaml,
    truthy,
    verdict,
    wilson,
)
from sla.lead import LeadIn
from sla.qualification import qualify
from tests.conftest import EXAMPLE_AGREEMENT


@pytest.mark.parametrize(("raw", "key"), [
    ("Direct Traffic", "direct_traffic"),
    (" direct-traffic ", "direct_traffic"),
    ("DIRECT__TRAFFIC", "direct_traffic"),
    ("direct - _ traffic", "direct_traffic"),
    ("Welingak Website", "welingak_website"),
    ("webinar", "webinar"),
    ("", None),
    ("   ", None),
    (None, None),
])
def test_segment_keys_are_trimmed_lower_cased_and_joined_by_one_underscore(raw: str | None,
                                                                          key: str | None) -> None:
    assert segment_key(raw) == key


@pytest.mark.parametrize("cell", ["1", "true", "TRUE", "True", "yes", "YES", "y", "Y", " yes "])
def test_truthy_cells(cell: str) -> None:
    assert truthy(cell)


@pytest.mark.parametrize("cell", ["", "0", "false", "no", "n", "2", "converted", "t", None])
def test_everything_else_is_false(cell: str | None) -> None:
    assert not truthy(cell)


def test_wilson_interval_matches_hand_computation() -> None:
    # 3 of 10, z = 1.96: p = 0.3, z^2/n = 0.38416, centre = (0.3 + 0.19208) / 1.38416 = 0.355508,
    # half = 1.96 * sqrt(0.021 + 0.009604) / 1.38416 = 0.247718.
    low, high = wilson(3, 10)  # type: ignore[misc]
    assert low == pytest.approx(0.107789, abs=1e-6)
    assert high == pytest.approx(0.603226, abs=1e-6)
    # 0 of 10: [0, (z^2/n) / (1 + z^2/n)] = [0, 0.38416 / 1.38416]
    assert wilson(0, 10) == pytest.approx((0.0, 0.38416 / 1.38416))
    # all converted, 10 of 10: [1 / (1 + z^2/n), 1], exactly 1 at the top
    assert wilson(10, 10) == pytest.approx((1 / 1.38416, 1.0))
    assert wilson(10, 10)[1] == 1.0  # type: ignore[index]
    # 1 of 2 is symmetric around one half
    low, high = wilson(1, 2)  # type: ignore[misc]
    assert low == pytest.approx(1 - high)
    assert wilson(0, 0) is None


def test_verdict_edges() -> None:
    # too few: below min_leads, whatever the rate
    assert verdict(29, (0.5, 0.9), baseline_rate=0.01, min_leads=30) == "too_few"
    assert verdict(30, (0.5, 0.9), baseline_rate=0.01, min_leads=30) == "workable"
    # not workable only when the upper bound is BELOW twice the baseline; equal is workable
    assert verdict(100, (0.0, 0.0199), baseline_rate=0.01, min_leads=30) == "not_workable"
    assert verdict(100, (0.0, 0.02), baseline_rate=0.01, min_leads=30) == "workable"
    assert verdict(100, (0.0, 0.039), baseline_rate=0.02, min_leads=30) == "not_workable"


def feed(analysis: Analysis, rows: list[tuple[str | None, bool, bool, float]]) -> None:
    for source, opportunity, won, amount in rows:
        analysis.add((segment_key(source),), opportunity=opportunity, won=won, amount=amount)


def test_segments_from_a_hand_made_history() -> None:
    analysis = Analysis(min_leads=3)
    feed(analysis, [
        # "Webinar", " webinar" and "WEBINAR" are one segment: 4 leads, 2 opportunities (one of them
        # only marked won: won counts as an opportunity), 1 won of 1000.
        ("Webinar", True, False, 0), (" webinar", False, True, 1000), ("WEBINAR", False, False, 0),
        ("webinar", False, False, 250),          # amount of a lead that was not won: not bookings
        # all converted: 3 of 3, all won
        ("Demo-Request", True, True, 100), ("demo request", True, True, 200), ("demo_request", True, True, 300),
        # blank and whitespace sources are one segment of their own
        ("", False, False, 0), ("  ", True, False, 0),
    ])
    data = analysis.to_json()
    assert (data["rows"], data["leads"], data["opportunities"], data["won"], data["bookings"]) == (9, 9, 6, 4, 1600)
    by_key = {s["key"]["source"]: s for s in data["segments"]}
    assert set(by_key) == {"webinar", "demo_request", None}
    webinar = by_key["webinar"]
    assert (webinar["leads"], webinar["opportunities"], webinar["won"], webinar["bookings"]) == (4, 2, 1, 1000)
    assert webinar["opportunity_rate"] == 0.5
    assert webinar["value_per_lead"] == 250
    assert webinar["interval"] == [pytest.approx(v) for v in wilson(2, 4)]  # type: ignore[union-attr]
    assert webinar["verdict"] == "workable"
    demo = by_key["demo_request"]
    assert (demo["leads"], demo["opportunities"], demo["opportunity_rate"], demo["bookings"]) == (3, 3, 1.0, 600)
    assert demo["interval"][1] == 1.0 and demo["value_per_lead"] == 200
    blank = by_key[None]
    assert (blank["leads"], blank["opportunities"], blank["verdict"]) == (2, 1, "too_few")
    # biggest first, blank last among equals
    assert [s["key"]["source"] for s in data["segments"]] == ["webinar", "demo_request", None]


def test_a_segment_whose_rows_are_all_bad_has_no_entry_and_no_division_by_zero() -> None:
    analysis = Analysis()
    analysis.add_bad(2, "amount 'x' is not a number")
    data = analysis.to_json()
    assert data["rows"] == 1 and data["leads"] == 0 and data["segments"] == []
    assert data["opportunity_rate"] is None and data["interval"] is None and data["value_per_lead"] is None
    assert data["bad_rows"] == [{"line": 2, "error": "amount 'x' is not a number"}]
    assert data["segments_yaml"] == "segments: []\n"
    assert SegmentStats().opportunity_rate is None


def test_the_threshold_table_and_the_suggested_threshold() -> None:
    table = ThresholdTable()
    # score: (rows, opportunities) = 40: (2, 2), 20: (4, 1), 0: (4, 0)
    for score, opportunity in [(40, True), (40, True), (20, True), (20, False), (20, False), (20, False),
                               (0, False), (0, False), (0, False), (0, False)]:
        table.add(score, opportunity=opportunity)
    rows = table.rows()
    assert [(r["score"], r["leads"], r["share"], r["opportunity_rate"]) for r in rows] == [
        (0, 10, 1.0, 0.3), (20, 6, 0.6, 0.5), (40, 2, 0.2, 1.0)]
    # the LOWEST score reaching the target with enough rows
    assert table.suggested(0.5, min_leads=2) == 20
    assert table.suggested(0.3, min_leads=2) == 0
    assert table.suggested(0.6, min_leads=2) == 40
    assert table.suggested(0.6, min_leads=3) is None        # 40 has only 2 rows
    assert table.suggested(0.5, min_leads=7) is None


def example() -> Agreement:
    return parse_agreement(EXAMPLE_AGREEMENT.read_text(encoding="utf-8"))


def with_segments(block: str) -> str:
    """The example agreement with its qualification.segments replaced by `block` (indented)."""
    text = EXAMPLE_AGREEMENT.read_text(encoding="utf-8")
    start = text.index("  segments:")
    end = text.index("  default_value:")
    indented = "".join(f"  {line}\n" if line else "\n" for line in block.splitlines())
    return text[:start] + indented + text[end:]


def test_segments_yaml_is_accepted_inside_the_agreement_and_matches_live_leads() -> None:
    analysis = Analysis(min_leads=2)
    feed(analysis, [("Demo Request", True, True, 3000), ("demo-request", True, False, 0),
                    ("List Purchase", False, False, 0), ("list purchase", False, False, 0),
                    ("Rare", True, False, 0), ("", True, True, 10), ("", True, True, 10)])
    analysis.baseline_rate = 0.35   # list purchase, 0 of 2: upper bound 0.658 < 2 x 0.35
    block = analysis.to_json()["segments_yaml"]
    assert block.splitlines()[:3] == ["segments:", "  - {when: {source: demo_request}, value: 1500}",
                                      "  - {when: {source: list_purchase}, workable: false}"]
    assert "rare" not in block                      # too few leads: left to default_value
    assert re.search(r"# left out: source \(blank\)", block)
    agreement = parse_agreement(with_segments(block))
    assert [s.model_dump(exclude_none=True) for s in agreement.qualification.segments] == [
        {"when": {"source": "demo_request"}, "value": 1500.0, "workable": True},
        {"when": {"source": "list_purchase"}, "workable": False}]
    # A live lead whose source is spelled the way the CRM spells it matches the normalized key.
    base = {"email": "a@b.example", "employees": 50, "stage": "solution_research",
            "activities": [{"type": "demo_requested"}], "bant": {"need": "yes", "budget": "yes"}}
    hit = qualify(agreement, LeadIn.model_validate({**base, "source": "Demo Request"}))
    assert hit.workable and hit.value == 1500
    miss = qualify(agreement, LeadIn.model_validate({**base, "source": " LIST-purchase "}))
    assert not miss.workable and miss.nurture_reason == "segment_not_workable"


def test_segments_yaml_leaves_values_out_without_amounts_and_quotes_odd_keys() -> None:
    segments = [
        {"key": {"source": "yes"}, "verdict": "workable", "value_per_lead": 12.5},
        {"key": {"source": "a: b"}, "verdict": "workable", "value_per_lead": 0.0},
        {"key": {"source": "x", "offer": "ebook"}, "verdict": "not_workable", "value_per_lead": 0.0},
    ]
    block = segments_yaml(segments)
    agreement = parse_agreement(with_segments(block))
    conditions = [s.when.model_dump(exclude_none=True) for s in agreement.qualification.segments]
    assert conditions == [{"source": "yes"}, {"source": "a: b"}, {"source": "x", "offer": "ebook"}]
    assert [s.value for s in agreement.qualification.segments] == [12.5, 0, None]
    without = segments_yaml(segments, with_values=False)
    assert "value:" not in without
    assert [s.value for s in parse_agreement(with_segments(without)).qualification.segments] == [None, None, None]


def lead(**fields: object) -> LeadIn:
    return LeadIn.model_validate({"external_id": "h", **fields})


def test_backtest_months_nurture_and_weekly_load_against_capacity() -> None:
    agreement = example()
    backtest = Backtest(agreement)
    good = {"employees": 50, "stage": "solution_research", "source": "webinar",
            "activities": [{"type": "demo_requested"}], "bant": {"need": "yes", "budget": "yes"}}
    big = {**good, "employees": 5000}
    weak = {**good, "activities": []}          # score 0 < 20: nurture
    rows = [(good, True, "2026-10", "2026-W40"), (good, False, "2026-10", "2026-W40"),
            (big, True, "2026-10", "2026-W41"), (weak, True, "2026-10", "2026-W41"),
            (weak, False, "2026-11", "2026-W45"), (good, True, None, None)]
    decisions = [backtest.add(lead(**f), opportunity=o, won=False, amount=0, month=m, week=w)
                 for f, o, m, w in rows]
    assert [d.workable for d in decisions] == [True, True, True, False, False, True]
    assert [d.score for d in decisions] == [30, 30, 30, 0, 0, 30]
    data = backtest.to_json()
    assert data["total"]["workable"]["leads"] == 4 and data["total"]["workable"]["opportunities"] == 3
    assert data["total"]["nurture"]["leads"] == 2 and data["total"]["nurture"]["opportunity_rate"] == 0.5
    months = {m["month"]: m for m in data["months"]}
    assert list(months) == ["2026-10", "2026-11", None]
    assert months["2026-10"]["workable"]["leads"] == 3 and months["2026-10"]["nurture"]["leads"] == 1
    assert months["2026-11"]["workable"]["opportunity_rate"] is None   # zero leads: no rate, no interval
    assert months["2026-11"]["workable"]["interval"] is None
    teams = {t["team"]: t for t in data["teams"]}
    # three weeks had leads at all; smb got 2 in W40, 0 in W41 and W45; its reps can take 50+50+30
    assert teams["smb"]["capacity_per_week"] == 130 and teams["smb"]["weeks"] == 3
    assert teams["smb"]["peak_per_week"] == 2 and teams["smb"]["average_per_week"] == pytest.approx(2 / 3)
    assert teams["midmarket"]["capacity_per_week"] == 80 and teams["midmarket"]["peak_per_week"] == 1
    assert teams["midmarket"]["weeks_over_capacity"] == 0
