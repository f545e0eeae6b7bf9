"""Qualification: score with negative points, persona x stage, BANT, segments, tiers: with reasons."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sla.agreement import Agreement
from sla.lead import LeadIn
from sla.qualification import qualify, route_team
from tests.conftest import EXAMPLE_LEAD


def make(**changes: Any) -> LeadIn:
    body = json.loads(EXAMPLE_LEAD.read_text())
    body.update(changes)
    return LeadIn.model_validate(body)


def test_example_lead_is_hot_midmarket_with_every_reason(agreement: Agreement) -> None:
    d = qualify(agreement, make())
    assert (d.workable, d.score, d.tier, d.value, d.persona) == (True, 50, "hot", 2400.0, "mid_market")
    assert d.score_reasons == ["+30 activity=demo_requested", "+10 activity=pricing_page_viewed",
                               "+10 page_visits_at_least=20"]
    assert d.reasons[0] == "score 50 >= threshold 20"
    assert route_team(agreement, make()) == "midmarket"


def test_negative_points_can_sink_a_lead_below_threshold(agreement: Agreement) -> None:
    lead = make(activities=[{"type": "webinar_attended"}, {"type": "pricing_page_viewed"},
                            {"type": "careers_page_viewed"}], page_visits=3)
    d = qualify(agreement, lead)   # 10 + 10 - 20 = 0
    assert d.score == 0 and not d.workable and d.nurture_reason == "score_below_threshold"
    assert "-20 activity=careers_page_viewed" in d.score_reasons


def test_threshold_is_inclusive(agreement: Agreement) -> None:
    lead = make(activities=[{"type": "webinar_attended"}, {"type": "pricing_page_viewed"}], page_visits=0)
    assert qualify(agreement, lead).score == 20 and qualify(agreement, lead).workable


def test_persona_before_handoff_stage_goes_to_nurture(agreement: Agreement) -> None:
    d = qualify(agreement, make(stage="education"))
    assert not d.workable and d.nurture_reason == "before_handoff_stage"
    assert any("before handoff stage solution_research" in r for r in d.reasons)
    assert qualify(agreement, make(stage="evaluation")).workable   # later stages pass


def test_unknown_stage_for_a_persona_is_not_handed_off(agreement: Agreement) -> None:
    assert qualify(agreement, make(stage=None)).nurture_reason == "before_handoff_stage"


def test_no_persona_means_no_stage_gate(agreement: Agreement) -> None:
    d = qualify(agreement, make(employees=50_000, stage=None))
    assert d.workable and d.persona is None


@pytest.mark.parametrize(("bant", "workable"), [
    ({"need": "x", "budget": True}, True),
    ({"need": "x", "budget": False, "timeframe": None, "authority": ""}, False),
    ({"need": "unknown", "budget": "no"}, False),
    ({}, False),
])
def test_bant_minimum(agreement: Agreement, bant: dict[str, Any], workable: bool) -> None:
    d = qualify(agreement, make(bant=bant))
    assert d.workable is workable
    if not workable:
        assert d.nurture_reason == "bant_below_minimum"


def test_segment_value_and_not_workable_segment(agreement: Agreement) -> None:
    assert qualify(agreement, make(source="webinar")).value == 900
    assert qualify(agreement, make(source="partner")).value == 500       # default_value
    d = qualify(agreement, make(source="list_purchase"))
    assert not d.workable and d.nurture_reason == "segment_not_workable" and d.value == 0


def test_standard_tier_below_40(agreement: Agreement) -> None:
    lead = make(activities=[{"type": "demo_requested"}], page_visits=0)   # 30
    assert qualify(agreement, lead).tier == "standard"


def test_routing_first_match_wins(agreement: Agreement) -> None:
    assert route_team(agreement, make(employees=999)) == "smb"
    assert route_team(agreement, make(employees=1000)) == "midmarket"
    assert route_team(agreement, make(employees=None)) == "smb"   # unknown size never matches a size rule
