"""The agreement's experiments in the database: claiming a place for a lead, and each one's numbers.

A place is claimed with `UPDATE experiment_count SET taken = taken + 1 WHERE key = :key AND taken <
:limit`: on PostgreSQL a second writer waits for the first one's row lock and then re-checks the
condition against the committed count; on SQLite writers are serialized (BEGIN IMMEDIATE). Either
way no two transactions take the last place, and a rolled-back lead gives its place back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from sla.agreement import Agreement, Experiment
from sla.calendar import BusinessCalendar
from sla.experiments import Result, phase
from storage.db import affected, upsert
from storage.tables import ExperimentCount, Lead


def take_place(session: Session, experiment: Experiment, now: datetime) -> bool:
    """Claim one of the experiment's `limit` places for a lead in this transaction; False when full."""
    upsert(session, ExperimentCount, {"key": experiment.key, "taken": 0, "updated_at": now}, keys=("key",))
    return affected(session.execute(
        sa.update(ExperimentCount)
        .where(col(ExperimentCount.key) == experiment.key, col(ExperimentCount.taken) < experiment.limit)
        .values(taken=col(ExperimentCount.taken) + 1, updated_at=now)
        .execution_options(synchronize_session=False))) == 1


def _scope_filter(scope: str) -> list[Any]:
    kind, _, key = scope.partition(":")
    if kind == "team" and key:
        return [col(Lead.team) == key]
    if kind == "rep" and key:
        return [col(Lead.owner) == key]
    return []


def experiment_results(session: Session, *, agreement: Agreement, calendar: BusinessCalendar, as_of: datetime,
                       scope: str = "all") -> list[Result]:
    """Every experiment of the agreement: its leads handed off by `as_of` and how many of them were
    opportunities (or won) by then, in one grouped query over the experiment index."""
    if not agreement.experiments:
        return []
    opportunity = sa.or_(col(Lead.opportunity_at) <= as_of, col(Lead.won_at) <= as_of)
    rows = session.execute(
        sa.select(col(Lead.experiment), sa.func.count(),
                  sa.func.coalesce(sa.func.sum(sa.case((opportunity, 1), else_=0)), 0))
        .where(col(Lead.experiment).in_([e.key for e in agreement.experiments]),
               col(Lead.handed_off_at) <= as_of, *_scope_filter(scope))
        .group_by(col(Lead.experiment))).all()
    counts = {key: (int(leads), int(opportunities)) for key, leads, opportunities in rows}
    today = calendar.local_date(as_of)
    target = agreement.marketing.opportunity_rate_target
    return [Result(e, *counts.get(e.key, (0, 0)), target=target, phase=phase(e, today))
            for e in agreement.experiments]


def experiments_status(session: Session, *, agreement: Agreement, calendar: BusinessCalendar, as_of: datetime,
                       scope: str = "all") -> list[dict[str, Any]]:
    """The Status JSON's `experiments` list."""
    return [r.to_json() for r in experiment_results(session, agreement=agreement, calendar=calendar,
                                                    as_of=as_of, scope=scope)]
