"""`slabot analyze` and `slabot plan`: the closed loop and the goal planner on the command line.

Every mistake in the options is one line on stderr and exit 2.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from commands.analyze import AnalyzeError, Options, Report, analyze_csv, parse_by, parse_map
from sla.agreement import Agreement, AgreementError, load_agreement
from sla.closed_loop import DEFAULT_MIN_LEADS, verdict_words
from sla.experiments import sentence as experiment_sentence
from sla.planning import Plan

if TYPE_CHECKING:
    from storage.db import Database

MAX_BAD_ROWS_SHOWN = 20


class OneLineCommand(click.Command):
    """A usage mistake (unknown option, bad value, missing option) is one line, exit 2."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            _fail(f"{exc.format_message()} (see slabot {info_name} --help)", info_name or self.name)


def _fail(message: str, command: str | None = None) -> NoReturn:
    prefix = f"slabot {command}" if command else "slabot"
    click.echo(f"{prefix}: error: {message}", err=True)
    sys.exit(2)


def _rate(command: str, name: str, value: float | None, *, zero_ok: bool = False) -> None:
    if value is None:
        return
    if not (0 <= value <= 1) or (value == 0 and not zero_ok):
        low = "0" if zero_ok else "above 0"
        _fail(f"{name} {value:g}: a rate is a fraction from {low} to 1, like 0.1 for 10%", command)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _interval(value: list[float] | None) -> str:
    return "-" if value is None else f"{value[0] * 100:.1f}% to {value[1] * 100:.1f}%"


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 or value == int(value) else f"{value:,.2f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             .rstrip() for r in [header, *rows]]
    return lines


def _key_text(key: dict[str, str | None]) -> str:
    return " / ".join(v if v is not None else "(blank)" for v in key.values())


def _verdict_line(segment: dict[str, Any], baseline: float, min_leads: int) -> str:
    name, code = _key_text(segment["key"]), segment["verdict"]
    if code == "too_few":
        return f"{name}: too few leads ({segment['leads']} of the {min_leads} needed to judge)"
    upper = segment["interval"][1]
    if code == "not_workable":
        return (f"{name}: not workable: at most {_pct(upper)} become opportunities, below "
                f"{_pct(2 * baseline)} (twice the cold-call baseline)")
    return (f"{name}: workable: {_pct(segment['opportunity_rate'])} became opportunities "
            f"(95% interval up to {_pct(upper)}, at least {_pct(2 * baseline)} needed)")


def render_report(data: dict[str, Any]) -> list[str]:
    lines = [f"{data['rows']:,} rows: {data['leads']:,} leads, {data['bad_row_count']:,} bad rows left out",
             f"{data['opportunities']:,} opportunities ({_pct(data['opportunity_rate'])}), {data['won']:,} won, "
             f"bookings {_number(data['bookings'])}", ""]
    header = ["segment", "leads", "opportunities", "rate", "95% interval", "won", "bookings", "value per lead",
              "verdict"]
    rows = [[_key_text(s["key"]), f"{s['leads']:,}", f"{s['opportunities']:,}", _pct(s["opportunity_rate"]),
             _interval(s["interval"]), f"{s['won']:,}", _number(s["bookings"]), _number(s["value_per_lead"]),
             verdict_words(s["verdict"])] for s in data["segments"]]
    lines += _table(header, rows) if rows else ["No segments: the history has no readable rows."]
    if data["segments"]:
        lines += ["", "Verdicts:"]
        lines += [f"  {_verdict_line(s, data['baseline_rate'], data['min_leads'])}" for s in data["segments"]]
    if data["bad_rows"]:
        lines += ["", "Bad rows (left out of every figure):"]
        lines += [f"  line {b['line']}: {b['error']}" if b["line"] is not None else f"  {b['error']}"
                  for b in data["bad_rows"][:MAX_BAD_ROWS_SHOWN]]
        more = data["bad_row_count"] - min(len(data["bad_rows"]), MAX_BAD_ROWS_SHOWN)
        if more:
            lines.append(f"  ... and {more:,} more")
    if data["thresholds"]:
        lines += ["", "Score threshold (leads scoring at or above each score):"]
        lines += ["  " + line for line in _table(
            ["score", "leads", "share", "opportunity rate"],
            [[str(t["score"]), f"{t['leads']:,}", _pct(t["share"]), _pct(t["opportunity_rate"])]
             for t in data["thresholds"]])]
        if data["target_rate"] is not None:
            if data["suggested_threshold"] is None:
                lines.append(f"  No score reaches the target rate {_pct(data['target_rate'])} with at least "
                             f"{data['min_leads']} leads: keep the threshold, or lower the target.")
            else:
                lines.append(f"  Suggested threshold: {data['suggested_threshold']} (the lowest score whose "
                             f"leads reach the target rate {_pct(data['target_rate'])})")
    if data.get("backtest"):
        lines += ["", *_render_backtest(data["backtest"])]
    if data.get("first_touch"):
        lines += ["", *_render_first_touch(data["first_touch"])]
    if data.get("experiments"):
        lines += ["", "Experiments (leads the agreement keeps in nurture, sent to Sales as a trial):"]
        lines += [f"  {experiment_sentence(e)}" for e in data["experiments"]]
    lines += ["", "Paste under `qualification:` in the agreement, then run `slabot check`:", "",
              data["segments_yaml"].rstrip("\n")]
    return lines


def _render_first_touch(split: dict[str, Any]) -> list[str]:
    """Does the SLA pay: each side's opportunity rate with its interval and pipeline per lead."""
    met, missed = split["met"], split["missed"]
    if not (met["leads"] or missed["leads"]):
        return ["Does the SLA pay: no lead was due for a first touch in this history."]

    def side(name: str, s: dict[str, Any]) -> str:
        if not s["leads"]:
            return f"  {name}: no leads"
        few = " (fewer than 30 leads: read the interval, not the rate)" if s["leads"] < 30 else ""
        return (f"  {name}: {s['leads']:,} leads, {s['opportunities']:,} became opportunities "
                f"({_pct(s['opportunity_rate'])}, 95% interval {_interval(s['interval'])}), "
                f"pipeline per lead {_number(s['pipeline_per_lead'])}{few}")
    return ["Does the SLA pay (first touch within the SLA or not):",
            side("Touched within the SLA", met), side("Missed the SLA", missed)]


def _render_backtest(backtest: dict[str, Any]) -> list[str]:
    def side(s: dict[str, Any]) -> list[str]:
        return [f"{s['leads']:,}", _pct(s["opportunity_rate"]), _interval(s["interval"])]

    lines = ["Backtest: the agreement run on this history (workable vs nurture):"]
    rows = [[m["month"] or "no date", *side(m["workable"]), *side(m["nurture"])] for m in backtest["months"]]
    rows.append(["all", *side(backtest["total"]["workable"]), *side(backtest["total"]["nurture"])])
    lines += ["  " + line for line in _table(
        ["month", "workable", "rate", "95% interval", "nurture", "rate", "95% interval"], rows)]
    lines += ["", "Weekly load on each team against its reps' summed weekly capacity:"]
    team_rows = [[t["team"], str(t["capacity_per_week"]), str(t["weeks"]), _number(t["average_per_week"]),
                  _number(t["peak_per_week"]), _pct(t["average_fill"]), str(t["weeks_over_capacity"])]
                 for t in backtest["teams"]]
    lines += ["  " + line for line in _table(
        ["team", "capacity", "weeks", "average", "peak", "fill", "weeks over"], team_rows)]
    if all(t["weeks"] == 0 for t in backtest["teams"]):
        lines.append("  (no received_at column: weekly load needs the date each lead arrived)")
    return lines


@click.command(cls=OneLineCommand)
@click.argument("history", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--map", "maps", multiple=True, metavar="FIELD=COLUMN",
              help="Read FIELD from a column named otherwise (repeatable), e.g. source=\"Lead Source\".")
@click.option("--by", "by_text", default="source", show_default=True, metavar="source|source,offer",
              help="The segment key.")
@click.option("--baseline-rate", type=float, default=0.01, show_default=True,
              help="Sales' opportunity rate from cold calling; a workable segment must reach twice it.")
@click.option("--min-leads", type=int, default=30, show_default=True,
              help="Fewer leads than this in a segment (or above a threshold) is too few to judge.")
@click.option("--agreement", "agreement_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Score every row with this agreement: threshold table and backtest.")
@click.option("--target-rate", type=float, help="The opportunity rate Sales asked for (needs --agreement).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the segments: block here.")
@click.option("--from-db", is_flag=True, help="Analyze the leads and outcomes slabot itself recorded.")
@click.option("--since", metavar="DATE", help="With --from-db: leads received on or after this local date.")
@click.option("--until", metavar="DATE", help="With --from-db: leads received on or before this local date.")
def analyze(history: Path | None, maps: tuple[str, ...], by_text: str, baseline_rate: float, min_leads: int,
            agreement_path: Path | None, target_rate: float | None, as_json: bool, out: Path | None,
            from_db: bool, since: str | None, until: str | None) -> None:
    """The closed-loop report: which lead segments are workable, judged on history."""
    _rate("analyze", "--baseline-rate", baseline_rate, zero_ok=True)
    _rate("analyze", "--target-rate", target_rate)
    if min_leads < 1:
        _fail(f"--min-leads {min_leads}: must be at least 1", "analyze")
    if target_rate is not None and agreement_path is None:
        _fail("--target-rate needs --agreement (the scoring rules to calibrate)", "analyze")
    if from_db == (history is not None):
        _fail("give a HISTORY.csv file or --from-db (one of them)", "analyze")
    if not from_db and (since or until):
        _fail("--since and --until go with --from-db", "analyze")
    try:
        options = Options(by=parse_by(by_text), mapping=parse_map(maps), baseline_rate=baseline_rate,
                          min_leads=min_leads, target_rate=target_rate)
    except AnalyzeError as exc:
        _fail(str(exc), "analyze")
    if agreement_path is not None:
        try:
            options.agreement = load_agreement(agreement_path)
        except AgreementError as exc:
            for problem in exc.problems:
                click.echo(problem.render(str(agreement_path)), err=True)
            sys.exit(2)
    try:
        if from_db:
            report = _from_db(options, since, until)
        else:
            assert history is not None
            report = analyze_csv(history, options)
    except AnalyzeError as exc:
        _fail(str(exc), "analyze")
    data = report.to_json()
    if out is not None:
        try:
            out.write_text(data["segments_yaml"], encoding="utf-8")
        except OSError as exc:
            _fail(f"cannot write {out}: {exc.strerror}", "analyze")
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        for line in render_report(data):
            click.echo(line)
    if out is not None:
        click.echo(f"wrote the segments: block to {out}", err=True)   # stdout ends with the block


def _local_date(option: str, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        _fail(f"{option} {value!r} is not a date like 2026-11-01", "analyze")


class NoHistory(Exception):
    """slabot's own database cannot be read (missing, unreachable, not migrated); one line why."""


def _history(agreement: Agreement | None, *, need_agreement: bool = True) -> tuple[Database, Agreement | None]:
    """slabot's database and agreement, from the environment (as `slabot serve` reads them)."""
    from bot.settings import Settings
    from storage.db import Database

    try:
        settings = Settings()
    except ValidationError as exc:
        raise NoHistory("; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())) from None
    if agreement is None and need_agreement:
        path = settings.slabot_agreement
        try:
            agreement = load_agreement(path)
        except AgreementError as exc:
            first = exc.problems[0].message if exc.problems else "not valid"
            raise NoHistory(f"the agreement {path}: {first} (set SLABOT_AGREEMENT; `slabot check` "
                            "lists every problem)") from None
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and (not url.database or not Path(url.database).exists()):
        raise NoHistory(f"there is no database at {url.database or 'memory'}: set DATABASE_URL to slabot's")
    db = Database(settings.database_url)
    try:
        current = db.is_current()
    except SQLAlchemyError as exc:
        raise NoHistory(f"cannot read the database: {type(getattr(exc, 'orig', None) or exc).__name__}") from None
    if not current:
        raise NoHistory("the database schema is not current: run `slabot db upgrade`")
    return db, agreement


def _from_db(options: Options, since: str | None, until: str | None) -> Report:
    from commands.analyze import analyze_history
    from storage.experiments import experiments_status
    from storage.history import history_batches

    first, last = _local_date("--since", since), _local_date("--until", until)
    if first and last and first > last:
        _fail(f"--since {since} is after --until {until}", "analyze")
    try:
        db, agreement = _history(options.agreement)
    except NoHistory as exc:
        _fail(str(exc), "analyze")
    assert agreement is not None
    calendar = agreement.calendar()
    start = calendar.day_bounds(first)[0] if first else None
    end = calendar.day_bounds(last)[1] if last else None
    try:
        batches = history_batches(db, start=start, end=end, with_payload=options.agreement is not None,
                                  as_of=datetime.now(UTC))
        report = analyze_history(batches, options, calendar)
        with db.read() as session:   # the agreement's experiments, as of the end of the window (or now)
            report.experiments = experiments_status(session, agreement=agreement, calendar=calendar,
                                                    as_of=end or datetime.now(UTC))
        return report
    finally:
        db.dispose()


def _rates_from_history(min_count: int) -> tuple[float | None, float | None, list[str]]:
    """(win rate, opportunity rate, what was found) from slabot's own leads, each only when there
    is enough history: at least `min_count` opportunities (win rate) or workable leads."""
    from storage.history import outcome_totals

    try:
        db, _ = _history(None, need_agreement=False)
    except NoHistory as exc:
        return None, None, [f"no history to take it from ({exc})"]
    try:
        totals = outcome_totals(db)
    finally:
        db.dispose()
    win = opportunity = None
    notes = []
    if totals.opportunities >= min_count and totals.won > 0:
        win = totals.won / totals.opportunities
        notes.append(f"win rate {_pct(win)} from history: {totals.won:,} won of "
                     f"{totals.opportunities:,} opportunities")
    if totals.workable >= min_count and totals.workable_opportunities > 0:
        opportunity = totals.workable_opportunities / totals.workable
        notes.append(f"opportunity rate {_pct(opportunity)} from history: {totals.workable_opportunities:,} "
                     f"opportunities of {totals.workable:,} workable leads")
    if win is None or opportunity is None:
        notes.append(f"history is not enough yet ({totals.opportunities:,} opportunities and "
                     f"{totals.workable:,} workable leads; {min_count} of each are needed)")
    return win, opportunity, notes


@click.command(cls=OneLineCommand)
@click.option("--bookings", type=float, required=True, help="The bookings goal for the period.")
@click.option("--deal-size", type=float, required=True, help="The average bookings of one won deal.")
@click.option("--per", type=click.Choice(["year", "quarter", "month"]), default="year", show_default=True,
              help="The period the bookings goal covers.")
@click.option("--win-rate", type=float, help="The share of opportunities that are won.")
@click.option("--opportunity-rate", type=float, help="The share of workable leads that become opportunities.")
@click.option("--reps", type=int, help="How many reps work the leads (for the per rep goal).")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def plan(bookings: float, deal_size: float, per: str, win_rate: float | None, opportunity_rate: float | None,
         reps: int | None, as_json: bool) -> None:
    """The goal planner: from a bookings goal to the workable leads Marketing owes."""
    if bookings <= 0 or deal_size <= 0:
        _fail("--bookings and --deal-size must be above 0", "plan")
    if reps is not None and reps < 1:
        _fail(f"--reps {reps}: must be at least 1", "plan")
    _rate("plan", "--win-rate", win_rate)
    _rate("plan", "--opportunity-rate", opportunity_rate)
    notes: list[str] = []
    found: list[str] = []
    if win_rate is None or opportunity_rate is None:
        found_win, found_opportunity, found = _rates_from_history(DEFAULT_MIN_LEADS)
        if win_rate is None and found_win is not None:
            win_rate = found_win
            notes += [n for n in found if n.startswith("win rate")]
        if opportunity_rate is None and found_opportunity is not None:
            opportunity_rate = found_opportunity
            notes += [n for n in found if n.startswith("opportunity rate")]
    missing = [text for value, text in (
        (win_rate, "--win-rate R (the share of opportunities that are won, like 0.25)"),
        (opportunity_rate, "--opportunity-rate R (the share of workable leads that become opportunities, "
                           "like 0.1)")) if value is None]
    if missing:
        why = next((n for n in found if n.startswith(("no history", "history is not"))), "")
        _fail(f"supply {' and '.join(missing)}: {why}", "plan")
    assert win_rate is not None and opportunity_rate is not None
    result = Plan(bookings=bookings, deal_size=deal_size, per=per, win_rate=win_rate,
                  opportunity_rate=opportunity_rate, reps=reps)
    if as_json:
        click.echo(json.dumps({**result.to_json(), "notes": notes}, indent=2))
        return
    for line in notes:
        click.echo(line)
    for line in render_plan(result):
        click.echo(line)


def render_plan(result: Plan) -> list[str]:
    per_month, per_rep = result.per_month(), result.per_rep_per_month()
    lines = [f"Goal: {_number(result.bookings)} in bookings a {result.per}, {_number(result.deal_size)} a deal, "
             f"win rate {_pct(result.win_rate)}, opportunity rate {_pct(result.opportunity_rate)}", ""]
    header = ["", f"per {result.per}", "per month"]
    if per_rep is not None:
        header.append(f"per rep per month ({result.reps} reps)")
    rows = []
    for label, name, total in (("deals", "deals", result.deals),
                               ("opportunities", "opportunities", result.opportunities),
                               ("workable leads", "workable_leads", result.workable_leads)):
        row = [label, _number(total), _number(per_month[name])]
        if per_rep is not None:
            row.append(f"{per_rep[name]:,}")
        rows.append(row)
    rows.append(["lead value", _number(result.bookings), _number(result.lead_value_per_month)]
                + ([""] if per_rep is not None else []))
    lines += _table(header, rows)
    block = result.marketing_yaml()
    if block is None:
        lines += ["", "Supply --reps N for the per rep goal and the agreement's marketing: block."]
    else:
        lines += ["", "The agreement's marketing: block:", "", block.rstrip("\n")]
    return lines
