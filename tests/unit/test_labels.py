"""commands/labels.py: identifiers become phrases, numbers carry their meaning."""

from __future__ import annotations

import pytest

from commands import labels
from sla.agreement import Agreement
from sla.lead import LeadIn
from sla.qualification import qualify


@pytest.mark.parametrize(("key", "phrase"), [
    ("no_budget", "No budget"), ("bad_contact_data", "Bad contact data"),
    ("student_or_job_seeker", "Student or job seeker"), ("competitor", "Chose a competitor"),
    ("went_dark", "Went dark"),                      # agreement-defined, no phrase: by rule
    ("  spaced__out_ ", "Spaced out"), (None, "n/a"),
])
def test_disqualify_reasons(key: str | None, phrase: str) -> None:
    assert labels.disqualify_reason(key) == phrase


def test_every_family_has_phrases_and_falls_back_by_rule() -> None:
    assert labels.state("qualified") == "Qualified (opportunity)" and labels.state("claimed") == "Claimed"
    assert labels.source("demo_request") == "Demo request" and labels.source("podcast_ad") == "Podcast ad"
    assert labels.offer("product_demo") == "Product demo"
    assert labels.offer("webinar: Scheduling at scale") == "Webinar: Scheduling at scale"
    assert labels.activity("pricing_page_viewed") == "Viewed the pricing page"
    assert labels.role("marketing_vp") == "VP Marketing" and labels.role("sales_vp") == "VP Sales"
    assert labels.tier("hot") == "Hot" and labels.tier("platinum_plus") == "Platinum plus"
    assert labels.persona("mid_market") == "Mid-market" and labels.stage("solution_research") == "Solution research"
    assert labels.nurture_reason("bant_below_minimum") == "Too few BANT facts known"


def test_bant_facts() -> None:
    assert labels.bant_fact("authority", True) == "Authority known"
    assert labels.bant_fact("budget", 50000) == "Budget: 50,000"
    assert labels.bant_fact("need", "cut costs") == "Need: cut costs"
    assert labels.bant_fact("authority", False) is None and labels.bant_fact("budget", None) is None
    assert labels.bant_summary({"budget": True, "authority": None, "timeframe": "Q1"}) == "Budget known; Timeframe: Q1"
    assert labels.bant_summary({}) == "None known"


@pytest.mark.parametrize(("text", "phrase"), [
    ("15m", "15 min"), ("2h", "2 h"), ("1h30m", "1 h 30 min"), ("5d", "5 business days"), ("1d", "1 business day"),
    ("soon", "soon"),
])
def test_durations(text: str, phrase: str) -> None:
    assert labels.duration(text) == phrase


def test_numbers_keep_their_value_and_gain_their_meaning() -> None:
    assert labels.percent(0.81) == "81%" and labels.percent(None) == "n/a"
    assert labels.money(310000) == "$310,000" and labels.money(98000.4, "EUR") == "€98,000"
    assert labels.money(1200, "CHF") == "1,200 CHF" and labels.money(-500) == "-$500"
    assert labels.business_time(9.4) == "9 min" and labels.business_time(95) == "1 h 35 min"
    assert labels.business_time(120) == "2 h" and labels.business_time(None) == "n/a"
    assert labels.count_of(1, "lead") == "1 lead" and labels.count_of(104, "lead") == "104 leads"
    assert labels.pace(141.8, 200) == "on pace for 142 of 200" and labels.pace(None, 200) == "no pace yet"
    assert labels.nudge_step(2.0, ["manager", "marketing_vp"], True) == (
        "at 200% of the first-touch window: tell the manager and VP Marketing, and reassign the lead")


def test_the_reasons_qualification_writes_read_as_sentences(agreement: Agreement) -> None:
    decision = qualify(agreement, LeadIn.model_validate({
        "email": "a@b.example", "employees": 200, "stage": "education", "source": "list_purchase",
        "activities": [{"type": "demo_requested"}], "page_visits": 25, "bant": {"need": "x"}}))
    phrases = [labels.qualification_reason(r) for r in decision.reasons]
    assert phrases == [
        "Score 40, at or above the threshold of 20",
        "SMB buyer at the education stage, before solution research (the handoff stage)",
        "Only 1 of 4 BANT facts known; 2 needed",
        "Segment not workable (source Purchased list)",
    ]
    assert [labels.score_reason(r) for r in decision.score_reasons] == [
        "+30 requested a demo", "+10 20+ page visits"]
    assert labels.qualification_reason("tier hot") == "Hot tier"
    assert labels.qualification_reason("a reason written for people") == "a reason written for people"
