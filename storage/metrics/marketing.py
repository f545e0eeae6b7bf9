"""Marketing's numbers: one grouped scan of the month's handed-off leads (`_handoff_groups`), which
the closed loop folds too."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col

from sla.agreement import Agreement
from sla.metrics import DURATION_DIGITS, FRACTION_DIGITS, money, pace, projection, ratio
from storage.metrics.model import Marketing, Mix
from storage.metrics.period import Period, Scope
from storage.metrics.sql import (
    UNKNOWN,
    _add,
    _count_if,
    _handed_off_between,
    _run,
    _sorted_counts,
    _sum_if,
    _unindexed,
    _workable,
)
from storage.tables import Lead


@dataclass(frozen=True)
class _HandoffGroup:
    """The counts of one (source, offer) group of handed-off leads."""

    source: str | None
    offer: str | None
    leads: int
    workable: int
    value: float                 # over workable leads
    opportunities: int           # workable leads with an opportunity by as_of
    pipeline: float              # their opportunity amounts
    any_opportunities: int       # any lead (workable or not) with an opportunity by as_of
    won: int
    bookings: float


def _handoff_groups(session: Session, start: datetime, as_of: datetime,
                    scope: Scope) -> tuple[list[_HandoffGroup], dict[str, int]]:
    """The leads handed off in ``[start, as_of]``, counted per (source, offer): one scan of the
    covering index `ix_lead_handoff_metrics`, a few groups, folded by `_marketing` and
    `_closed_loop_of`. The workable leads per owner come with them: the scope's reps as one count
    each in the same scan (grouping by owner too made SQLite's sort of the month's rows twice as
    dear), the rare other owners (none, or one no longer listed) in a second, filtered query, run
    only when the scan counted some.
    The rejected leads have their own query (`rejected._rejected_counts`)."""
    workable = _workable()
    opportunity = col(Lead.opportunity_at) <= as_of
    workable_opportunity = sa.and_(opportunity, workable)   # the rarer test first: SQLite stops there
    won = col(Lead.won_at) <= as_of
    in_range = [*_handed_off_between(start, as_of), *scope.where(driven_by="handed_off_at")]
    reps = [r.key for r in scope.reps]

    def other_owner(owner: Any) -> ColumnElement[bool]:
        return sa.and_(owner.is_not(None), *([owner.not_in(reps)] if reps else []))

    rows = _run(session,
        sa.select(
            col(Lead.source), col(Lead.offer),
            sa.func.count().label("leads"),
            _count_if(workable).label("workable"),
            _sum_if(workable, col(Lead.value)).label("value"),
            _count_if(workable_opportunity).label("opportunities"),
            _sum_if(workable_opportunity, col(Lead.opportunity_amount)).label("pipeline"),
            _count_if(opportunity).label("any_opportunities"),
            _count_if(won).label("won"),
            _sum_if(won, col(Lead.bookings)).label("bookings"),
            _count_if(sa.and_(workable, other_owner(col(Lead.owner)))).label("others"),
            *(_count_if(sa.and_(workable, col(Lead.owner) == key)) for key in reps),
        )
        .where(*in_range)
        .group_by(col(Lead.source), col(Lead.offer))
    ).all()
    others = _run(session,
        sa.select(col(Lead.owner), sa.func.count())
        .where(*in_range, workable, other_owner(_unindexed(col(Lead.owner))))
        .group_by(col(Lead.owner))
    ).all() if any(row.others for row in rows) else []
    by_owner: dict[str, int] = {}
    for row in rows:
        for key, n in zip(reps, row[11:], strict=True):
            if n:
                _add(by_owner, key, int(n))
    for owner, n in others:
        _add(by_owner, owner, int(n))
    return [
        _HandoffGroup(source=row.source, offer=row.offer,
                      leads=int(row.leads), workable=int(row.workable), value=float(row.value),
                      opportunities=int(row.opportunities), pipeline=float(row.pipeline),
                      any_opportunities=int(row.any_opportunities), won=int(row.won),
                      bookings=float(row.bookings))
        for row in rows
    ], by_owner


def _marketing(agreement: Agreement, period: Period, scope: Scope, groups: Sequence[_HandoffGroup],
               workable_by_owner: dict[str, int]) -> tuple[Marketing, int, float]:
    """Marketing's numbers from the handed-off groups, with the workable leads' opportunities and
    their pipeline by `as_of` (Sales reports those two)."""
    leads = n_workable = opportunities = 0
    value = pipeline = 0.0
    by_source: dict[str, int] = {}
    by_offer: dict[str, int] = {}
    per_rep: dict[str, int] = {r.key: 0 for r in scope.reps}
    for row in groups:
        count = row.workable
        leads += row.leads
        n_workable += count
        value += row.value
        opportunities += row.opportunities
        pipeline += row.pipeline
        if count:
            _add(by_source, row.source or UNKNOWN, count)
            _add(by_offer, row.offer or UNKNOWN, count)

    for owner, n in workable_by_owner.items():
        _add(per_rep, owner, n)
    active = len(scope.active_reps)
    goal = agreement.marketing.workable_leads_per_rep_per_month * active
    all_active = sum(1 for r in agreement.all_reps() if r.active)
    value_goal_month = agreement.marketing.lead_value_goal_per_month
    share = ratio(active, all_active)
    value_goal = None if value_goal_month is None or share is None else money(value_goal_month * share)
    paced = pace(n_workable, goal, period.elapsed)
    projected = projection(n_workable, period.elapsed)
    return Marketing(
        leads=leads,
        workable=n_workable,
        goal=goal,
        active_reps=active,
        pace=None if paced is None else round(paced, FRACTION_DIGITS),
        projected=None if projected is None else round(projected, DURATION_DIGITS),
        value=money(value),
        value_goal=value_goal,
        nurture=leads - n_workable,
        by_source=_sorted_counts(by_source),
        mix=Mix(source=_sorted_counts(by_source), offer=_sorted_counts(by_offer)),
        per_rep=per_rep,
    ), opportunities, pipeline
