"""The SQL building blocks every metric module shares: the lead-table conditions of DESIGN.md 2.7
(workable, touched, met, counters as of an instant), aggregate helpers, and the percentile fold.

Queries run on the session's connection as Core statements (see `_run`); each module of
`storage.metrics` builds its own from these.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col

from sla.agreement import Agreement
from sla.lifecycle import ATTEMPTS, Action
from sla.metrics import ratio
from storage.tables import Lead, LeadEvent

#: How far back from the instant (or day) in question leads are looked at when the fact tested has
#: no index of its own (`closed_at`, `first_touch_at`, `opportunity_at`, `sla_due`): it keeps the
#: cost at about two months of volume. A lead routed earlier that was closed, first touched or made
#: an opportunity after it is missed by the past-`as_of` breach list and by yesterday's highlights.
LOOKBACK: Final = timedelta(days=62)
#: The key used for a missing source, offer or reason in the by-key dictionaries.
UNKNOWN: Final = "unknown"

_ATTEMPT_TYPES: Final = sorted(a.value for a in ATTEMPTS)
_CONNECT_TYPE: Final = Action.CONNECTED.value


def _workable() -> ColumnElement[bool]:
    return col(Lead.workable).is_(sa.true())


def _handed_off_between(start: datetime, as_of: datetime) -> list[ColumnElement[bool]]:
    return [col(Lead.handed_off_at) >= start, col(Lead.handed_off_at) <= as_of]


def _touched(as_of: datetime) -> ColumnElement[bool]:
    """At least one attempt by `as_of`: the first attempt is what sets `first_touch_at`.

    Never NULL (an untouched lead gives false, not NULL), so NOT of it and of `_met` is safe."""
    return sa.and_(col(Lead.first_touch_at).is_not(None), col(Lead.first_touch_at) <= as_of)


def _met(as_of: datetime) -> ColumnElement[bool]:
    """First touch by `as_of` and at or before the original deadline (never NULL)."""
    return sa.and_(_touched(as_of), col(Lead.first_touch_met).is_(sa.true()))


def _counters_current(as_of: datetime) -> ColumnElement[bool]:
    """No attempt after `as_of`, so the lead's counters are what they were at `as_of`."""
    return sa.or_(col(Lead.last_attempt_at).is_(None), col(Lead.last_attempt_at) <= as_of)


def _attempts_as_of(as_of: datetime) -> ColumnElement[Any]:
    counted = (
        sa.select(sa.func.count())
        .where(col(LeadEvent.lead_id) == col(Lead.id), col(LeadEvent.type).in_(_ATTEMPT_TYPES),
               col(LeadEvent.at) <= as_of)
        .scalar_subquery()
    )
    return sa.case((_counters_current(as_of), col(Lead.attempts)), else_=counted)


def _connected_as_of(as_of: datetime) -> ColumnElement[bool]:
    recorded = sa.exists().where(col(LeadEvent.lead_id) == col(Lead.id),
                                 col(LeadEvent.type) == _CONNECT_TYPE, col(LeadEvent.at) <= as_of)
    # One test of `current` per row (an OR of both branches tested it twice).
    return sa.case((_counters_current(as_of), col(Lead.connects) >= 1), else_=recorded)


def _required_attempts(agreement: Agreement) -> ColumnElement[Any]:
    """Each lead's tier's `attempts.count`; a tier key the agreement no longer has gets the last tier's."""
    tiers = agreement.sales.tiers
    return sa.case({t.key: t.attempts.count for t in tiers}, value=col(Lead.tier),
                   else_=tiers[-1].attempts.count)


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    """Rows where `condition` is true (0 when none): ``count(*) FILTER (WHERE ...)``, which SQLite
    (3.30+) and PostgreSQL both run without a CASE and an addition per row."""
    return sa.func.count().filter(condition)


def _sum(expression: ColumnElement[Any]) -> ColumnElement[Any]:
    return sa.func.coalesce(sa.func.sum(expression), 0)


def _sum_if(condition: ColumnElement[bool], expression: Any) -> ColumnElement[Any]:
    """The sum of `expression` over the rows where `condition` is true (0 when none), as a FILTER."""
    return sa.func.coalesce(sa.func.sum(expression).filter(condition), 0)


def _run(session: Session, query: sa.Executable) -> Any:
    """Run a Core query on the session's connection: these are plain rows, so the ORM's result
    machinery (a measurable share of a report's time) is skipped."""
    return session.connection().execute(query)


def _ranks(n: int, quantiles: Sequence[float]) -> list[tuple[int, int, float]]:
    """For each q, the 0-based ranks of the two values `sla.metrics.percentile` interpolates between
    among n sorted values (``h = (n - 1) * q``: floor(h) and floor(h) + 1) and h (n > 0)."""
    ranks = []
    for q in quantiles:
        if not 0 <= q <= 1:
            raise ValueError(f"percentile q must be between 0 and 1, got {q!r}")
        h = (n - 1) * q
        low = math.floor(h)
        ranks.append((low, min(low + 1, n - 1), h))
    return ranks


def _percentiles(session: Session, value: Any, where: Sequence[ColumnElement[bool]], quantiles: Sequence[float],
                 *, counted: ColumnElement[bool] | None = None,
                 per_unit: int = 1) -> tuple[list[float | None], int]:
    """`sla.metrics.percentile(values, q)` for each q, where `values` is `value` over the rows of
    `where` for which `counted` holds (all when None), NULLs left out; and how many rows `where`
    has (counted or not), which callers use as a count they need anyway.

    The database sorts the values, in two passes so that only a few rows come back whatever the
    values are: first a count, minimum and maximum per bucket (``CAST(value * per_unit AS
    BIGINT)``, non-decreasing in the value on SQLite and PostgreSQL, so the buckets are consecutive
    ranges of values); a rank whose bucket holds one distinct value has its value; the buckets of
    the others (values spread within a bucket: fractional minutes) come back as (value, count)
    pairs in a second pass, which reads just those buckets' rows through a partial index on the
    bucket expression when there is one (`ix_lead_speed_bucket`, `ix_lead_delay_bucket`). Same
    arithmetic as `sla.metrics.percentile`, so the result is identical.
    """
    # `per_unit` written into the SQL, not bound: the second pass's bucket test must be the very
    # expression of its partial index (storage.tables.SPEED_BUCKET, DELAY_BUCKET) for it to be used.
    bucket = sa.cast(value * sa.literal_column(str(int(per_unit))) if per_unit != 1 else value, sa.BigInteger)
    keyed = bucket if counted is None else sa.case((counted, bucket))
    # Grouped and ordered by the result column's name: a CASE written out again would carry its own
    # bind parameters, which SQLite does not see as the same expression (it would sort more columns).
    name: sa.ColumnClause[Any] = sa.literal_column("bucket")
    rows = _run(session,
        sa.select(keyed.label("bucket"), sa.func.count(), sa.func.min(value), sa.func.max(value))
        .where(*where).group_by(name).order_by(name)
    ).all()
    total = sum(int(row[1]) for row in rows)
    buckets = [(row[0], int(row[1]), row[2], row[3]) for row in rows if row[0] is not None and row[2] is not None]
    n = sum(count for _, count, _, _ in buckets)
    if n == 0:
        return [None for _ in _ranks(1, quantiles)], total
    ranks = _ranks(n, quantiles)
    found: dict[int, float] = {}
    spread: dict[Any, list[int]] = {}          # bucket -> offsets of the ranks to find in it
    for rank in sorted({r for low, high, _ in ranks for r in (low, high)}):
        before = 0
        for key, count, lo, hi in buckets:
            if rank < before + count:
                if lo == hi:
                    found[rank] = float(lo)
                else:
                    spread.setdefault(key, []).append(rank - before)
                break
            before += count
    if spread:
        detail = _run(session,
            sa.select(bucket, value, sa.func.count())
            .where(*where, *([] if counted is None else [counted]), value.is_not(None),
                   bucket.in_(list(spread)))
            .group_by(value).order_by(value)
        ).all()
        pairs: dict[Any, list[tuple[float, int]]] = {}
        for key, x, count in detail:
            pairs.setdefault(key, []).append((float(x), int(count)))
        sizes = {key: count for key, count, _, _ in buckets}
        if any(sum(c for _, c in pairs.get(key, [])) != sizes[key] for key in spread):
            # Rows changed between the two statements (PostgreSQL's READ COMMITTED): one pass.
            return _percentiles_in_one_pass(session, value, [*where, *([] if counted is None else [counted])],
                                            quantiles), total
        before_of, before = {}, 0
        for key, count, _, _ in buckets:
            before_of[key] = before
            before += count
        for key, offsets in spread.items():
            for offset in offsets:
                found[before_of[key] + offset] = _ranked(pairs[key], offset)
    return [found[low] + (h - low) * (found[high] - found[low]) for low, high, h in ranks], total


def _percentiles_in_one_pass(session: Session, value: Any, where: Sequence[ColumnElement[bool]],
                             quantiles: Sequence[float]) -> list[float | None]:
    """`_percentiles` from every distinct value and its count, in one statement."""
    pairs = [(float(x), int(count)) for x, count in _run(session,
             sa.select(value, sa.func.count()).where(*where, value.is_not(None)).group_by(value).order_by(value)
             ).all()]
    n = sum(count for _, count in pairs)
    if n == 0:
        return [None for _ in quantiles]
    return [_ranked(pairs, low) + (h - low) * (_ranked(pairs, high) - _ranked(pairs, low))
            for low, high, h in _ranks(n, quantiles)]


def _ranked(pairs: Sequence[tuple[float, int]], rank: int) -> float:
    """The value at 0-based `rank` of the sorted multiset given as ordered (value, count) pairs."""
    seen = 0
    for value, count in pairs:
        seen += count
        if rank < seen:
            return value
    raise IndexError(rank)


def _unindexed(column: Any) -> ColumnElement[Any]:
    """`column` as an expression no index can serve (the same values, the same type on SQLite and
    PostgreSQL): for a bound that must only filter the rows another index found."""
    return sa.func.coalesce(column, column)


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    return at.astimezone(UTC)


def _add(counts: dict[str, int], key: str, n: int) -> None:
    counts[key] = counts.get(key, 0) + n


def _sorted_counts(counts: dict[str, int]) -> dict[str, int]:
    """Largest first, then by key: stable output for digests and tests."""
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _per_lead(total: int, leads: int) -> float | None:
    value = ratio(total, leads)
    return None if value is None else round(value, 2)
