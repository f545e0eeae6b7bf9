"""The month's leads Sales disqualified, by reason and by source: Marketing's quality feedback."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col

from sla.agreement import Agreement
from sla.calendar import BusinessCalendar
from storage.metrics.model import Rejected, RejectedRow
from storage.metrics.period import Period, Scope, parse_scope, period_of
from storage.metrics.sql import UNKNOWN, _add, _handed_off_between, _run, _sorted_counts
from storage.tables import Lead


def rejected_by_reason(session: Session, *, agreement: Agreement, calendar: BusinessCalendar,
                       as_of: datetime, scope: str = "all") -> Rejected:
    """MTD leads Sales disqualified by `as_of`, for Marketing's quality feedback.

    Returns ``total``, ``by_reason`` ({reason: n}), ``by_source`` ({source: n}) and ``rows``
    ([{reason, source, count}], most first).
    """
    return _rejected_of(_rejected_counts(session, period_of(calendar, as_of), parse_scope(agreement, scope)))


def _rejected_counts(session: Session, period: Period, where: Scope) -> list[tuple[str | None, str | None, int]]:
    """(reason, source, leads) of the period's leads Sales disqualified by `as_of`: the handed-off
    range of the partial index `ix_lead_rejected_metrics`, which holds only leads with a reason
    (its condition is this query's `disqualify_reason IS NOT NULL`), so only they are read and sorted."""
    rows = _run(session,
        sa.select(col(Lead.disqualify_reason), col(Lead.source), sa.func.count().label("n"))
        .where(*_handed_off_between(period.start, period.as_of), col(Lead.disqualify_reason).is_not(None),
               col(Lead.closed_at) <= period.as_of, *where.where(driven_by="handed_off_at"))
        .group_by(col(Lead.disqualify_reason), col(Lead.source))
    ).all()
    return [(row.disqualify_reason, row.source, int(row.n)) for row in rows]


def _rejected_of(counts: Iterable[tuple[str | None, str | None, int]]) -> Rejected:
    """`rejected_by_reason`'s answer from (reason, source, leads) counts (a pair may repeat)."""
    by_reason: dict[str, int] = {}
    by_source: dict[str, int] = {}
    by_pair: dict[tuple[str | None, str | None], int] = {}      # as the database groups them
    for reason, source, count in counts:
        _add(by_reason, reason or UNKNOWN, count)
        _add(by_source, source or UNKNOWN, count)
        by_pair[reason, source] = by_pair.get((reason, source), 0) + count
    triples = sorted(((n, r or UNKNOWN, s or UNKNOWN) for (r, s), n in by_pair.items()),
                     key=lambda t: (-t[0], t[1], t[2]))
    return Rejected(total=sum(by_reason.values()), by_reason=_sorted_counts(by_reason),
                    by_source=_sorted_counts(by_source),
                    rows=[RejectedRow(reason=r, source=s, count=n) for n, r, s in triples])
