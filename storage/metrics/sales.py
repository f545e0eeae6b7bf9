"""Sales' numbers: the month's cohort (DESIGN.md 2.7), counted per owner in one scan of the covering
indexes, and the speed-to-lead and system-delay percentiles."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col

from sla.agreement import Agreement
from sla.lifecycle import State
from sla.metrics import fraction, minutes, money
from storage.metrics.intervals import interval, versus
from storage.metrics.model import RepSales, Sales
from storage.metrics.period import Period, Scope
from storage.metrics.sql import (
    _attempts_as_of,
    _connected_as_of,
    _count_if,
    _met,
    _per_lead,
    _percentiles,
    _required_attempts,
    _run,
    _sum,
    _touched,
    _workable,
)
from storage.tables import Lead


def _cohort(period: Period) -> list[ColumnElement[bool]]:
    """DESIGN.md 2.7's Sales cohort as of `period.as_of` (see the module docstring)."""
    return [
        _workable(),
        col(Lead.routed_at) >= period.start,
        col(Lead.routed_at) <= period.as_of,
        sa.or_(col(Lead.sla_due) < period.as_of, _touched(period.as_of)),
    ]


def _sales(agreement: Agreement, scope: Scope, per_owner: dict[str | None, _CohortCounts],
           distributions: _Distributions, *, workable_mtd: int, opportunities: int, pipeline: float,
           breaches: dict[str | None, int]) -> Sales:
    """Sales' numbers from the cohort's counts per owner (`_cohort_counts`), its speed-to-lead and
    system-delay distributions (`_distributions`), Marketing's workable MTD leads and their
    opportunities, and the open breaches per owner (`breaches._breach_counts`)."""
    total = _CohortCounts()
    for counts in per_owner.values():
        total += counts
    speed_p50, speed_p90 = distributions.speed
    delay_p50, delay_p95 = distributions.delay
    per_rep = {r.key: _CohortCounts().rates(breaches.get(r.key, 0)) for r in scope.reps}
    for owner, counts in per_owner.items():
        if owner is not None:
            per_rep[owner] = counts.rates(breaches.get(owner, 0))
    return Sales(
        cohort=total.cohort,
        worked=total.worked,
        worked_pct=fraction(total.worked, total.cohort),
        within_sla=total.met,
        within_sla_pct=fraction(total.met, total.cohort),
        speed_to_lead_p50=minutes(speed_p50),
        speed_to_lead_p90=minutes(speed_p90),
        system_delay_p50_s=minutes(delay_p50),
        system_delay_p95_s=minutes(delay_p95),
        attempts=total.attempts,
        attempts_per_lead=_per_lead(total.attempts, total.cohort),
        recycled=total.recycled,
        cadence_met_pct=fraction(total.cadence_met, total.recycled),
        connected=total.connected,
        connect_rate=fraction(total.connected, total.worked),
        opportunities=opportunities,
        opportunity_rate=fraction(opportunities, workable_mtd),
        opportunity_rate_target=agreement.marketing.opportunity_rate_target,
        opportunity_rate_first_touch_met=fraction(total.opportunities_met, total.met),
        opportunity_rate_first_touch_missed=fraction(total.opportunities_missed, total.cohort - total.met),
        pipeline_value=money(pipeline),
        open_breaches=sum(breaches.values()),
        per_rep=per_rep,
        opportunity_rate_interval=interval(opportunities, workable_mtd),
        cold_call_baseline_rate=agreement.marketing.cold_call_baseline_rate,
        opportunity_rate_vs_target=versus(opportunities, workable_mtd, agreement.marketing.opportunity_rate_target),
        opportunity_rate_vs_baseline=versus(opportunities, workable_mtd,
                                            agreement.marketing.cold_call_baseline_rate),
    )


@dataclass
class _CohortCounts:
    cohort: int = 0
    worked: int = 0
    met: int = 0
    attempts: int = 0
    connected: int = 0
    recycled: int = 0
    cadence_met: int = 0
    opportunities_met: int = 0
    opportunities_missed: int = 0

    def __iadd__(self, other: _CohortCounts) -> _CohortCounts:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    def __add__(self, other: _CohortCounts) -> _CohortCounts:
        total = _CohortCounts()
        total += self
        total += other
        return total

    def rates(self, open_breaches: int) -> RepSales:
        return RepSales(
            cohort=self.cohort,
            worked_pct=fraction(self.worked, self.cohort),
            within_sla_pct=fraction(self.met, self.cohort),
            attempts_per_lead=_per_lead(self.attempts, self.cohort),
            connect_rate=fraction(self.connected, self.worked),
            cadence_met_pct=fraction(self.cadence_met, self.recycled),
            open_breaches=open_breaches,
        )


def _cohort_counts(session: Session, agreement: Agreement, period: Period, scope: Scope, *,
                   cohort: int | None = None) -> dict[str | None, _CohortCounts]:
    """The Sales cohort's counts, one row per current owner (summed by the caller).

    Two parts, so that no sort is needed for the grouping: the scope's reps through the covering
    index `ix_lead_owner_routed_metrics` (owner, routed_at, ...), one range of `routed_at` per rep,
    already in owner order; and every other owner (none, or one the agreement no longer lists for
    the scope) through `ix_lead_routed_metrics`. Together they are exactly the scope's cohort. The
    second part scans the whole cohort to find those few leads, so it is skipped when the caller
    gives the `cohort`'s size (`_distributions`) and the reps' counts already add up to it."""
    as_of = period.as_of
    touched = _touched(as_of)
    met = _met(as_of)
    attempts = _attempts_as_of(as_of)
    recycled = sa.and_(col(Lead.state) == State.RECYCLED.value, col(Lead.closed_at) <= as_of)
    opportunity = col(Lead.opportunity_at) <= as_of
    def counts(*owners: ColumnElement[bool]) -> Any:
        return _run(session, sa.select(
            col(Lead.owner),
            sa.func.count().label("cohort"),
            _count_if(touched).label("worked"),
            _count_if(met).label("met"),
            _sum(attempts).label("attempts"),
            _count_if(sa.and_(touched, _connected_as_of(as_of))).label("connected"),
            _count_if(recycled).label("recycled"),
            _count_if(sa.and_(recycled, attempts >= _required_attempts(agreement))).label("cadence_met"),
            _count_if(sa.and_(opportunity, met)).label("opportunities_met"),
            _count_if(sa.and_(opportunity, sa.not_(met))).label("opportunities_missed"),
        ).where(*owners, *_cohort(period), *scope.where(driven_by="routed_at")).group_by(col(Lead.owner))).all()

    reps = [r.key for r in scope.reps]
    rows = counts(col(Lead.owner).in_(reps)) if reps else []
    if cohort is None or sum(int(row.cohort) for row in rows) < cohort:
        rows = [*rows, *counts(_other_owner(reps))]
    return {
        row.owner: _CohortCounts(
            cohort=int(row.cohort), worked=int(row.worked), met=int(row.met),
            attempts=int(row.attempts), connected=int(row.connected), recycled=int(row.recycled),
            cadence_met=int(row.cadence_met), opportunities_met=int(row.opportunities_met),
            opportunities_missed=int(row.opportunities_missed))
        for row in rows
    }


def _other_owner(reps: Sequence[str]) -> ColumnElement[bool]:
    """A lead whose owner is none or not one of `reps` (every lead when there are no reps)."""
    owner = col(Lead.owner)
    return sa.or_(owner.is_(None), owner.not_in(reps)) if reps else sa.true()


@dataclass(frozen=True)
class _Distributions:
    """The Sales cohort's speed to lead (p50, p90) and system delay (p50, p95) percentiles, and the
    size of the cohort (all of it: touched or not, card posted or not)."""

    speed: list[float | None]
    delay: list[float | None]
    cohort: int


def _distributions(session: Session, period: Period, scope: Scope) -> _Distributions:
    """The percentiles, each from the database's sort of the cohort's values through
    `ix_lead_routed_metrics` (`sql._percentiles`): speed to lead over the touched leads (whole
    minutes as its first pass's buckets), system delay over those whose card was posted by `as_of`
    (tenths of a second). Each is a sort of the rows it counts, the dearest part of `status()` after
    the hand-off scan's. The delay's first pass counts the whole cohort (the leads it does not count
    under NULL), which costs little and gives the cohort's size: `_cohort_counts` compares it with
    its reps' counts to know whether leads of other owners need a scan of their own."""
    as_of = period.as_of
    cohort = [*_cohort(period), *scope.where(driven_by="routed_at")]
    speed = col(Lead.speed_to_lead_min)
    speeds, _ = _percentiles(session, speed, [*cohort, _touched(as_of), speed.is_not(None)], (0.5, 0.9))
    delays, size = _percentiles(session, col(Lead.system_delay_s), cohort, (0.5, 0.95),
                                counted=col(Lead.card_posted_at) <= as_of, per_unit=10)
    return _Distributions(speed=speeds, delay=delays, cohort=size)
