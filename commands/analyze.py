"""`slabot analyze`: the closed-loop report over a history CSV, read as a stream.

The file is read one physical line at a time (never loaded whole), so memory stays flat however
long it is. A row that cannot be read (not UTF-8, a field over 128 KiB, a wrong number of cells,
an unparsable number or date) is a bad row: counted, reported by its line in the file (the header
is line 1) and left out of every figure. Only a file that cannot be analyzed at all (no header, a
named column missing) is an error, raised as `AnalyzeError` with one line of text.
"""

from __future__ import annotations

import csv
import math
import operator
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from sla.agreement import Agreement
from sla.calendar import BusinessCalendar
from sla.closed_loop import (
    DEFAULT_BASELINE_RATE,
    DEFAULT_MIN_LEADS,
    Analysis,
    Backtest,
    HistoryRow,
    ThresholdTable,
    segment_key,
    truthy,
    wilson,
)
from sla.lead import LeadIn

#: A field longer than this is a bad row (the csv module enforces it while parsing).
MAX_FIELD = 128 * 1024
#: A physical line longer than this is a bad row too (read in bounded pieces, never whole).
MAX_LINE = 1024 * 1024
OUTCOME_FIELDS = ("opportunity", "won", "amount")
#: The lead fields scoring, qualification and routing read from a history row.
LEAD_FIELDS = ("title", "company", "employees", "country", "source", "offer", "campaign", "stage",
               "activities", "page_visits", "bant_need", "bant_budget", "bant_timeframe", "bant_authority")
FIELDS = (*OUTCOME_FIELDS, *LEAD_FIELDS, "received_at")
BY_CHOICES = {"source": ("source",), "source,offer": ("source", "offer")}
_CACHE_LIMIT = 100_000


class AnalyzeError(Exception):
    """The file cannot be analyzed at all; the message is one line for the operator."""


@dataclass
class Options:
    by: tuple[str, ...] = ("source",)
    mapping: dict[str, str] = field(default_factory=dict)
    baseline_rate: float = DEFAULT_BASELINE_RATE
    min_leads: int = DEFAULT_MIN_LEADS
    agreement: Agreement | None = None
    target_rate: float | None = None


@dataclass
class FirstTouchSide:
    """The leads whose first touch met (or missed) the SLA and what they became."""

    leads: int = 0
    opportunities: int = 0
    pipeline: float = 0.0

    def add(self, *, opportunity: bool, pipeline: float) -> None:
        self.leads += 1
        if opportunity:
            self.opportunities += 1
            self.pipeline += pipeline

    def to_json(self) -> dict[str, Any]:
        bounds = wilson(self.opportunities, self.leads)
        return {"leads": self.leads, "opportunities": self.opportunities,
                "opportunity_rate": self.opportunities / self.leads if self.leads else None,
                "interval": list(bounds) if bounds is not None else None,
                "pipeline": round(self.pipeline, 2),
                "pipeline_per_lead": round(self.pipeline / self.leads, 2) if self.leads else None}


@dataclass
class FirstTouchReport:
    """Does the SLA pay (`--from-db`): leads touched within the SLA against those that were not."""

    met: FirstTouchSide = field(default_factory=FirstTouchSide)
    missed: FirstTouchSide = field(default_factory=FirstTouchSide)

    def to_json(self) -> dict[str, Any]:
        return {"met": self.met.to_json(), "missed": self.missed.to_json()}


@dataclass
class Report:
    analysis: Analysis
    thresholds: ThresholdTable | None = None
    backtest: Backtest | None = None
    target_rate: float | None = None
    #: With --from-db: each experiment of the agreement (storage.experiments' Status JSON entries).
    experiments: list[dict[str, Any]] | None = None
    #: With --from-db: the opportunity rate and pipeline per lead by first touch met or missed.
    first_touch: FirstTouchReport | None = None

    @property
    def suggested_threshold(self) -> int | None:
        if self.thresholds is None or self.target_rate is None:
            return None
        return self.thresholds.suggested(self.target_rate, self.analysis.min_leads)

    def to_json(self) -> dict[str, Any]:
        data = self.analysis.to_json()
        data["thresholds"] = self.thresholds.rows() if self.thresholds is not None else []
        data["target_rate"] = self.target_rate
        data["suggested_threshold"] = self.suggested_threshold
        data["backtest"] = self.backtest.to_json() if self.backtest is not None else None
        if self.experiments is not None:
            data["experiments"] = self.experiments
        if self.first_touch is not None:
            data["first_touch"] = self.first_touch.to_json()
        return data


def parse_by(text: str) -> tuple[str, ...]:
    normalized = ",".join(part.strip() for part in text.split(","))
    if normalized not in BY_CHOICES:
        raise AnalyzeError(f"--by {text!r}: use source or source,offer")
    return BY_CHOICES[normalized]


def parse_map(items: tuple[str, ...] | list[str]) -> dict[str, str]:
    """`FIELD=COLUMN` pairs; the field is one of FIELDS, the column a header name of the file."""
    mapping: dict[str, str] = {}
    for item in items:
        name, sep, column = item.partition("=")
        name, column = name.strip(), column.strip()
        if not sep or not name or not column:
            raise AnalyzeError(f"--map {item!r}: use FIELD=COLUMN, like source=\"Lead Source\"")
        if name not in FIELDS:
            raise AnalyzeError(f"--map {item!r}: {name!r} is not a field; use one of {', '.join(FIELDS)}")
        mapping[name] = column
    return mapping


def _find(header: list[str], column: str) -> int | None:
    stripped = [h.strip() for h in header]
    if column in stripped:
        return stripped.index(column)
    folded = [h.casefold() for h in stripped]
    return folded.index(column.casefold()) if column.casefold() in folded else None


def _columns(header: list[str], options: Options) -> dict[str, int]:
    """Field name -> column index, for every field the file has (named or mapped)."""
    found: dict[str, int] = {}
    for name in FIELDS:
        column = options.mapping.get(name, name)
        index = _find(header, column)
        if index is None and name in options.mapping:
            raise AnalyzeError(f"--map {name}={column}: the header has no column {column!r}")
        if index is not None:
            found[name] = index
    for name in options.by:
        if name not in found:
            raise AnalyzeError(f"the header has no {name!r} column: name it with --map {name}=COLUMN")
    if "opportunity" not in found and "won" not in found:
        raise AnalyzeError("the header has neither an 'opportunity' nor a 'won' column: "
                           "name one with --map opportunity=COLUMN")
    return found


def _lines(handle: IO[bytes], marks: dict[int, str]) -> Iterator[str]:
    """The file's physical lines as text, one per line (so csv's line numbers are the file's).

    A line that is not UTF-8 or is too long is marked bad by its number and still yielded (as
    replacement text or an empty line), so the row it belongs to is reported, never fatal.
    """
    number = 0
    readline = handle.readline
    while True:
        chunk = readline(MAX_LINE)
        if not chunk:
            return
        number += 1
        if len(chunk) == MAX_LINE and not chunk.endswith(b"\n"):
            while True:   # skip the rest of the physical line in bounded pieces
                more = handle.readline(MAX_LINE)
                if not more or more.endswith(b"\n"):
                    break
            marks[number] = f"the line is over {MAX_LINE // 1024} KiB"
            yield "\n"
            continue
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError:
            marks[number] = "not UTF-8 text"
            text = chunk.decode("utf-8", "replace")
        if number == 1:
            text = text.removeprefix("\ufeff")
        yield text


def _pop_mark(marks: dict[int, str], first: int, last: int) -> str | None:
    """The first mark within lines first..last; drops every mark up to last."""
    found = None
    for number in sorted(marks):
        if number > last:
            break
        if number >= first and found is None:
            found = marks[number]
        del marks[number]
    return found


def _csv_error(exc: csv.Error) -> str:
    text = str(exc)
    if "field limit" in text:
        return f"a field is over {MAX_FIELD // 1024} KiB"
    return f"cannot be read as CSV: {text}"


def _amount(cell: str) -> float:
    text = cell.strip()
    if not text:
        return 0.0
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"amount {text[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"amount {text[:40]!r} is not a number")
    return value


def _when(cell: str, zone: ZoneInfo) -> tuple[str, str] | None:
    """(month, ISO week) of a received_at cell in the agreement's time zone; None when blank."""
    text = cell.strip()
    if not text:
        return None
    try:
        if len(text) <= 10:
            day = date.fromisoformat(text)
        else:
            instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
            day = (instant.astimezone(zone) if instant.tzinfo else instant).date()
    except ValueError:
        raise ValueError(f"received_at {text[:40]!r} is not a date like 2026-11-24 or "
                         "2026-11-24T15:00:00Z") from None
    year, week, _ = day.isocalendar()
    return f"{day.year}-{day.month:02d}", f"{year}-W{week:02d}"


def _lead(row: list[str], columns: dict[str, int]) -> LeadIn:
    """The lead a history row describes (no personal data: only what scoring and routing read)."""
    data: dict[str, Any] = {"external_id": "history"}
    bant: dict[str, Any] = {}
    for name in LEAD_FIELDS:
        index = columns.get(name)
        if index is None:
            continue
        value = row[index].strip()
        if not value:
            continue
        if name.startswith("bant_"):
            bant[name[5:]] = {"true": True, "false": False}.get(value.lower(), value)
        elif name == "activities":
            data["activities"] = [{"type": t.strip()} for t in value.split(";") if t.strip()]
        else:
            data[name] = value
    if bant:
        data["bant"] = bant
    return LeadIn.model_validate(data)


def _validation_text(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'row'}: {e['msg'].removeprefix('Value error, ')}"
                     for e in exc.errors())


class _Scoring:
    """The agreement's view of each row: its score (threshold table) and the backtest."""

    def __init__(self, agreement: Agreement, columns: dict[str, int]) -> None:
        self.agreement = agreement
        self.columns = columns
        self.zone = ZoneInfo(agreement.timezone)
        self.received_at = columns.get("received_at")
        self.thresholds = ThresholdTable()
        self.backtest = Backtest(agreement)

    def read(self, row: list[str]) -> tuple[LeadIn, tuple[str, str] | None]:
        """Raises ValueError (or ValidationError) for a cell that cannot be read."""
        dated = _when(row[self.received_at], self.zone) if self.received_at is not None else None
        return _lead(row, self.columns), dated

    def add(self, scored: tuple[LeadIn, tuple[str, str] | None], *, opportunity: bool, won: bool,
            amount: float) -> None:
        lead, dated = scored
        decision = self.backtest.add(lead, opportunity=opportunity or won, won=won, amount=amount,
                                     month=dated[0] if dated else None, week=dated[1] if dated else None)
        self.thresholds.add(decision.score, opportunity=opportunity or won)


def analyze_csv(path: str | Path, options: Options) -> Report:
    """Stream the file once and return the report."""
    try:
        with open(path, "rb") as handle:
            return analyze_stream(handle, options)
    except OSError as exc:
        raise AnalyzeError(f"cannot read {path}: {exc.strerror}") from None


def analyze_stream(handle: IO[bytes], options: Options) -> Report:
    previous_limit = csv.field_size_limit(MAX_FIELD)
    try:
        return _analyze(handle, options)
    finally:
        csv.field_size_limit(previous_limit)


def _analyze(handle: IO[bytes], options: Options) -> Report:
    marks: dict[int, str] = {}
    reader = csv.reader(_lines(handle, marks))
    try:
        header = next(reader)
    except StopIteration:
        raise AnalyzeError("the file is empty: it needs a header row naming its columns") from None
    except csv.Error as exc:
        raise AnalyzeError(f"the header (line 1) {_csv_error(exc)}") from None
    if marks:
        raise AnalyzeError(f"the header (line 1): {marks[1]}")
    columns = _columns(header, options)
    width = len(header)

    analysis = Analysis(by=options.by, baseline_rate=options.baseline_rate, min_leads=options.min_leads,
                        has_amounts="amount" in columns)
    scoring = _Scoring(options.agreement, columns) if options.agreement is not None else None
    report = Report(analysis, scoring.thresholds if scoring else None, scoring.backtest if scoring else None,
                    options.target_rate if scoring else None)

    raw_key = operator.itemgetter(*[columns[name] for name in options.by])
    single = len(options.by) == 1
    opportunity_at = columns.get("opportunity")
    won_at = columns.get("won")
    amount_at = columns.get("amount")
    keys: dict[Any, tuple[str | None, ...]] = {}       # raw cells -> normalized key
    truths: dict[str, bool] = {}                        # cell -> truthy

    def key_of(raw: Any) -> tuple[str | None, ...]:
        key = (segment_key(raw),) if single else tuple(segment_key(cell) for cell in raw)
        if len(keys) < _CACHE_LIMIT:
            keys[raw] = key
        return key

    def truth_of(cell: str) -> bool:
        value = truthy(cell)
        if len(truths) < _CACHE_LIMIT:
            truths[cell] = value
        return value

    segments = analysis.segments
    previous = 1   # the line the last record ended on
    while True:
        try:
            for row in reader:
                line = previous + 1
                previous = reader.line_num
                if marks:
                    mark = _pop_mark(marks, line, previous)
                    if mark is not None:
                        analysis.add_bad(line, mark)
                        continue
                if len(row) != width:
                    if not row or (len(row) == 1 and not row[0].strip()):
                        continue   # a blank line is no row
                    analysis.add_bad(line, f"{len(row)} cells, but the header has {width} columns")
                    continue
                opportunity = won = False
                if opportunity_at is not None:
                    cell = row[opportunity_at]
                    opportunity = truths[cell] if cell in truths else truth_of(cell)
                if won_at is not None:
                    cell = row[won_at]
                    won = truths[cell] if cell in truths else truth_of(cell)
                raw = raw_key(row)
                key = keys[raw] if raw in keys else key_of(raw)
                try:
                    amount = 0.0
                    if amount_at is not None and row[amount_at]:
                        amount = _amount(row[amount_at])
                    scored = scoring.read(row) if scoring is not None else None
                except ValidationError as exc:
                    analysis.add_bad(line, _validation_text(exc))
                    continue
                except ValueError as exc:
                    analysis.add_bad(line, str(exc))
                    continue
                if not opportunity and not won and not any(key) and not "".join(row).strip():
                    continue   # a row of empty cells (spreadsheets leave them at the end) is no row
                stats = segments.get(key)
                if stats is None:
                    stats = analysis.segment(key)
                stats.add(opportunity=opportunity, won=won, amount=amount)
                if scoring is not None and scored is not None:
                    scoring.add(scored, opportunity=opportunity, won=won, amount=amount)
            break
        except csv.Error as exc:
            line = previous + 1
            previous = reader.line_num
            _pop_mark(marks, line, previous)
            analysis.add_bad(line, _csv_error(exc))
    return report


def analyze_history(batches: Iterable[list[HistoryRow]], options: Options, calendar: BusinessCalendar) -> Report:
    """The same report over slabot's own leads and outcomes (`slabot analyze --from-db`).

    Months and weeks are local to the agreement's calendar; a lead whose stored body cannot be
    rescored (with `--agreement`) is a bad row named by its id.
    """
    analysis = Analysis(by=options.by, baseline_rate=options.baseline_rate, min_leads=options.min_leads)
    agreement = options.agreement
    thresholds = ThresholdTable() if agreement is not None else None
    backtest = Backtest(agreement) if agreement is not None else None
    report = Report(analysis, thresholds, backtest, options.target_rate if agreement is not None else None,
                    first_touch=FirstTouchReport())
    assert report.first_touch is not None
    for batch in batches:
        for row in batch:
            cells = {"source": row.source, "offer": row.offer}
            key = tuple(segment_key(cells[name]) for name in options.by)
            lead = None
            if agreement is not None:
                try:
                    lead = LeadIn.model_validate(row.payload or {})
                except ValidationError as exc:
                    analysis.add_bad(None, f"lead {row.lead_id}: {_validation_text(exc)}")
                    continue
            analysis.add(key, opportunity=row.opportunity, won=row.won, amount=row.amount)
            if row.first_touch_met is not None:
                side = report.first_touch.met if row.first_touch_met else report.first_touch.missed
                side.add(opportunity=row.opportunity or row.won, pipeline=row.pipeline)
            if agreement is not None and lead is not None:
                assert thresholds is not None and backtest is not None
                opportunity = row.opportunity or row.won
                day = calendar.local_date(row.handed_off_at)
                year, week, _ = day.isocalendar()
                decision = backtest.add(lead, opportunity=opportunity, won=row.won, amount=row.amount,
                                        month=f"{day.year}-{day.month:02d}", week=f"{year}-W{week:02d}")
                thresholds.add(decision.score, opportunity=opportunity)
    return report
