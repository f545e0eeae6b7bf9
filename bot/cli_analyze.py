"""`slabot analyze` and `slabot plan`: the closed loop and the goal planner on the command line.

Every mistake in the options is one line on stderr and exit 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from commands.analyze import AnalyzeError, Options, Report, analyze_csv, parse_by, parse_map
from sla.agreement import AgreementError, load_agreement
from sla.closed_loop import verdict_words
from sla.planning import Plan

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
    click.echo(f"slabot {command or ''}: error: {message}".replace("  ", " "), err=True)
    sys.exit(2)


def _rate(name: str, value: float | None, *, zero_ok: bool = False) -> None:
    if value is None:
        return
    if not (0 <= value <= 1) or (value == 0 and not zero_ok):
        low = "0" if zero_ok else "above 0"
        _fail(f"{name} {value:g}: a rate is a fraction from {low} to 1, like 0.1 for 10%")


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
        lines += [f"  line {b['line']}: {b['error']}" for b in data["bad_rows"][:MAX_BAD_ROWS_SHOWN]]
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
    lines += ["", "Paste under `qualification:` in the agreement, then run `slabot check`:", "",
              data["segments_yaml"].rstrip("\n")]
    return lines


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
    _rate("--baseline-rate", baseline_rate, zero_ok=True)
    _rate("--target-rate", target_rate)
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


def _from_db(options: Options, since: str | None, until: str | None) -> Report:
    _fail("--from-db is not available yet: export the history to CSV and analyze that", "analyze")


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
    _rate("--win-rate", win_rate)
    _rate("--opportunity-rate", opportunity_rate)
    missing = [text for value, text in (
        (win_rate, "--win-rate R (the share of opportunities that are won, like 0.25)"),
        (opportunity_rate, "--opportunity-rate R (the share of workable leads that become opportunities, "
                           "like 0.1)")) if value is None]
    if missing:
        _fail(f"supply {' and '.join(missing)}: there is no history to take it from", "plan")
    assert win_rate is not None and opportunity_rate is not None
    result = Plan(bookings=bookings, deal_size=deal_size, per=per, win_rate=win_rate,
                  opportunity_rate=opportunity_rate, reps=reps)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
        return
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
