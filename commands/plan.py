"""`/sla plan` (Teams `sla plan`): the goal planner of `slabot plan`, in chat, for the two VPs.

    /sla plan bookings 3000000 deal-size 25000 win-rate 20% opportunity-rate 0.12 reps 7 per year

Words come in `NAME VALUE` pairs in any order (`NAME=VALUE` and the command line's `--NAME VALUE`
work too). Amounts may be written `3,000,000`, `3M` or `25k`; rates as `0.2` or `20%`. `per`
defaults to `year`, as in `slabot plan`. An omitted rate is taken from slabot's own history by the
same rule as `slabot plan` (at least 30 opportunities for the win rate, 30 workable leads for the
opportunity rate); otherwise the answer says which to supply. The arithmetic is sla.planning's.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from commands import labels
from commands.context import Actor, Context
from sla.closed_loop import DEFAULT_MIN_LEADS
from sla.planning import MONTHS, Plan

if TYPE_CHECKING:
    from commands.sla import CommandReply

NAMES = {"bookings": "bookings", "deal-size": "deal_size", "win-rate": "win_rate",
         "opportunity-rate": "opportunity_rate", "reps": "reps", "per": "per"}
_AMOUNT = re.compile(r"^[$€£¥]?(\d+(?:\.\d+)?)([km]?)$")
_SUFFIX = {"": 1, "k": 1_000, "m": 1_000_000}


class PlanWordsError(ValueError):
    """The words cannot be read; the message says which and how to write it."""


def parse_words(args: list[str]) -> dict[str, str]:
    """`NAME VALUE` pairs (or `NAME=VALUE`, `--NAME VALUE`) -> {field: raw value}."""
    words: list[str] = []
    for arg in args:
        name, sep, value = arg.partition("=")
        words += [name, value] if sep else [arg]
    found: dict[str, str] = {}
    i = 0
    while i < len(words):
        name = words[i].lower().removeprefix("--").replace("_", "-")
        if name not in NAMES:
            shown = words[i] if len(words[i]) <= 40 else words[i][:40] + "…"
            raise PlanWordsError(f"“{shown}” is not a plan word: use {', '.join(NAMES)}.")
        if i + 1 >= len(words) or not words[i + 1]:
            raise PlanWordsError(f"{name} needs a value after it.")
        if NAMES[name] in found:
            raise PlanWordsError(f"{name} is given twice.")
        found[NAMES[name]] = words[i + 1]
        i += 2
    return found


def amount(name: str, text: str) -> float:
    match = _AMOUNT.match(text.lower().replace(",", "").replace("_", ""))
    value = float(match[1]) * _SUFFIX[match[2]] if match else 0.0
    if value <= 0:
        raise PlanWordsError(f"{name} “{text[:40]}” is not an amount above 0: write it like 3000000, 3M or 25k.")
    return value


def fraction(name: str, text: str) -> float:
    """`0.2` or `20%` -> 0.2; a rate is above 0 and at most 1 (as `slabot plan` requires)."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise PlanWordsError(f"{name} “{raw[:40]}” is not a rate: write it like 0.2 or 20% (above 0, at most 100%).")
    return value


def rates_from_history(ctx: Context, min_count: int = DEFAULT_MIN_LEADS) -> tuple[float | None, float | None,
                                                                                    str]:
    """(win rate, opportunity rate, what history holds) from the leads slabot recorded, each only with
    enough history: `min_count` opportunities (win rate) or workable leads (opportunity rate)."""
    from storage.history import outcome_totals

    totals = outcome_totals(ctx.db)
    win = totals.won / totals.opportunities if totals.opportunities >= min_count and totals.won > 0 else None
    opportunity = (totals.workable_opportunities / totals.workable
                   if totals.workable >= min_count and totals.workable_opportunities > 0 else None)
    opportunities = f"{totals.opportunities:,} opportunit{'y' if totals.opportunities == 1 else 'ies'}"
    held = (f"history holds {opportunities} and "
            f"{labels.count_of(totals.workable, 'workable lead')}; {min_count} of each are needed")
    return win, opportunity, held


def _number(value: float) -> str:
    """As `slabot plan` prints it: whole numbers from 100 up, else two decimals."""
    return f"{value:,.0f}" if abs(value) >= 100 or value == int(value) else f"{value:,.2f}"


def _pct(value: float) -> str:
    return f"{value * 100:.1f}".removesuffix(".0") + "%"


def plan_lines(ctx: Context, plan: Plan, notes: list[str]) -> tuple[str, tuple[str, ...]]:
    def money(value: float) -> str:
        return labels.money(value, ctx.agreement.currency)

    per_month, per_rep = plan.per_month(), plan.per_rep_per_month()
    head = (f"Plan for {money(plan.bookings)} in bookings a {plan.per}: {money(plan.deal_size)} a deal, "
            f"{_pct(plan.win_rate)} of opportunities won, {_pct(plan.opportunity_rate)} of workable leads "
            "becoming opportunities.")
    lines = list(notes)
    for label, name, total in (("Deals", "deals", plan.deals), ("Opportunities", "opportunities", plan.opportunities),
                               ("Workable leads", "workable_leads", plan.workable_leads)):
        line = f"{label}: {_number(total)} a {plan.per}"
        if plan.per != "month":
            line += f", {_number(per_month[name])} a month"
        if per_rep is not None:
            line += f", {per_rep[name]:,} per rep a month ({plan.reps} reps)"
        lines.append(line + ".")
    lines.append(f"Lead value Marketing owes: {money(plan.lead_value_per_month)} a month.")
    block = plan.marketing_yaml()
    if block is None:
        active = sum(1 for r in ctx.agreement.all_reps() if r.active)
        lines.append(f"Add reps N for the per rep goal and the agreement's marketing: block "
                     f"(the agreement has {labels.count_of(active, 'active rep')}).")
    else:
        lines.append("The agreement's marketing: block:")
        lines += block.rstrip("\n").splitlines()
    return head, tuple(lines)


def plan_command(ctx: Context, args: list[str], actor: Actor, platform: str, channel: str | None,
                 prefix: str) -> CommandReply:
    from commands.sla import CommandReply

    usage = (f"Usage: {prefix}plan bookings N deal-size N [win-rate R] [opportunity-rate R] [reps N] "
             "[per year|quarter|month]")
    if not actor.vp:
        return CommandReply("Sorry, only the sales VP and the marketing VP can plan the goals: the plan sets "
                            "what Marketing owes Sales.", ("Ask one of them, or run `slabot plan` where slabot runs.",))
    if not args:
        return CommandReply(usage, ("From a bookings goal to the opportunities, workable leads and lead value "
                                    "needed each month, and the agreement's marketing: block.",))
    try:
        words = parse_words(args)
        missing = [n for n in ("bookings", "deal-size") if NAMES[n] not in words]
        if missing:
            raise PlanWordsError(f"give {' and '.join(missing)}.")
        bookings = amount("bookings", words["bookings"])
        deal_size = amount("deal-size", words["deal_size"])
        per = words.get("per", "year").lower()
        if per not in MONTHS:
            raise PlanWordsError(f"per “{per[:40]}”: use year, quarter or month.")
        reps = None
        if "reps" in words:
            if not words["reps"].isdigit() or int(words["reps"]) < 1:
                raise PlanWordsError(f"reps “{words['reps'][:40]}” is not a whole number of reps, at least 1.")
            reps = int(words["reps"])
        win_rate = fraction("win-rate", words["win_rate"]) if "win_rate" in words else None
        opportunity_rate = (fraction("opportunity-rate", words["opportunity_rate"])
                            if "opportunity_rate" in words else None)
    except PlanWordsError as exc:
        return CommandReply(f"{str(exc)[0].upper()}{str(exc)[1:]}", (usage,))
    notes: list[str] = []
    if win_rate is None or opportunity_rate is None:
        found_win, found_opportunity, held = rates_from_history(ctx)
        if win_rate is None and found_win is not None:
            win_rate = found_win
            notes.append(f"Win rate {_pct(found_win)} taken from history.")
        if opportunity_rate is None and found_opportunity is not None:
            opportunity_rate = found_opportunity
            notes.append(f"Opportunity rate {_pct(found_opportunity)} taken from history (workable leads).")
        missing = [text for value, text in (
            (win_rate, "win-rate R (the share of opportunities that are won, like 25%)"),
            (opportunity_rate, "opportunity-rate R (the share of workable leads that become opportunities, "
                               "like 10%)")) if value is None]
        if missing:
            return CommandReply(f"Supply {' and '.join(missing)}: {held}.", (usage,))
    assert win_rate is not None and opportunity_rate is not None
    plan = Plan(bookings=bookings, deal_size=deal_size, per=per, win_rate=win_rate,
                opportunity_rate=opportunity_rate, reps=reps)
    head, lines = plan_lines(ctx, plan, notes)
    return CommandReply(head, lines)
