"""The SQL metric aggregations of DESIGN.md 2.7, shared by the digest, `/sla status` and the API.

`status()` returns the typed `Status` model (storage/metrics/model.py); the API sends
`model_dump(mode="json")`, every other consumer reads its attributes. One module per concern:
`period` (scope and month), `marketing` (the grouped hand-off scan), `sales` (the cohort),
`breaches`, `closed_loop`, `capacity`, `rejected`, `yesterday`, `chart` (the digest chart's
`cumulative_workable`), `experiments` (the hook into storage/experiments.py), `sql` (the shared
building blocks) and `status` (assembling the model).

Every number is a COUNT/SUM (conditional ones as ``FILTER (WHERE ...)``) over the lead table,
filtered on indexed instants (`handed_off_at`, `routed_at`, `is_open`, and one local day of
`first_touch_at`, `opportunity_at`, `sla_due` or `closed_at`), so the cost of a report follows the
volume of its period, not the size of the history. Percentiles are computed from the database's
sort of the period's values, of which only a few rows come back (`sql._percentiles`: counts per
bucket, then the values of the buckets that hold the ranks), with the arithmetic of
`sla.metrics.percentile`, which gives identical results on SQLite and PostgreSQL.

Why it is fast (1,000,000 leads of history, ~40,000 a month): the month's leads are read from
covering indexes (`ix_lead_handoff_metrics`, `ix_lead_routed_metrics`, `ix_lead_owner_routed_metrics`,
see storage/tables.py) that hold every column these aggregations use, never from the wide lead
rows, so the cost follows the month's volume (the same with 100,000 and 1,000,000 leads). No
rollup table: every number is still computed from the lead rows as of `as_of`. `status()` runs
about fifteen statements; on SQLite with ~32,000 leads handed off month to date
(`python -m benchmarks status`, whose speeds and delays are fractional like real ones) it takes
61-68 ms of CPU (three runs on a shared two-core machine), of which (per statement, median):

- ~17 ms the hand-off scan grouped by (source, offer) (`marketing._handoff_groups`: Marketing and
  the closed-loop segments): half of it SQLite sorting the month's rows for the grouping (SQLite
  has no hash aggregate; every extra GROUP BY key made the sort dearer), a third each rep's
  workable count as a FILTER of the same scan;
- ~10 ms the Sales cohort counted per rep through the owner-first index, in owner order with no
  sort (`sales._cohort_counts`; the closed loop's first-touch split is folded from it). The leads
  of other owners (none, or a rep the scope no longer lists) need a scan of the whole cohort, run
  only when the reps' counts fall short of the cohort's size, which the delay percentile's scan
  counts anyway;
- ~16 ms the two percentiles (`sales._distributions`; ~23 before migration 0011), each a sort
  of the cohort's values (speed to lead over ~22,000 touched leads, system delay over ~27,000)
  into buckets (whole minutes, tenths of a second) with their counts, minimum and maximum (~7 ms
  each). Real values are fractional, nearly one distinct value per lead: the buckets holding the
  ranks then hold several, and a second pass reads just those buckets' rows through partial
  indexes on the bucket expressions (`ix_lead_speed_bucket`, `ix_lead_delay_bucket`, migration
  0011): about a millisecond each, where a second scan of the cohort took ~4-7 (status() ~10%
  less CPU). Returning every distinct value instead, ~20,000 rows, made status() twice as slow on
  such data. One grouping by both values (one scan less) sorted as slowly as the two: the
  sorting, not the scanning, is the cost. An index in value order cannot serve them: the month's
  rows are a range of `routed_at`, so a walk in value order with count/offset would read the
  whole history up to the rank;
- ~5 ms the rest: the rejected leads through the partial index `ix_lead_rejected_metrics` (only
  leads with a disqualification reason are in it), open breaches, yesterday, capacity, the
  first-touch pipeline; and ~10 ms Python: ~5 building the statements and the model, ~5
  SQLAlchemy executing them (cache keys, rows). Caching the built statements with bind
  parameters would save part of it.

As of a past instant (the desk's previous period, a month back) the same queries cost a little
more: the open breaches then include the leads closed since, ~30,000, filtered on the partial
covering index `ix_lead_closed_at` (only the breached ones are read from the table); and the
cohort's leads attempted after `as_of` (~2,000) have their counters recounted from `lead_event`.
The desk overview, which computes both (in parallel), takes ~80 ms of server time.

The SQLite read connections have a 16 MB page cache (storage/db.py, `READ_CACHE_KIB`): SQLite keeps
a sort in memory only up to the cache's size, and with the default 2 MB the hand-off grouping
spilled to temporary files.

Definitions (DESIGN.md 2.7, with the choices it leaves open made explicit):

- **Period**: the local calendar month containing `as_of` (`calendar.month_bounds`). "MTD" leads are
  those with `handed_off_at` in ``[month start, as_of]``. `period.elapsed` is business time from the
  month start to `as_of` over business time in the whole month.
- **As of an instant**: every "has it happened?" test uses the instant stored for it, compared with
  `as_of` (handed off, routed, first touch, card posted, opportunity, won, closed), so a past `as_of`
  gives the numbers as they stood then. Counters (`attempts`, `connects`) are current values; when
  a lead's `last_attempt_at` is after `as_of` they are recounted from its `lead_event` rows up to
  `as_of` (a correlated subquery that only runs for those few leads), so they are exact too. What
  cannot be rebuilt: the owner and team (current ones are used) and the state of a lead that left
  `recycled` later (see cadence).
- **Scope**: ``all``, ``team:KEY`` (filters `Lead.team`) or ``rep:KEY`` (filters `Lead.owner`, the
  current owner). Nurture leads are never routed, so they have no team or owner: for team and rep
  scopes the nurture count is always 0.
- **Marketing**: `workable` = workable MTD leads; `goal` = `workable_leads_per_rep_per_month` x active
  reps (``Rep.active``) in scope (a rep scope gets that rep's own goal, 0 if inactive);
  `pace` = workable / (goal x elapsed) rounded to 4 decimals, None if goal or elapsed is 0;
  `projected` = workable / elapsed as a float rounded to 1 decimal (None if elapsed is 0);
  `value` = sum of `value` over workable MTD leads; `value_goal` = `lead_value_goal_per_month` x
  (active reps in scope / all active reps), None if the agreement sets no value goal;
  `nurture` = non-workable MTD leads; `by_source` and `mix` count workable MTD leads (a missing
  source/offer is reported as ``"unknown"``); `per_rep` counts workable MTD leads by current owner,
  listing every rep of the scope (0 included); leads without an owner are left out of it.
- **Sales cohort**: workable leads with `routed_at` in ``[month start, as_of]`` whose original
  deadline `sla_due` is strictly before `as_of` (a touch exactly at the deadline is still within
  SLA, so the deadline has only passed after it), plus any touched by `as_of` (`first_touch_at <=
  as_of`). A lead closed without any attempt (e.g. disqualified as a duplicate) stays in the cohort
  once its deadline passes and counts as not worked and not within SLA, as DESIGN.md says.
  `worked_pct` = touched by `as_of` / cohort (the first attempt sets `first_touch_at`);
  `within_sla_pct` = touched with `first_touch_met` / cohort; speed to lead p50/p90 over the cohort's
  touched leads (business minutes; untouched leads have no speed yet and are left out);
  `system_delay_p50_s`/`_p95_s` over cohort leads whose card was posted by `as_of` (seconds);
  `attempts_per_lead` = attempts (as of `as_of`) on cohort leads / cohort, rounded to 2 decimals;
  `cadence_met_pct` = of cohort leads in state ``recycled`` closed by `as_of`, the share with
  attempts >= their tier's `attempts.count` (tiers looked up by key in the current agreement; a
  tier key no longer in it is judged by the last, catch-all tier, as `sla.deadlines.Clocks` does);
  `connect_rate` = cohort leads with a connect by `as_of` / worked leads;
  `opportunity_rate` = workable MTD leads with `opportunity_at <= as_of` / workable MTD leads (the
  numerator is taken from the denominator's own leads, so it is a true share; an opportunity this
  month on a lead handed off last month counts for last month); `pipeline_value` = sum of
  `opportunity_amount` over those same opportunities; the split by first touch met vs missed is
  over the cohort (met = touched within SLA, missed = the rest of the cohort).
- **Open breaches**: leads open at `as_of`, routed by then, whose original deadline `sla_due` is
  before `as_of` and with no first touch by `as_of`; listed with their current owner, oldest deadline
  first, `minutes_overdue` = business minutes from `sla_due` to `as_of`. "Open at as_of" is
  `is_open` (a closed lead never reopens), or closed after `as_of` for leads routed within
  LOOKBACK before `as_of` (see LOOKBACK).
- **Closed loop**: per (source, offer) among leads handed off in ``[start, as_of]`` (default: the
  month): leads, workable, opportunities / won by `as_of`, bookings of those won, value per lead =
  bookings / leads; opportunity rate over the cohort split by first touch met vs missed, and in
  `first_touch` with opportunities, 95% Wilson intervals and pipeline per lead (the opportunities'
  `opportunity_amount` through `ix_lead_opportunity_at`); `below_baseline`: the segments whose
  Wilson interval lies under `marketing.cold_call_baseline_rate`. Sales' opportunity rate has its
  interval and is judged against the target and that baseline (above, below, unclear).
- **Capacity**: workable leads routed in the local week (Monday 00:00) up to `as_of` / summed
  `capacity_per_week` of the active reps in scope.
- **Rejected**: MTD leads Sales disqualified by `as_of` (`disqualify_reason` set, `closed_at <=
  as_of`), by reason and by source. A lead handed off last month and rejected this month counts for
  last month: it is feedback on what Marketing delivered in the period.
- **Yesterday**: the local calendar day before `as_of`'s (or any `day` given): workable and nurture
  leads handed off that day; first touches made that day (and how many within SLA); opportunities
  created that day (any lead) and their amount; breaches that happened that day (cohort leads whose
  `sla_due` fell that day without a first touch in time, as judged at `as_of`). Only leads
  handed off or routed within LOOKBACK before the day are looked at.
"""

from __future__ import annotations

from storage.metrics.breaches import BREACH_LIST_LIMIT, open_breaches
from storage.metrics.capacity import capacity
from storage.metrics.chart import cumulative_workable
from storage.metrics.closed_loop import closed_loop
from storage.metrics.model import (
    BelowBaseline,
    Breach,
    BreachedLead,
    Capacity,
    ClosedLoop,
    ExperimentStatus,
    FirstTouchSide,
    FirstTouchSplit,
    Marketing,
    Mix,
    PeriodStatus,
    Rejected,
    RejectedRow,
    RepCapacity,
    RepSales,
    Sales,
    Segment,
    Status,
    Yesterday,
)
from storage.metrics.period import Period, Scope, parse_scope, period_of
from storage.metrics.rejected import rejected_by_reason
from storage.metrics.sql import LOOKBACK, UNKNOWN
from storage.metrics.status import status
from storage.metrics.yesterday import yesterday

__all__ = [
    "BREACH_LIST_LIMIT",
    "LOOKBACK",
    "UNKNOWN",
    "BelowBaseline",
    "Breach",
    "BreachedLead",
    "Capacity",
    "ClosedLoop",
    "ExperimentStatus",
    "FirstTouchSide",
    "FirstTouchSplit",
    "Marketing",
    "Mix",
    "Period",
    "PeriodStatus",
    "Rejected",
    "RejectedRow",
    "RepCapacity",
    "RepSales",
    "Sales",
    "Scope",
    "Segment",
    "Status",
    "Yesterday",
    "capacity",
    "closed_loop",
    "cumulative_workable",
    "open_breaches",
    "parse_scope",
    "period_of",
    "rejected_by_reason",
    "status",
    "yesterday",
]
