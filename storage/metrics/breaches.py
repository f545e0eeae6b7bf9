"""Open breaches: leads open at `as_of` whose original first-touch deadline passed without a first
touch, counted per owner (for `sales.open_breaches`) and listed oldest first."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from sqlmodel import Session, col

from sla.agreement import Agreement, Rep
from sla.calendar import BusinessCalendar
from sla.metrics import DURATION_DIGITS
from storage.metrics.model import Breach
from storage.metrics.period import Scope, parse_scope
from storage.metrics.sql import LOOKBACK, _run, _unindexed, _utc, _workable
from storage.tables import Lead

#: How many open breaches `status` lists (the count is always complete).
BREACH_LIST_LIMIT: Final = 100


def _breach_selects(as_of: datetime, scope: Scope, columns: Sequence[Any]) -> tuple[sa.Select[Any], ...]:
    """Three indexed parts: open leads never touched and open leads first touched after `as_of`
    (both through `ix_lead_open_first_touch`, so only untouched open leads are read, not every
    open lead), and leads closed since `as_of` that were routed within LOOKBACK (through the
    partial index `ix_lead_closed_at`, which holds every column this part tests, so as of a month
    ago the ~30,000 leads closed since are filtered on the index and only the breached ones are
    read from the table). One OR would make the planners scan history.

    The parts cannot overlap: `first_touch_at` is NULL in the first and set in the second, and
    `closed_at` is set when a lead closes and a closed lead never reopens, so an open lead has no
    `closed_at`. (The third part does not test `is_open`, or SQLite would walk every closed lead
    through the `is_open` index; its `routed_at` bounds are not indexable, or the planner could
    prefer a two-month range of `routed_at` to the few leads closed since `as_of`.)"""
    common = [_workable(), _unindexed(col(Lead.routed_at)) <= as_of]
    open_untouched = sa.select(*columns).where(
        col(Lead.is_open) == sa.true(), col(Lead.first_touch_at).is_(None), col(Lead.sla_due) < as_of,
        *common, *scope.where(driven_by="is_open"))
    open_touched_later = sa.select(*columns).where(
        col(Lead.is_open) == sa.true(), col(Lead.first_touch_at) > as_of, col(Lead.sla_due) < as_of,
        *common, *scope.where(driven_by="is_open"))
    closed_since = sa.select(*columns).where(
        col(Lead.closed_at) > as_of, _unindexed(col(Lead.routed_at)) >= as_of - LOOKBACK,
        _unindexed(col(Lead.sla_due)) < as_of, *common,
        sa.or_(col(Lead.first_touch_at).is_(None), col(Lead.first_touch_at) > as_of),
        *scope.where(driven_by="day"))
    return open_untouched, open_touched_later, closed_since


def _breach_counts(session: Session, as_of: datetime, scope: Scope) -> dict[str | None, int]:
    parts = sa.union_all(*_breach_selects(as_of, scope, [col(Lead.owner)])).subquery()
    rows = _run(session,
        sa.select(parts.c.owner, sa.func.count()).group_by(parts.c.owner)
    ).all()
    return {owner: int(count) for owner, count in rows}


def open_breaches(session: Session, *, agreement: Agreement, calendar: BusinessCalendar, as_of: datetime,
                  scope: str = "all", limit: int | None = None) -> list[Breach]:
    """Leads open at `as_of` whose original first-touch deadline passed without a first touch.

    Oldest deadline first, at most `limit` (None: all). Each: ``lead_id``, ``name``, ``company``,
    ``owner``, ``owner_name``, ``team``, ``tier``, ``due`` (the original deadline `sla_due`, ISO
    UTC), ``owner_due`` (the current owner's `first_touch_due`), ``minutes_overdue`` (business
    minutes from ``due`` to `as_of`, 1 decimal).
    """
    where = parse_scope(agreement, scope)
    as_of = _utc(as_of)
    columns = [col(Lead.id), col(Lead.name), col(Lead.company), col(Lead.owner), col(Lead.team),
               col(Lead.tier), col(Lead.sla_due), col(Lead.first_touch_due)]
    parts = sa.union_all(*_breach_selects(as_of, where, columns)).subquery()
    # Sorted after the union (_unindexed): ordered parts would let SQLite walk all of `sla_due`'s
    # index in order to stop at the limit, instead of reading the few breached leads.
    query = sa.select(parts).order_by(_unindexed(parts.c.sla_due), parts.c.id)
    if limit is not None:
        query = query.limit(limit)
    rows = _run(session, query).all()
    # Business time from each deadline to as_of, walked once from the newest deadline back: the
    # rows come oldest first, and elapsed(a, c) == elapsed(a, b) + elapsed(b, c) for a <= b <= c
    # (exact: whole microseconds), so no breach walks the calendar days another one walked already.
    overdue: list[timedelta] = []
    later, since = as_of, timedelta(0)
    for row in reversed(rows):
        due = row.sla_due
        since = since + calendar.elapsed(due, later) if due <= later else calendar.elapsed(due, as_of)
        later = due
        overdue.append(since)
    overdue.reverse()
    reps: dict[str, Rep] = {}
    for rep in agreement.all_reps():
        reps.setdefault(rep.key, rep)      # the first, as Agreement.rep finds it
    found = []
    for row, late in zip(rows, overdue, strict=True):
        owner = reps.get(row.owner) if row.owner else None
        found.append(Breach(
            lead_id=row.id, name=row.name, company=row.company, owner=row.owner,
            owner_name=owner.name if owner else None, team=row.team, tier=row.tier,
            due=row.sla_due, owner_due=row.first_touch_due,
            minutes_overdue=round(late.total_seconds() / 60, DURATION_DIGITS),
        ))
    return found
