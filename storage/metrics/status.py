"""`status()`: every number of DESIGN.md 2.7 for one instant and scope, as the typed `Status` model."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from sla.agreement import Agreement
from sla.calendar import BusinessCalendar
from storage.metrics.breaches import BREACH_LIST_LIMIT, _breach_counts, open_breaches
from storage.metrics.capacity import capacity
from storage.metrics.closed_loop import _closed_loop_of, _first_touch_pipeline
from storage.metrics.experiments import experiments
from storage.metrics.marketing import _handoff_groups, _marketing
from storage.metrics.model import Status
from storage.metrics.period import parse_scope, period_of
from storage.metrics.rejected import _rejected_counts, _rejected_of
from storage.metrics.sales import _cohort_counts, _CohortCounts, _distributions, _sales
from storage.metrics.yesterday import yesterday


def status(session: Session, *, agreement: Agreement, calendar: BusinessCalendar, as_of: datetime,
           scope: str = "all") -> Status:
    """The Status JSON of the contract (`GET /api/v1/status`, `status(...).model_dump(mode="json")`)
    plus every other number of DESIGN.md 2.7: ``as_of``, ``scope``, ``period``, ``marketing``,
    ``sales``, ``breaches`` (the open breach list, at most BREACH_LIST_LIMIT), ``closed_loop``,
    ``capacity``, ``rejected``, ``yesterday``, ``experiments``.
    Raises ValueError for a malformed scope or an unknown team or rep.
    """
    where = parse_scope(agreement, scope)
    period = period_of(calendar, as_of)
    # One scan of the month's handed-off leads serves Marketing and the closed loop; one scan of
    # the Sales cohort (per rep) serves Sales and the closed loop's first-touch split; the
    # percentiles' scans also give the cohort's size, so other owners are looked for only if any.
    handed, workable_by_owner = _handoff_groups(session, period.start, period.as_of, where)
    distributions = _distributions(session, period, where)
    cohort = _cohort_counts(session, agreement, period, where, cohort=distributions.cohort)
    marketing, opportunities, pipeline = _marketing(agreement, period, where, handed, workable_by_owner)
    breach_counts = _breach_counts(session, period.as_of, where)
    sales = _sales(agreement, where, cohort, distributions, workable_mtd=marketing.workable,
                   opportunities=opportunities, pipeline=pipeline, breaches=breach_counts)
    return Status(
        as_of=period.as_of,
        scope=where.text,
        period=period.numbers(),
        marketing=marketing,
        sales=sales,
        breaches=open_breaches(session, agreement=agreement, calendar=calendar, as_of=period.as_of,
                               scope=scope, limit=BREACH_LIST_LIMIT),
        closed_loop=_closed_loop_of(agreement, period.start, handed, sum(cohort.values(), _CohortCounts()),
                                    _first_touch_pipeline(session, period, where)),
        capacity=capacity(session, agreement=agreement, calendar=calendar, as_of=period.as_of, scope=scope),
        rejected=_rejected_of(_rejected_counts(session, period, where)),
        yesterday=yesterday(session, agreement=agreement, calendar=calendar, as_of=period.as_of, scope=scope),
        experiments=experiments(session, agreement=agreement, calendar=calendar, as_of=period.as_of,
                                scope=scope),
    )
