"""Experiments (the agreement's `experiments:`): which nurture leads go to Sales anyway, and the verdict.

Choices made here:
- A lead is taken into an experiment only when the agreement does not make it workable for a soft
  reason (score below the threshold, before its persona's handoff stage, too few BANT facts). A lead
  in a segment marked `workable: false` is never taken: such a segment says "never Sales' time"
  (a purchased list, or a segment the closed loop proved below the cold-call baseline). To try such
  a segment again, change the segment, not an experiment.
- The first experiment (in agreement order) whose dates hold the lead's local hand-off day and
  whose `when:` matches takes it; `score_at_least`/`score_below` compare the lead's score.
- Verdict: the 95% Wilson interval of the experiment's opportunity rate against the agreement's
  `opportunity_rate_target`: `above` once the interval's low bound is above the target, `below`
  once its high bound is under it, else `too_early` (`no_target` when the agreement sets none).

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sla.agreement import Agreement, Experiment
from sla.closed_loop import rate, wilson
from sla.lead import LeadIn
from sla.qualification import Decision, matches

VERDICTS = ("above", "below", "too_early", "no_target")


def hard_excluded(agreement: Agreement, decision: Decision) -> bool:
    """The lead is in a segment the agreement marks `workable: false`."""
    segments = agreement.qualification.segments
    return decision.segment is not None and not segments[decision.segment].workable


def running(experiment: Experiment, day: date) -> bool:
    """Whether `day` (a local date) is within the experiment's dates, both ends included."""
    return experiment.start <= day <= experiment.end


def candidates(agreement: Agreement, lead: LeadIn, decision: Decision, day: date) -> list[Experiment]:
    """The experiments that would take this lead on local day `day`, in agreement order (the first
    one with room left takes it)."""
    if decision.workable or hard_excluded(agreement, decision):
        return []
    return [e for e in agreement.experiments if running(e, day) and matches(e.when, lead, decision.score)]


def phase(experiment: Experiment, day: date) -> str:
    """`not_started`, `running` or `ended` on local day `day`."""
    if day < experiment.start:
        return "not_started"
    return "running" if day <= experiment.end else "ended"


def verdict(interval: tuple[float, float] | None, target: float | None) -> str:
    if target is None:
        return "no_target"
    if interval is None:
        return "too_early"
    low, high = interval
    if low > target:
        return "above"
    if high < target:
        return "below"
    return "too_early"


@dataclass(frozen=True)
class Result:
    """One experiment's numbers: leads sent to Sales and how many became opportunities."""

    experiment: Experiment
    leads: int
    opportunities: int
    target: float | None
    phase: str

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson(self.opportunities, self.leads)

    @property
    def verdict(self) -> str:
        return verdict(self.interval, self.target)

    def to_json(self) -> dict[str, Any]:
        interval = self.interval
        e = self.experiment
        return {"key": e.key, "name": e.label, "start": e.start.isoformat(), "end": e.end.isoformat(),
                "limit": e.limit, "phase": self.phase, "leads": self.leads, "opportunities": self.opportunities,
                "opportunity_rate": rate(self.opportunities, self.leads),
                "interval": [interval[0], interval[1]] if interval is not None else None,
                "target": self.target, "verdict": self.verdict}


def _pct(value: float) -> str:
    text = f"{value * 100:.1f}"
    return f"{text.removesuffix('.0')}%"


def sentence(data: dict[str, Any]) -> str:
    """One experiment's line in plain words (the digest, `slabot analyze --from-db`)."""
    phase_words = {"not_started": f"starts {data['start']}", "running": f"runs until {data['end']}",
                   "ended": f"ended {data['end']}"}[data["phase"]]
    head = (f"{data['name']} ({phase_words}): {data['leads']:,} of up to {data['limit']:,} leads sent to "
            f"Sales, {data['opportunities']:,} became opportunities")
    interval = data["interval"]
    if interval is None:
        return f"{head}. Too early to judge: no lead yet."
    rate_text = (f"{_pct(data['opportunity_rate'])} (95% interval {_pct(interval[0])} to "
                 f"{_pct(interval[1])})")
    target = data["target"]
    if target is None:
        return f"{head}: {rate_text}. No opportunity rate target in the agreement to judge it against."
    words = {"above": f"Above the {_pct(target)} target: these leads are worth Sales' time.",
             "below": f"Below the {_pct(target)} target: these leads are not worth Sales' time.",
             "too_early": f"Too early to judge against the {_pct(target)} target."}[data["verdict"]]
    return f"{head}: {rate_text}. {words}"


def tier_for(agreement: Agreement, lead: LeadIn, score: int) -> str:
    """The service tier an experiment lead gets: the first tier that matches, as for a workable lead
    (the last tier matches every lead: checked)."""
    return next(t.key for t in agreement.sales.tiers if matches(t.when, lead, score))
