"""Is this lead workable, what is it worth, and which tier of service does it get: with reasons."""

from __future__ import annotations

from dataclasses import dataclass, field

from sla.agreement import Agreement, Condition
from sla.keys import segment_key
from sla.lead import LeadIn


@dataclass(frozen=True)
class Decision:
    workable: bool
    score: int
    value: float
    tier: str | None
    persona: str | None
    segment: int | None
    #: Every scoring rule that counted, e.g. "+30 demo_requested".
    score_reasons: list[str] = field(default_factory=list)
    #: Why the lead is (not) workable, in the order the checks ran.
    reasons: list[str] = field(default_factory=list)
    #: The first check that failed, for the nurture count by reason.
    nurture_reason: str | None = None


def _one_of(wanted: str | list[str] | None, actual: str | None) -> bool:
    if wanted is None:
        return True
    if actual is None:
        return False
    if isinstance(wanted, str):
        return actual.lower() == wanted.lower()
    return actual.lower() in {o.lower() for o in wanted}


def _same_key(wanted: str | list[str] | None, actual: str | None) -> bool:
    """`source` and `offer` compare as segment keys (contract: normalized values match)."""
    if wanted is None:
        return True
    options = [wanted] if isinstance(wanted, str) else wanted
    key = segment_key(actual)
    return key is not None and key in {segment_key(o) for o in options}


def matches(when: Condition, lead: LeadIn, score: int | None = None) -> bool:
    """Every key of the condition must hold; an unknown fact (say, no employee count) never matches.
    (Checked in turn, the first that fails ends it: intake runs this a dozen times per lead.)"""
    employees = lead.employees
    return bool(
        (when.activity is None or when.activity in lead.activity_types())
        and (when.page_visits_at_least is None or lead.page_visits >= when.page_visits_at_least)
        and (when.employees_between is None or (
            employees is not None and when.employees_between[0] <= employees <= when.employees_between[1]))
        and (when.employees_at_least is None or (employees is not None and employees >= when.employees_at_least))
        and (when.employees_at_most is None or (employees is not None and employees <= when.employees_at_most))
        and (when.score_at_least is None or (score is not None and score >= when.score_at_least))
        and (when.score_below is None or (score is not None and score < when.score_below))
        and _same_key(when.source, lead.source)
        and _same_key(when.offer, lead.offer)
        and _one_of(when.campaign, lead.campaign)
        and _one_of(when.country, lead.country)
        and _one_of(when.stage, lead.stage)
        and (when.title_contains is None or (
            lead.title is not None and when.title_contains.lower() in lead.title.lower()))
    )


def _describe(when: Condition) -> str:
    return ", ".join(f"{k}={v}" for k, v in when.model_dump(exclude_none=True).items()) or "any lead"


def score_lead(agreement: Agreement, lead: LeadIn) -> tuple[int, list[str]]:
    score, reasons = 0, []
    for rule in agreement.qualification.scoring:
        if matches(rule.when, lead):
            score += rule.points
            reasons.append(f"{rule.points:+d} {_describe(rule.when)}")
    return score, reasons


def qualify(agreement: Agreement, lead: LeadIn) -> Decision:
    """The pure decision. Every check runs (so the card can show all reasons); the first failure
    is the nurture reason."""
    q = agreement.qualification
    score, score_reasons = score_lead(agreement, lead)
    reasons: list[str] = []
    failures: list[str] = []

    if score >= q.score_threshold:
        reasons.append(f"score {score} >= threshold {q.score_threshold}")
    else:
        reasons.append(f"score {score} < threshold {q.score_threshold}")
        failures.append("score_below_threshold")

    persona = next((p for p in q.personas if matches(p.when, lead)), None)
    if persona is None:
        reasons.append("no persona matched: no buying-stage gate")
    else:
        stage_rank = q.stages.index(lead.stage) if lead.stage in q.stages else -1
        needed = q.stages.index(persona.handoff_stage)
        if stage_rank >= needed:
            reasons.append(f"persona {persona.key} at stage {lead.stage} (handoff at {persona.handoff_stage})")
        else:
            shown = lead.stage or "unknown"
            reasons.append(f"persona {persona.key} at stage {shown}, before handoff stage {persona.handoff_stage}")
            failures.append("before_handoff_stage")

    known = lead.bant.known()
    if len(known) >= q.bant.minimum:
        reasons.append(f"BANT {len(known)}/4 known ({', '.join(known) or 'none'}), minimum {q.bant.minimum}")
    else:
        reasons.append(f"BANT {len(known)}/4 known, below minimum {q.bant.minimum}")
        failures.append("bant_below_minimum")

    segment_index = next((i for i, s in enumerate(q.segments) if matches(s.when, lead)), None)
    value = q.default_value
    if segment_index is not None:
        segment = q.segments[segment_index]
        if segment.value is not None:
            value = segment.value
        if not segment.workable:
            reasons.append(f"segment {_describe(segment.when)} is not workable")
            failures.append("segment_not_workable")

    workable = not failures
    tier = None
    if workable:
        tier = next(t.key for t in agreement.sales.tiers if matches(t.when, lead, score))
        reasons.append(f"tier {tier}")
    return Decision(
        workable=workable,
        score=score,
        value=value if workable else 0.0,
        tier=tier,
        persona=persona.key if persona else None,
        segment=segment_index,
        score_reasons=score_reasons,
        reasons=reasons,
        nurture_reason=failures[0] if failures else None,
    )


def route_team(agreement: Agreement, lead: LeadIn) -> str:
    """The first matching routing rule picks the team (the last rule always matches: checked)."""
    return next(r.team for r in agreement.routing.rules if matches(r.when, lead))
