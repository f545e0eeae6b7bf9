"""Experiments in the agreement: what `slabot check` says about them, which leads they take, and the
verdict against the opportunity rate target (sla/experiments.py)."""

from __future__ import annotations

from datetime import date

import pytest

from sla.agreement import AgreementError, parse_agreement
from sla.closed_loop import wilson
from sla.experiments import Result, candidates, phase, sentence, verdict
from sla.lead import LeadIn
from sla.qualification import qualify
from tests.conftest import EXAMPLE_AGREEMENT

EXAMPLE = EXAMPLE_AGREEMENT.read_text(encoding="utf-8")
TRIAL = """
experiments:
  - key: justify-ebook
    name: Justify-the-purchase e-book
    when: {offer: justify_purchase_ebook}
    limit: 500
    start: 2026-11-23
    end: 2026-12-31
"""
#: An SMB lead at the handoff stage with two BANT facts, whose only activity scores 5 (< 20).
EBOOK = {"external_id": "x", "employees": 50, "stage": "solution_research", "offer": "Justify Purchase eBook",
         "activities": [{"type": "ebook_downloaded"}], "bant": {"need": "yes", "budget": "yes"}}


def problems(extra: str) -> list[str]:
    with pytest.raises(AgreementError) as caught:
        parse_agreement(EXAMPLE + extra)
    return [f"{p.path}: {p.message} (line {p.line})" for p in caught.value.problems]


def test_a_valid_experiment_is_accepted_with_its_fields() -> None:
    agreement = parse_agreement(EXAMPLE + TRIAL)
    (trial,) = agreement.experiments
    assert (trial.key, trial.limit, trial.start, trial.end) == ("justify-ebook", 500, date(2026, 11, 23),
                                                                date(2026, 12, 31))
    assert trial.label == "Justify-the-purchase e-book" and agreement.experiment("justify-ebook") is trial
    assert parse_agreement(EXAMPLE).experiments == []


def test_check_names_each_bad_field_with_its_line() -> None:
    lines = EXAMPLE.count("\n")
    found = problems("""
experiments:
  - {key: a, when: {offer: x}, limit: 0, start: 2026-11-01, end: 2026-11-30}
  - {key: b, when: {offer: x}, limit: 5, start: 2026-13-01, end: 2026-11-30}
  - {key: c, when: {offer: x, colour: red}, limit: 5, start: 2026-11-01, end: 2026-11-30}
""")
    assert any(p.startswith("experiments[0].limit: Input should be greater than 0") for p in found), found
    assert any(p.startswith("experiments[1].start:") for p in found), found
    assert any(p.startswith("experiments[2].when.colour: unknown field") for p in found), found
    assert any(f"(line {lines + 3})" in p for p in found if p.startswith("experiments[0]")), found


def test_check_wants_unique_keys_end_after_start_and_a_real_condition() -> None:
    found = problems("""
experiments:
  - {key: a, when: {offer: x}, limit: 5, start: 2026-11-01, end: 2026-11-30}
  - {key: a, when: {offer: y}, limit: 5, start: 2026-11-30, end: 2026-11-30}
  - {key: c, when: {}, limit: 5, start: 2026-12-02, end: 2026-12-01}
""")
    assert "experiments[1].key: duplicate experiment key 'a'" in " ".join(found)
    assert any(p.startswith("experiments[1].end: end 2026-11-30 must be after start 2026-11-30") for p in found)
    assert any(p.startswith("experiments[2].end: end 2026-12-01 must be after start 2026-12-02") for p in found)
    assert any(p.startswith("experiments[2].when: matches every lead") for p in found)


def test_only_soft_nurture_leads_within_the_dates_are_candidates() -> None:
    agreement = parse_agreement(EXAMPLE + TRIAL)
    lead = LeadIn.model_validate(EBOOK)
    decision = qualify(agreement, lead)
    assert not decision.workable and decision.nurture_reason == "score_below_threshold"
    day = date(2026, 11, 24)
    assert [e.key for e in candidates(agreement, lead, decision, day)] == ["justify-ebook"]
    # both ends are days of the experiment; the days around them are not
    assert candidates(agreement, lead, decision, date(2026, 11, 23))
    assert candidates(agreement, lead, decision, date(2026, 12, 31))
    assert not candidates(agreement, lead, decision, date(2026, 11, 22))
    assert not candidates(agreement, lead, decision, date(2027, 1, 1))
    # another offer does not match
    other = LeadIn.model_validate({**EBOOK, "offer": "product_demo"})
    assert not candidates(agreement, other, qualify(agreement, other), day)
    # a workable lead needs no experiment
    workable = LeadIn.model_validate({**EBOOK, "activities": [{"type": "demo_requested"}]})
    decided = qualify(agreement, workable)
    assert decided.workable and not candidates(agreement, workable, decided, day)
    # a purchased list (a segment marked workable: false) is never sent, even when it matches
    bought = LeadIn.model_validate({**EBOOK, "source": "List Purchase"})
    assert qualify(agreement, bought).nurture_reason == "score_below_threshold"
    assert not candidates(agreement, bought, qualify(agreement, bought), day)


def test_phase_by_local_day() -> None:
    (trial,) = parse_agreement(EXAMPLE + TRIAL).experiments
    assert [phase(trial, date(2026, 11, d)) for d in (22, 23, 30)] == ["not_started", "running", "running"]
    assert phase(trial, date(2027, 1, 1)) == "ended"


def test_verdict_edges() -> None:
    # the interval must clear the target: a bound equal to it is not enough either way
    assert verdict((0.11, 0.3), 0.10) == "above"
    assert verdict((0.10, 0.3), 0.10) == "too_early"
    assert verdict((0.01, 0.09), 0.10) == "below"
    assert verdict((0.01, 0.10), 0.10) == "too_early"
    assert verdict((0.05, 0.2), 0.10) == "too_early"
    assert verdict(None, 0.10) == "too_early"
    assert verdict((0.5, 0.9), None) == "no_target"


def test_verdict_from_counts_against_the_wilson_interval() -> None:
    (trial,) = parse_agreement(EXAMPLE + TRIAL).experiments
    # 30 of 100: interval about 21.9% to 39.6%, above a 10% target
    above = Result(trial, leads=100, opportunities=30, target=0.10, phase="running")
    assert above.interval == wilson(30, 100) and above.verdict == "above"
    # 2 of 100: interval about 0.55% to 7.0%, below 10%
    assert Result(trial, leads=100, opportunities=2, target=0.10, phase="running").verdict == "below"
    # 1 of 5: 20% but the interval (3.6% to 62.4%) still holds 10%
    early = Result(trial, leads=5, opportunities=1, target=0.10, phase="running")
    assert early.verdict == "too_early" and early.to_json()["opportunity_rate"] == 0.2
    assert Result(trial, leads=0, opportunities=0, target=0.10, phase="not_started").to_json()["interval"] is None


def test_sentences_are_plain_words() -> None:
    (trial,) = parse_agreement(EXAMPLE + TRIAL).experiments
    above = sentence(Result(trial, leads=100, opportunities=30, target=0.10, phase="running").to_json())
    assert above == ("Justify-the-purchase e-book (runs until 2026-12-31): 100 of up to 500 leads sent to Sales, "
                     "30 became opportunities: 30% (95% interval 21.9% to 39.6%). Above the 10% target: these "
                     "leads are worth Sales' time.")
    below = sentence(Result(trial, leads=100, opportunities=2, target=0.10, phase="ended").to_json())
    assert "(ended 2026-12-31)" in below and "Below the 10% target: these leads are not worth" in below
    none = sentence(Result(trial, leads=0, opportunities=0, target=0.10, phase="not_started").to_json())
    assert none.endswith("(starts 2026-11-23): 0 of up to 500 leads sent to Sales, 0 became opportunities. "
                         "Too early to judge: no lead yet.")
    assert "_" not in above + below + none
