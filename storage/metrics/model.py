"""The typed status model: every number of `storage.metrics.status`, as `GET /api/v1/status` sends it.

`Status.model_dump(mode="json")` is the Status JSON of docs/status.md, key for key (instants as
UTC ISO 8601 with a ``Z``, days as ``YYYY-MM-DD``); consumers read the attributes. Fractions are
0..1 (None when their denominator is 0), durations business minutes (``..._s``: seconds), money
in the agreement's currency.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, PlainSerializer


def iso(at: dt.datetime) -> str:
    """An instant as UTC ISO 8601 with a ``Z`` (the Status JSON's form)."""
    return at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


#: An instant; serialized as UTC ISO 8601 with a ``Z`` (also by `model_dump()`).
Instant = Annotated[dt.datetime, PlainSerializer(iso, return_type=str)]
#: A local calendar day; serialized as ``YYYY-MM-DD``.
Day = Annotated[dt.date, PlainSerializer(dt.date.isoformat, return_type=str)]


class _Numbers(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PeriodStatus(_Numbers):
    """The local calendar month containing `as_of`."""

    start: Instant
    end: Instant
    #: Business time from `start` to `as_of` / business time of the whole month (0..1).
    elapsed: float
    business_minutes_elapsed: float
    business_minutes_total: float


class Mix(_Numbers):
    """Workable MTD leads by source and by offer (most first; a missing one is ``unknown``)."""

    source: dict[str, int]
    offer: dict[str, int]


class Marketing(_Numbers):
    """What Marketing delivered this month to date."""

    leads: int
    workable: int
    goal: int
    active_reps: int
    pace: float | None
    projected: float | None
    value: float
    value_goal: float | None
    nurture: int
    by_source: dict[str, int]
    mix: Mix
    #: Workable MTD leads per rep of the scope (0 included).
    per_rep: dict[str, int]


class RepSales(_Numbers):
    """One rep's share of the Sales cohort."""

    cohort: int
    worked_pct: float | None
    within_sla_pct: float | None
    attempts_per_lead: float | None
    connect_rate: float | None
    cadence_met_pct: float | None
    open_breaches: int


class Sales(_Numbers):
    """How Sales worked the month's cohort (leads past their first-touch deadline, or touched)."""

    cohort: int
    worked: int
    worked_pct: float | None
    within_sla: int
    within_sla_pct: float | None
    speed_to_lead_p50: float | None
    speed_to_lead_p90: float | None
    system_delay_p50_s: float | None
    system_delay_p95_s: float | None
    attempts: int
    attempts_per_lead: float | None
    recycled: int
    cadence_met_pct: float | None
    connected: int
    connect_rate: float | None
    opportunities: int
    opportunity_rate: float | None
    opportunity_rate_target: float | None
    opportunity_rate_first_touch_met: float | None
    opportunity_rate_first_touch_missed: float | None
    pipeline_value: float
    open_breaches: int
    per_rep: dict[str, RepSales]
    #: The 95% Wilson interval of `opportunity_rate` ([low, high]; None when no workable lead).
    opportunity_rate_interval: list[float] | None = None
    #: `marketing.cold_call_baseline_rate` of the agreement (None when it sets none).
    cold_call_baseline_rate: float | None = None
    #: ``above``, ``below`` or ``unclear`` (the interval holds it); None without a target or a rate.
    opportunity_rate_vs_target: str | None = None
    #: The same against the cold-call baseline.
    opportunity_rate_vs_baseline: str | None = None


class Breach(_Numbers):
    """An open lead whose original first-touch deadline passed without a first touch."""

    lead_id: int
    name: str
    company: str | None
    owner: str | None
    owner_name: str | None
    team: str | None
    tier: str | None
    #: The original deadline (`sla_due`).
    due: Instant
    #: The current owner's first-touch deadline.
    owner_due: Instant | None
    minutes_overdue: float


class Segment(_Numbers):
    """The results of one (source, offer) segment."""

    source: str | None
    offer: str | None
    leads: int
    workable: int
    opportunities: int
    won: int
    bookings: float
    value_per_lead: float


class BelowBaseline(_Numbers):
    """A segment whose opportunity rate is surely below the cold-call baseline: the upper bound of
    its 95% Wilson interval is below it."""

    source: str | None
    offer: str | None
    leads: int
    opportunities: int
    #: `opportunities` / `leads`.
    opportunity_rate: float
    #: [low, high].
    interval: list[float]


class FirstTouchSide(_Numbers):
    """The cohort leads whose first touch met (or missed) the SLA, and what they became."""

    leads: int
    opportunities: int
    opportunity_rate: float | None
    #: The 95% Wilson interval of `opportunity_rate` ([low, high]; None with no leads).
    interval: list[float] | None
    #: Sum of the opportunity amounts of those opportunities.
    pipeline: float
    #: `pipeline` / `leads` (None with no leads).
    pipeline_per_lead: float | None


class FirstTouchSplit(_Numbers):
    """Does the SLA pay: the cohort split by first touch within the SLA or not."""

    met: FirstTouchSide
    missed: FirstTouchSide


class ClosedLoop(_Numbers):
    """Results per (source, offer) and the opportunity rate split by first touch met or missed."""

    start: Instant
    segments: list[Segment]
    first_touch_met_leads: int
    first_touch_missed_leads: int
    opportunity_rate_first_touch_met: float | None
    opportunity_rate_first_touch_missed: float | None
    #: `marketing.cold_call_baseline_rate` (None when the agreement sets none).
    cold_call_baseline_rate: float | None = None
    #: The first-touch split with opportunities, intervals and pipeline per lead.
    first_touch: FirstTouchSplit | None = None
    #: The segments below the cold-call baseline, most leads first (empty without a baseline).
    below_baseline: list[BelowBaseline] = []


class RepCapacity(_Numbers):
    delivered: int
    capacity: int
    utilization: float | None


class Capacity(_Numbers):
    """Workable leads routed this local week against the active reps' weekly capacity."""

    week_start: Instant
    week_end: Instant
    delivered: int
    capacity: int
    utilization: float | None
    per_rep: dict[str, RepCapacity]


class RejectedRow(_Numbers):
    reason: str
    source: str
    count: int


class Rejected(_Numbers):
    """The month's leads Sales disqualified by `as_of`, by reason and by source."""

    total: int
    by_reason: dict[str, int]
    by_source: dict[str, int]
    rows: list[RejectedRow]


class BreachedLead(_Numbers):
    lead_id: int
    name: str
    owner: str | None
    team: str | None
    due: Instant


class Yesterday(_Numbers):
    """Highlights of one local day, as known at `as_of`."""

    date: Day
    workable: int
    nurture: int
    first_touches: int
    first_touches_within_sla: int
    opportunities: int
    opportunity_amount: float
    breaches: int
    breached: list[BreachedLead]


class ExperimentStatus(_Numbers):
    """One experiment of the agreement: its leads and how many became opportunities."""

    key: str
    name: str
    start: str
    end: str
    limit: int
    phase: str
    leads: int
    opportunities: int
    opportunity_rate: float | None
    interval: list[float] | None
    target: float | None
    verdict: str


class Status(_Numbers):
    """Every number of DESIGN.md 2.7 for one instant and scope (docs/status.md)."""

    as_of: Instant
    scope: str
    period: PeriodStatus
    marketing: Marketing
    sales: Sales
    #: The open breaches, oldest deadline first, at most BREACH_LIST_LIMIT.
    breaches: list[Breach]
    closed_loop: ClosedLoop
    capacity: Capacity
    rejected: Rejected
    yesterday: Yesterday
    experiments: list[ExperimentStatus]
