"""The `/sla` command (Slack `/sla WORDS`, Teams `sla WORDS`): parse, authorize, answer neutrally.

`run` is the only entry point both chat platforms call. It returns a `CommandReply` (plain text,
never platform markup: each platform escapes and lays it out itself).

Choices made here:
- `status me` is the rep's own numbers (scope `rep:KEY`); for a manager of one team it is that
  team; for the VPs (and a manager of several teams) it is everything.
- `away until YYYY-MM-DD` means "back on that date": the rep gets leads again from the start of
  business hours on that local date (the agreement's time zone). Plain `away` lasts until `back`.
- `link TEAM` binds the channel the command was typed in; only that team's manager or the sales
  VP may do it. Cards already posted stay where they are; new cards go to the linked channel.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from commands import labels
from commands.actions import set_away
from commands.context import Actor, Context
from commands.digest import build_digest
from commands.labels import local_time
from commands.plan import plan_command
from commands.registry import COMMANDS, help_lines
from sla.lifecycle import State
from storage.bindings import bind_channel
from storage.db import IntegrityError
from storage.leads import count_open, open_leads
from storage.routing import rep_away
from storage.tables import Lead

if TYPE_CHECKING:
    from storage.metrics import Status

#: At most this many leads are listed by `leads` (the rest are counted).
LEADS_LIMIT = 25
#: At most this many open breaches are named by `status`.
BREACHES_SHOWN = 5

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class CommandReply:
    """What `/sla` answers: a first line, more lines, and whether only the caller should see it."""

    text: str
    lines: tuple[str, ...] = ()
    private: bool = True

    def as_text(self) -> str:
        return "\n".join([self.text, *self.lines])


#: A subcommand: (ctx, args, actor, platform, channel, prefix); `prefix` is how the caller's platform types the
#: command ("/sla " on Slack, "sla " in Teams), given by the adapter for the usage lines it writes.
Handler = Callable[[Context, list[str], Actor, str, str | None, str], CommandReply]


def run(ctx: Context, *, text: str, actor: Actor, platform: str, channel: str | None,
        prefix: str = "sla ") -> CommandReply:
    """Answer one `/sla` command typed by `actor` on `platform` in `channel` (None: unknown). `prefix` is how
    that platform's users type the command (its adapter knows: "/sla " on Slack), for help and usage lines."""
    words = text.strip().split()
    if words and words[0].lower() in ("sla", "/sla"):   # Teams users often type the "sla" too
        words = words[1:]
    if not words:
        return help_reply(prefix)
    word, args = words[0].lower(), words[1:]
    handler = _HANDLERS.get(word)
    if handler is None:
        shown = word if len(word) <= 40 else word[:40] + "…"
        help_text = help_reply(prefix)
        return CommandReply(f"Unknown command “{shown}”. {help_text.text}", help_text.lines)
    return handler(ctx, args, actor, platform, channel, prefix)


def help_reply(prefix: str) -> CommandReply:
    return CommandReply("slabot runs your Sales & Marketing SLA. Commands:", tuple(help_lines(prefix)))


def _help(ctx: Context, args: list[str], actor: Actor, platform: str, channel: str | None,
          prefix: str) -> CommandReply:
    return help_reply(prefix)


def _usage(name: str, prefix: str) -> CommandReply:
    spec = next(s for s in COMMANDS if s.name == name)
    return CommandReply(f"Usage: {prefix}{spec.usage}", (spec.help,))


def not_in_agreement(actor: Actor) -> CommandReply:
    return CommandReply("You are not in the SLA agreement (as a rep, manager or VP), so there is "
                        "nothing of yours to show.",
                        ("Ask your RevOps admin to add your chat id or e-mail to the agreement.",))


def is_known(actor: Actor) -> bool:
    return bool(actor.rep or actor.manages or actor.vp)


# --- formatting ----------------------------------------------------------------------------


def percent(value: Any) -> str:
    return labels.percent(value)


def number(value: Any) -> str:
    if value is None:
        return "n/a"
    value = float(value)
    return f"{value:,.0f}" if value == int(value) or abs(value) >= 100 else f"{value:,.1f}"


def business_minutes(value: Any) -> str:
    """Business minutes as `11 min`, `1 h 35 min` or `2 h`."""
    return labels.business_time(value)


# --- status --------------------------------------------------------------------------------


def _status(ctx: Context, args: list[str], actor: Actor, platform: str, channel: str | None,
            prefix: str) -> CommandReply:
    words = [a.lower() for a in args]
    if not is_known(actor):
        # The numbers name reps and their misses: only people in the agreement see them, and the
        # refusal is private (an ephemeral message on Slack, a direct message on Teams).
        return CommandReply("Sorry, you are not in the SLA agreement (as a rep, manager or VP), and its "
                            "numbers are only for the people in it.",
                            ("Ask your RevOps admin to add your chat id or e-mail to the agreement.",))
    if not words:
        return status_reply(ctx, scope="all", label="everyone")
    if words == ["me"]:
        scope = my_scope(ctx, actor)
        if scope is None:
            return not_in_agreement(actor)
        return status_reply(ctx, scope=scope[0], label=scope[1])
    if words[0] == "team" and len(words) == 2:
        team = ctx.agreement.team(words[1])
        if team is None:
            return unknown_team(ctx, words[1])
        return status_reply(ctx, scope=f"team:{team.key}", label=team.name)
    return _usage("status", prefix)


def my_scope(ctx: Context, actor: Actor) -> tuple[str, str] | None:
    """(scope, label) of `status me`; None for someone the agreement does not know."""
    if actor.rep:
        rep = ctx.agreement.rep(actor.rep)
        return f"rep:{actor.rep}", rep.name if rep else actor.rep
    if actor.vp or len(actor.manages) > 1:
        return "all", "everyone"
    if actor.manages:
        key = next(iter(actor.manages))
        team = ctx.agreement.team(key)
        return f"team:{key}", team.name if team else key
    return None


def unknown_team(ctx: Context, key: str) -> CommandReply:
    teams = ", ".join(f"{t.key} ({t.name})" for t in ctx.agreement.teams)
    shown = key if len(key) <= 40 else key[:40] + "…"
    return CommandReply(f"There is no team “{shown}” in the agreement. Teams: {teams}.")


def load_status(ctx: Context, scope: str) -> Status:
    from storage.metrics import status

    with ctx.db.read() as session:
        return status(session, agreement=ctx.agreement, calendar=ctx.calendar, as_of=ctx.now(), scope=scope)


def status_reply(ctx: Context, *, scope: str, label: str) -> CommandReply:
    data = load_status(ctx, scope)
    return CommandReply(f"SLA status for {label}, month to date (as of {local_time(ctx, ctx.now())})",
                        tuple(status_lines(data, currency=ctx.agreement.currency)))


def status_lines(data: Status, *, currency: str | None = "USD") -> list[str]:
    """The status as a few readable sentences: every number is one of `data`'s, in words that say
    what it means (fractions as percentages, durations in business time, money with its sign)."""
    period, m, s = data.period, data.marketing, data.sales

    def money(value: Any) -> str:
        return labels.money(value, currency)

    lines = [f"{percent(period.elapsed)} of the month's business time has passed."]
    value = f"Lead value {money(m.value)}" + (
        f" of a {money(m.value_goal)} goal" if m.value_goal is not None else "")
    pace = (f"{percent(m.pace)} of the pace the goal needs, "
            f"{labels.pace(m.projected, m.goal)} by month end"
            if m.pace is not None else "no pace yet (no business time has passed)")
    lines.append(f"Marketing: {number(m.workable)} of {number(m.goal)} workable leads delivered; "
                 f"{pace}. {value}. {labels.count_of(m.nurture, 'lead')} in nurture.")
    if s.cohort == 0:
        lines.append("Sales: no lead is due yet (none is past its first-touch deadline or touched).")
    else:
        lines.append(f"Sales: worked {percent(s.worked_pct)} of {labels.count_of(s.cohort, 'lead')} "
                     f"due so far; {percent(s.within_sla_pct)} touched within the SLA.")
    lines.append(f"Speed to lead: median first touch {business_minutes(s.speed_to_lead_p50)} "
                 f"(90% within {business_minutes(s.speed_to_lead_p90)}), in business time.")
    lines.append(f"Follow-up: {number(s.attempts_per_lead)} attempts per lead; "
                 f"{percent(s.connect_rate)} of worked leads connected; "
                 f"{percent(s.opportunity_rate)} became opportunities "
                 f"({money(s.pipeline_value)} pipeline).")
    breaches = data.breaches
    count = s.open_breaches
    if not count:
        lines.append("Open breaches: none (every lead past its first-touch deadline has been touched).")
    else:
        shown = breaches[:BREACHES_SHOWN]
        named = "; ".join(f"{b.name} ({b.owner_name or 'unassigned'}, "
                          f"{business_minutes(b.minutes_overdue)} overdue)" for b in shown)
        more = f"; and {count - len(shown)} more" if count > len(shown) else ""
        lines.append(f"Open breaches: {labels.count_of(count, 'lead')} past the first-touch deadline "
                     f"with no touch: {named}{more}.")
    # Is the agreement paying off: against the target and cold calling, first touch met or
    # missed, the share of Sales' time Marketing fills, and the segments below cold calling.
    loop = data.closed_loop
    lines.extend(f"{line}." for line in [
        labels.opportunity_rate_against(s),
        labels.first_touch_pays(loop.first_touch, currency),
        labels.capacity_fill(data.capacity.delivered, data.capacity.capacity, data.capacity.utilization),
        labels.below_baseline(loop.below_baseline, loop.cold_call_baseline_rate),
    ] if line)
    return lines


# --- leads ---------------------------------------------------------------------------------


def _leads(ctx: Context, args: list[str], actor: Actor, platform: str, channel: str | None,
           prefix: str) -> CommandReply:
    if args:
        return _usage("leads", prefix)
    return leads_reply(ctx, actor)


def leads_reply(ctx: Context, actor: Actor) -> CommandReply:
    owner, teams = None, None
    if actor.rep:
        owner = actor.rep
        whose = "Your open leads"
    elif actor.manages:
        teams = sorted(actor.manages)
        whose = "Open leads of your team" + ("s" if len(actor.manages) > 1 else "")
    elif actor.vp:
        whose = "All open leads"
    else:
        return not_in_agreement(actor)
    now = ctx.now()
    with ctx.db.read() as session:
        total, leads = open_leads(session, owner=owner, teams=teams, limit=LEADS_LIMIT)
    if not leads:
        return CommandReply(f"{whose}: none. Nothing is waiting on you.")
    lines = [lead_line(ctx, lead, now, show_owner=actor.rep is None) for lead in leads]
    if total > len(leads):
        lines.append(f"…and {total - len(leads)} more.")
    return CommandReply(f"{whose} ({total}), times in {ctx.calendar.timezone}:", tuple(lines))


def lead_line(ctx: Context, lead: Lead, now: datetime, *, show_owner: bool) -> str:
    company = f" ({lead.company})" if lead.company else ""
    state = labels.state(State(lead.state).value)
    parts = [f"#{lead.id} {lead.name}{company}", state]
    if show_owner:
        rep = ctx.agreement.rep(lead.owner or "")
        parts.append(f"owner {rep.name if rep else 'unassigned'}")
    tier = ctx.agreement.tier(lead.tier or "")
    if lead.first_touch_at is None:
        overdue = " (OVERDUE)" if lead.first_touch_due is not None and lead.first_touch_due < now else ""
        parts.append(f"first touch due {local_time(ctx, lead.first_touch_due)}{overdue}")
    else:
        wanted = f" of {tier.attempts.count}" if tier else ""
        parts.append(f"{lead.attempts}{wanted} attempts, last {local_time(ctx, lead.last_attempt_at)}")
    return " · ".join(parts)


# --- away / back ---------------------------------------------------------------------------


def _away(ctx: Context, args: list[str], actor: Actor, platform: str, channel: str | None,
          prefix: str) -> CommandReply:
    if not actor.rep:
        return CommandReply("Only reps in the agreement can be away: leads are routed to reps.")
    words = [a.lower() for a in args]
    if words and words[0] == "until":
        words = words[1:]
    if len(words) > 1 or (words and not _DATE.match(words[0])):
        return _usage("away", prefix)
    until: datetime | None = None
    if words:
        try:
            day = date.fromisoformat(words[0])
        except ValueError:
            return CommandReply(f"“{words[0]}” is not a date: use YYYY-MM-DD, like 2026-12-01.")
        today = ctx.calendar.local_date(ctx.now())
        if day <= today:
            return CommandReply(f"{day.isoformat()} is not in the future: give the date you are back.")
        until = ctx.calendar.at_local(day, ctx.calendar.start)
    set_away(ctx, rep=actor.rep, away=True, until=until)
    with ctx.db.read() as session:
        still_open = count_open(session, owner=actor.rep)
    keep = (f"Your {still_open} open lead{'s stay' if still_open != 1 else ' stays'} with you: ask your "
            f"manager to reassign {'them' if still_open != 1 else 'it'} if needed.") if still_open else ""
    if until is None:
        head = f"You are away: new leads go to your teammates until you type {prefix}back."
    else:
        head = f"You are away until {local_time(ctx, until)}: new leads go to your teammates until then."
    return CommandReply(head, (keep,) if keep else ())


def _back(ctx: Context, args: list[str], actor: Actor, platform: str, channel: str | None,
          prefix: str) -> CommandReply:
    if not actor.rep:
        return CommandReply("Only reps in the agreement can be away or back: leads are routed to reps.")
    if args:
        return _usage("back", prefix)
    with ctx.db.read() as session:
        was_away = rep_away(session, rep=actor.rep, now=ctx.now())
    set_away(ctx, rep=actor.rep, away=False)
    if not was_away:
        return CommandReply("You were not away: new leads keep coming to you.")
    return CommandReply("Welcome back: new leads are routed to you again.")


# --- link ----------------------------------------------------------------------------------


def _link(ctx: Context, args: list[str], actor: Actor, platform: str, channel: str | None,
          prefix: str) -> CommandReply:
    if len(args) != 1:
        return _usage("link", prefix)
    team = ctx.agreement.team(args[0].lower())
    if team is None:
        return unknown_team(ctx, args[0])
    if team.key not in actor.manages and actor.vp != "sales_vp":
        manager = f" ({team.manager.name})" if team.manager else ""
        return CommandReply(f"Only the manager of {team.name}{manager} or the sales VP can link a channel "
                            f"to it.")
    if not channel:
        return CommandReply("Type this in the channel that should get the team's lead cards.")
    now = ctx.now()
    for attempt in range(2):
        try:
            with ctx.db.write() as session:
                bind_channel(session, team=team.key, platform=platform, channel=channel,
                             bound_by=actor.label, now=now)
            break
        except IntegrityError:   # two links raced: the second one updates the first's row
            if attempt:
                raise
    return CommandReply(f"This channel now gets {team.name}'s new lead cards on {platform.title()}.",
                        ("Cards already posted stay where they are. The bot must be a member of this "
                         "channel to post here.",), private=False)


# --- digest --------------------------------------------------------------------------------


def _digest(ctx: Context, args: list[str], actor: Actor, platform: str, channel: str | None,
            prefix: str) -> CommandReply:
    if args:
        return _usage("digest", prefix)
    content = build_digest(ctx, as_of=ctx.now(), team=None)
    lines: list[str] = []
    for heading, section in content.sections:
        lines.append(f"{heading}:")
        lines.extend(f"  {line}" for line in section)
    return CommandReply(f"Preview (only you can see this): {content.title}", tuple(lines))


def _desk(ctx: Context, args: list[str], actor: Actor, platform: str, channel: str | None,
          prefix: str) -> CommandReply:
    """A one-time sign-in link to the desk, by direct message (commands/desk.py)."""
    from commands.desk import send_link

    return CommandReply(send_link(ctx, actor, platform))


_HANDLERS: dict[str, Handler] = {
    "status": _status, "leads": _leads, "away": _away, "back": _back, "link": _link,
    "digest": _digest, "help": _help, "plan": plan_command, "desk": _desk,
}
assert set(_HANDLERS) == {spec.name for spec in COMMANDS}, "commands/registry.py and _HANDLERS disagree"
