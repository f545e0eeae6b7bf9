"""The digest chart's counts: cumulative workable leads at each day's end, in one statement."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col

from sla.agreement import Agreement
from storage.metrics.period import parse_scope
from storage.metrics.sql import _run, _utc, _workable
from storage.tables import Lead


def cumulative_workable(session: Session, *, agreement: Agreement, start: datetime, ends: Sequence[datetime],
                        as_of: datetime, scope: str = "all") -> list[int]:
    """Workable leads handed off from `start` up to (not at) each instant of `ends`, then up to and
    including `as_of`: ``len(ends) + 1`` cumulative counts (the digest chart's points; the last one
    is `status`'s ``marketing.workable`` when `start` is the month's start).

    One statement: a UNION ALL of one count per interval between consecutive instants, each a
    range of the covering `ix_lead_handoff_metrics`, so the month's leads are read once and nothing
    is evaluated per lead and per day. `ends` must be ascending.
    """
    where = parse_scope(agreement, scope)
    start, as_of = _utc(start), _utc(as_of)
    ends = [_utc(end) for end in ends]
    if any(b < a for a, b in itertools.pairwise(ends)):
        raise ValueError("cumulative_workable: `ends` must be ascending")
    handed = col(Lead.handed_off_at)
    common = [_workable(), handed <= as_of, *where.where(driven_by="handed_off_at")]
    if ends and ends[0] < start:
        raise ValueError("cumulative_workable: `ends` must not be before `start`")
    lows = [start, *ends]
    parts = [
        sa.select(sa.literal(i).label("i"), sa.func.count().label("n"))
        .where(handed >= low, *([handed < ends[i]] if i < len(ends) else []), *common)
        for i, low in enumerate(lows)
    ]
    counts = {int(row[0]): int(row[1]) for row in _run(session, sa.union_all(*parts)).all()}
    total, cumulative = 0, []
    for i in range(len(lows)):
        total += int(counts.get(i, 0))
        cumulative.append(total)
    return cumulative
