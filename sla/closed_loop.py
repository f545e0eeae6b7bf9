"""The closed loop: which lead segments are worth Sales' time, judged on history. Pure: no I/O.

Every definition here is the contract's ("Closed loop and planning"): segment keys, truthy cells,
the 95% Wilson interval, the per-segment figures and verdict, the score threshold table and the
`segments:` block for the agreement. Rows arrive one at a time (the caller streams the file), and
every accumulator holds one small record per segment, score, month or week: memory does not grow
with the number of rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import yaml

from sla.agreement import Agreement
from sla.keys import segment_key
from sla.lead import LeadIn
from sla.qualification import Decision, qualify, route_team

__all__ = [
    "DEFAULT_BASELINE_RATE",
    "DEFAULT_MIN_LEADS",
    "MAX_BAD_ROWS_LISTED",
    "Z_95",
    "Analysis",
    "Backtest",
    "HistoryRow",
    "SegmentStats",
    "ThresholdTable",
    "segment_key",
    "segments_yaml",
    "truthy",
    "verdict",
    "wilson",
]

Z_95 = 1.96
DEFAULT_BASELINE_RATE = 0.01
DEFAULT_MIN_LEADS = 30
#: Bad rows are all counted, but only the first ones are listed (memory stays flat on any file).
MAX_BAD_ROWS_LISTED = 1000

_TRUE = frozenset({"1", "true", "yes", "y"})
_VERDICT_WORDS = {"workable": "workable", "not_workable": "not workable", "too_few": "too few leads"}


@dataclass(frozen=True)
class HistoryRow:
    """One lead of slabot's own history (`slabot analyze --from-db`), with its outcomes to date."""

    lead_id: int
    source: str | None
    offer: str | None
    opportunity: bool
    won: bool
    amount: float
    handed_off_at: datetime
    #: The validated handoff body, for rescoring with an agreement (None when not asked for).
    payload: dict[str, Any] | None = None
    #: First touch within the SLA (True), missed (False: touched late, or untouched past the
    #: deadline), or not judged (None: never routed to Sales, or still within its deadline).
    first_touch_met: bool | None = None
    #: The opportunity's amount (its pipeline), 0 when none was given.
    pipeline: float = 0.0


def truthy(cell: str | None) -> bool:
    """`1`, `true`, `yes`, `y` in any case (surrounding spaces ignored); anything else is false."""
    return cell is not None and cell.strip().lower() in _TRUE


def wilson(successes: int, trials: int, z: float = Z_95) -> tuple[float, float] | None:
    """The Wilson score interval of successes / trials; None when there are no trials."""
    if trials <= 0:
        return None
    if not 0 <= successes <= trials:
        raise ValueError(f"successes {successes} outside 0..{trials}")
    n = trials
    p = successes / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    # At the edges the exact bound is 0 or 1; floating point would give 1e-17 or 0.9999999999999999.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def rate(successes: int, trials: int) -> float | None:
    return successes / trials if trials else None


def verdict(leads: int, interval: tuple[float, float] | None, *, baseline_rate: float,
            min_leads: int) -> str:
    """`too_few` below min_leads; else `not_workable` when the interval's upper bound is below twice
    the cold-call baseline; else `workable`."""
    if leads < min_leads or interval is None:
        return "too_few"
    if interval[1] < 2 * baseline_rate:
        return "not_workable"
    return "workable"


def verdict_words(code: str) -> str:
    return _VERDICT_WORDS[code]


@dataclass
class SegmentStats:
    """The running figures of one segment (or of the whole history)."""

    leads: int = 0
    opportunities: int = 0
    won: int = 0
    bookings: float = 0.0

    def add(self, *, opportunity: bool, won: bool, amount: float) -> None:
        self.leads += 1
        if opportunity or won:
            self.opportunities += 1
        if won:
            self.won += 1
            self.bookings += amount

    @property
    def opportunity_rate(self) -> float | None:
        return rate(self.opportunities, self.leads)

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson(self.opportunities, self.leads)

    @property
    def value_per_lead(self) -> float | None:
        return self.bookings / self.leads if self.leads else None


def _interval_list(interval: tuple[float, float] | None) -> list[float] | None:
    return list(interval) if interval is not None else None


@dataclass
class Analysis:
    """The closed-loop report over a stream of rows, segment by segment.

    `by` names the key fields (`("source",)` or `("source", "offer")`); each row's key is the tuple
    of its normalized values.
    """

    by: tuple[str, ...] = ("source",)
    baseline_rate: float = DEFAULT_BASELINE_RATE
    min_leads: int = DEFAULT_MIN_LEADS
    #: False when the history has no `amount` column: value per lead is then 0 by the contract's
    #: letter, but the `segments:` block leaves values out rather than price every segment at 0.
    has_amounts: bool = True
    bad_row_count: int = 0
    bad_rows: list[tuple[int | None, str]] = field(default_factory=list)
    segments: dict[tuple[str | None, ...], SegmentStats] = field(default_factory=dict)

    def segment(self, key: tuple[str | None, ...]) -> SegmentStats:
        """The running figures of a segment (created empty on first use)."""
        stats = self.segments.get(key)
        if stats is None:
            stats = self.segments[key] = SegmentStats()
        return stats

    def add(self, key: tuple[str | None, ...], *, opportunity: bool, won: bool, amount: float) -> None:
        """One good row; `key` is already normalized (see `segment_key`)."""
        self.segment(key).add(opportunity=opportunity, won=won, amount=amount)

    @property
    def total(self) -> SegmentStats:
        """The whole history: the sum of its segments."""
        total = SegmentStats()
        for stats in self.segments.values():
            total.leads += stats.leads
            total.opportunities += stats.opportunities
            total.won += stats.won
            total.bookings += stats.bookings
        return total

    @property
    def rows(self) -> int:
        """Every data row read: the good ones (leads) and the bad ones."""
        return sum(s.leads for s in self.segments.values()) + self.bad_row_count

    def add_bad(self, line: int | None, error: str) -> None:
        """A row left out of every figure, reported by its line in the file (the header is line 1);
        a lead of slabot's own history has no line (None) and is named in the error instead."""
        self.bad_row_count += 1
        if len(self.bad_rows) < MAX_BAD_ROWS_LISTED:
            self.bad_rows.append((line, error))

    def verdict_of(self, stats: SegmentStats) -> str:
        return verdict(stats.leads, stats.interval, baseline_rate=self.baseline_rate, min_leads=self.min_leads)

    def ordered(self) -> list[tuple[tuple[str | None, ...], SegmentStats]]:
        """Biggest segments first; ties by key, the blank segment last."""
        return sorted(self.segments.items(),
                      key=lambda item: (-item[1].leads, [(k is None, k or "") for k in item[0]]))

    def segment_rows(self) -> list[dict[str, Any]]:
        rows = []
        for key, stats in self.ordered():
            rows.append({
                "key": dict(zip(self.by, key, strict=True)),
                "leads": stats.leads,
                "opportunities": stats.opportunities,
                "opportunity_rate": stats.opportunity_rate,
                "interval": _interval_list(stats.interval),
                "won": stats.won,
                "bookings": stats.bookings,
                "value_per_lead": stats.value_per_lead,
                "verdict": self.verdict_of(stats),
            })
        return rows

    def to_json(self) -> dict[str, Any]:
        segments = self.segment_rows()
        total = self.total
        return {
            "rows": self.rows,
            "bad_rows": [{"line": line, "error": error} for line, error in self.bad_rows],
            "bad_row_count": self.bad_row_count,
            "leads": total.leads,
            "opportunities": total.opportunities,
            "opportunity_rate": total.opportunity_rate,
            "interval": _interval_list(total.interval),
            "won": total.won,
            "bookings": total.bookings,
            "value_per_lead": total.value_per_lead,
            "baseline_rate": self.baseline_rate,
            "min_leads": self.min_leads,
            "segments": segments,
            "segments_yaml": segments_yaml(segments, with_values=self.has_amounts),
        }


def _money(value: float) -> float | int:
    rounded = round(value, 2)
    return int(rounded) if rounded == int(rounded) else rounded


def segments_yaml(segments: list[dict[str, Any]], indent: int = 0, *, with_values: bool = True) -> str:
    """The `segments:` block for the agreement's `qualification:` section.

    One entry per workable segment with its value per lead, and `workable: false` for each
    not-workable one; segments with too few leads are left out (the agreement's default value
    applies to them). A segment with a blank key part cannot be written as a condition (a missing
    key matches any value), so it is left out with a comment saying so. Without `with_values`
    (a history with no amounts) workable entries carry no value: the agreement's default applies.
    """
    pad = " " * indent
    entries: list[str] = []
    skipped: list[str] = []
    for segment in segments:
        code = segment["verdict"]
        if code == "too_few":
            continue
        key: dict[str, str | None] = segment["key"]
        if any(v is None for v in key.values()):
            skipped.append(", ".join(f"{k} {v or '(blank)'}" for k, v in key.items()))
            continue
        entry: dict[str, Any] = {"when": dict(key)}
        if code == "workable":
            if with_values:
                entry["value"] = _money(segment["value_per_lead"] or 0.0)
        else:
            entry["workable"] = False
        flow = yaml.safe_dump(entry, default_flow_style=True, sort_keys=False, width=10**6).strip()
        entries.append(f"{pad}  - {flow}")
    lines = [f"{pad}segments:" if entries else f"{pad}segments: []", *entries]
    if entries and not with_values:
        lines.append(f"{pad}  # no amount column in the history: values are left to default_value")
    for text in skipped:
        lines.append(f"{pad}  # left out: {text}: a blank value cannot be matched by a condition")
    return "\n".join(lines) + "\n"


@dataclass
class ThresholdTable:
    """Per distinct score: how many rows score at or above it and their opportunity rate."""

    counts: dict[int, list[int]] = field(default_factory=dict)   # score -> [rows, opportunities]

    def add(self, score: int, *, opportunity: bool) -> None:
        cell = self.counts.get(score)
        if cell is None:
            cell = self.counts[score] = [0, 0]
        cell[0] += 1
        if opportunity:
            cell[1] += 1

    def rows(self) -> list[dict[str, Any]]:
        total = sum(c[0] for c in self.counts.values())
        result = []
        leads = opportunities = 0
        for score in sorted(self.counts, reverse=True):
            leads += self.counts[score][0]
            opportunities += self.counts[score][1]
            result.append({"score": score, "leads": leads, "share": leads / total,
                           "opportunity_rate": opportunities / leads})
        result.reverse()
        return result

    def suggested(self, target_rate: float, min_leads: int) -> int | None:
        """The lowest score s whose at-or-above rate reaches the target with at least min_leads rows."""
        for row in self.rows():   # lowest score first
            if row["leads"] >= min_leads and row["opportunity_rate"] >= target_rate:
                return int(row["score"])
        return None


@dataclass
class _Split:
    workable: SegmentStats = field(default_factory=SegmentStats)
    nurture: SegmentStats = field(default_factory=SegmentStats)


def _split_json(split: _Split) -> dict[str, Any]:
    def side(stats: SegmentStats) -> dict[str, Any]:
        return {"leads": stats.leads, "opportunities": stats.opportunities,
                "opportunity_rate": stats.opportunity_rate, "interval": _interval_list(stats.interval)}
    return {"workable": side(split.workable), "nurture": side(split.nurture)}


@dataclass
class Backtest:
    """The whole agreement run over history: what it would have made workable, month by month,
    how those leads converted against the ones it would have sent to nurture, and the weekly load
    it would have put on each team against its reps' summed weekly capacity.

    Months and weeks are the caller's labels (`2026-11`, `2026-W47`); a row without a date counts
    in the totals and under the month `None`, and not in any week.
    """

    agreement: Agreement
    total: _Split = field(default_factory=_Split)
    months: dict[str | None, _Split] = field(default_factory=dict)
    weeks: dict[str, dict[str, int]] = field(default_factory=dict)   # team -> week -> workable leads
    all_weeks: set[str] = field(default_factory=set)                 # every week any row arrived in

    def add(self, lead: LeadIn, *, opportunity: bool, won: bool, amount: float, month: str | None,
            week: str | None) -> Decision:
        """Qualify and route one history row as if it arrived today; returns the decision (its score
        is the lead's score under the agreement's scoring rules)."""
        decision = qualify(self.agreement, lead)
        if week is not None:
            self.all_weeks.add(week)
        split = self.months.get(month)
        if split is None:
            split = self.months[month] = _Split()
        for bucket in (split, self.total):
            side = bucket.workable if decision.workable else bucket.nurture
            side.add(opportunity=opportunity, won=won, amount=amount)
        if decision.workable:
            team = route_team(self.agreement, lead)
            if week is not None:
                per_week = self.weeks.setdefault(team, {})
                per_week[week] = per_week.get(week, 0) + 1
            else:
                self.weeks.setdefault(team, {})
        return decision

    def capacity(self, team_key: str) -> int:
        team = next(t for t in self.agreement.teams if t.key == team_key)
        return sum(r.capacity_per_week for r in team.reps if r.active)

    def to_json(self) -> dict[str, Any]:
        months = [{"month": month, **_split_json(split)}
                  for month, split in sorted(self.months.items(), key=lambda m: (m[0] is None, m[0] or ""))]
        teams = []
        for team in self.agreement.teams:
            per_week = self.weeks.get(team.key, {})
            capacity = self.capacity(team.key)
            loads = list(per_week.values())
            weeks = len(self.all_weeks)   # a week with no lead for this team is a week of zero load
            teams.append({
                "team": team.key,
                "capacity_per_week": capacity,
                "weeks": weeks,
                "average_per_week": sum(loads) / weeks if weeks else None,
                "peak_per_week": max(loads, default=0) if weeks else None,
                "average_fill": sum(loads) / weeks / capacity if weeks else None,
                "weeks_over_capacity": sum(1 for n in loads if n > capacity),
            })
        return {"total": _split_json(self.total), "months": months, "teams": teams}
