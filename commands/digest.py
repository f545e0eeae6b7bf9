"""The daily digest (DESIGN 2.8): its neutral content, and queueing it once per recipient per local day.

Content: `build_digest` renders `storage.metrics.status` for one instant and scope (all, or one
team) into neutral text sections plus the chart, so the digest, `/sla status` and the API can never
disagree: every number shown is one of `status`'s, formatted.

Schedule (`queue_due_digests`), for each `digests:` entry of the agreement:
- due on the entry's `days` once the local time reaches its `at` (the instant is built from the
  local date, so DST never shifts it), and for the rest of that local day: a service that was down
  at the scheduled minute sends the digest at its first tick afterwards, once. Days missed entirely
  are not sent later (the day's numbers would be stale, and three digests back to back help nobody).
- a catch-up (more than `ON_TIME` after the slot) waits for the agreement's business hours: a
  service back at 23:00 sends nothing in the night. And it is only sent if the service was already
  running its schedule before the slot: a first-ever start (per platform, recorded as a
  `digest_schedule_start` JobRun) sends the slots due now, never the ones missed earlier that day.
- recipients: `marketing_vp` / `sales_vp` get the whole-company digest by DM; `managers` get their
  team's digest by DM; `team_channels` get their team's digest in the team's channel (a channel bound
  with `/sla link`, else the agreement's). One per recipient per enabled platform; an entry with
  `via: [email]` sends the VPs' and managers' digests to their e-mail instead, as platform "email"
  (bot.email renders and sends the same payload), `via: [chat, email]` both.
- once per recipient, platform and local day: a unique `JobRun(job="digest", period_key=
  "{recipient}:{platform}:{local_date}")` row is inserted in the same transaction as the outbox row
  (dedupe key `digest:{recipient}:{platform}:{local_date}`); a second worker or a replayed tick finds
  the row and queues nothing. A recipient named by two entries gets the first one due that day.
- numbers are as of the tick that sends the digest (a caught-up digest shows the numbers of when it
  was sent, not of the missed minute).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from commands import labels
from commands.chart import cumulative_chart_png
from commands.context import Context, dm_target, team_channel
from sla.agreement import WEEKDAYS, Team
from sla.clock import as_utc
from sla.experiments import sentence as experiment_sentence
from sla.metrics import elapsed_fraction
from storage.db import Session
from storage.jobs import claim_run, runs
from storage.metrics import Status, cumulative_workable, status
from storage.metrics.model import iso
from storage.outbox import enqueue

__all__ = [
    "BREACHES_SHOWN",
    "DIGEST_JOB",
    "DigestContent",
    "Recipient",
    "build_digest",
    "digest_chart",
    "due_recipients",
    "queue_due_digests",
]

DIGEST_JOB = "digest"
#: The outbox platform of e-mailed digests (bot.email's transport delivers them).
EMAIL = "email"
#: JobRun rows (one per platform) recording when this service first ran its digest schedule there.
SCHEDULE_START_JOB = "digest_schedule_start"
#: A digest sent this long after its slot is still on time; later, it is a catch-up.
ON_TIME = timedelta(minutes=15)
#: Open breaches listed by name in a digest; the count is always complete.
BREACHES_SHOWN = 10


@dataclass(frozen=True)
class DigestContent:
    """A digest, neutral: renderers turn the sections into Block Kit, an Adaptive Card or text."""

    title: str
    sections: list[tuple[str, list[str]]]
    #: The same content as plain text (notifications, fallbacks, the console).
    text: str
    chart_png: bytes | None
    #: The `storage.metrics.status` numbers every line above comes from (None: none given).
    numbers: Status | None = field(default=None, compare=False, repr=False)

    def payload(self, *, to: str) -> dict[str, Any]:
        """The outbox payload of a `digest` message; `to` is "user" or "channel"."""
        return {
            "title": self.title,
            "sections": [{"heading": heading, "lines": list(lines)} for heading, lines in self.sections],
            "text": self.text,
            "chart_png_b64": base64.b64encode(self.chart_png).decode("ascii") if self.chart_png else None,
            "to": to,
            "scope": self.numbers.scope if self.numbers else "all",
            "as_of": iso(self.numbers.as_of) if self.numbers else None,
        }


# --- content -------------------------------------------------------------------------------------


def build_digest(ctx: Context, *, as_of: datetime, team: str | None = None) -> DigestContent:
    """The digest as of `as_of` for everyone (team None) or one team (`team` is its key)."""
    as_of = as_utc(as_of)
    scope = f"team:{team}" if team else "all"
    with ctx.db.read() as session:
        numbers = status(session, agreement=ctx.agreement, calendar=ctx.calendar, as_of=as_of, scope=scope)
        days, actual, goal = digest_chart(session, ctx, as_of=as_of, team=team,
                                          goal_total=float(numbers.marketing.goal))
    team_obj = ctx.agreement.team(team) if team else None
    local = ctx.calendar.local(as_of)
    heading = team_obj.name if team_obj else ctx.agreement.name
    title = f"{heading}: daily SLA digest, {local:%a %b} {local.day}"
    sections = _sections(ctx, numbers, team_obj)
    chart = cumulative_chart_png(days=days, actual=actual, goal=goal, goal_total=numbers.marketing.goal,
                                 title=f"Workable leads, {local:%B %Y}" + (f" ({team_obj.name})" if team_obj else ""))
    return DigestContent(title=title, sections=sections, text=_as_text(title, sections), chart_png=chart,
                         numbers=numbers)


def digest_chart(session: Session, ctx: Context, *, as_of: datetime, team: str | None,
                 goal_total: float) -> tuple[list[date], list[int], list[float]]:
    """The chart's series: the month's local days; cumulative workable leads at the end of each day
    that has begun (today's at `as_of`); the goal line at the end of each day.

    The counts use storage.metrics' definition of "workable MTD" (`handed_off_at` in the month, up
    to `as_of`), in one SQL statement (`storage.metrics.cumulative_workable`), so today's point
    equals the digest's `marketing.workable`.
    """
    calendar = ctx.calendar
    start, end = calendar.month_bounds(as_of)
    first = calendar.local_date(start)
    today = calendar.local_date(as_of)
    days: list[date] = []
    day = first
    while day.month == first.month:
        days.append(day)
        day += timedelta(days=1)
    total = calendar.elapsed(start, end)
    goal = [goal_total * elapsed_fraction(calendar.elapsed(start, calendar.day_bounds(d)[1]), total)
            for d in days]
    begun = [d for d in days if d <= today]
    # Each day's point counts leads handed off before its end (or at/before as_of for today).
    bounds = [calendar.day_bounds(d)[1] for d in begun[:-1]]
    actual = cumulative_workable(session, agreement=ctx.agreement, start=start, ends=bounds, as_of=as_of,
                                 scope=f"team:{team}" if team else "all")
    return days, actual, goal


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{round(value * 100, 1):g}%"


def _num(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.{digits}f}"


def _counts(counts: dict[str, int], name: Any = labels.readable, limit: int = 6) -> str:
    items = list(counts.items())
    shown = ", ".join(f"{name(key)} {n}" for key, n in items[:limit])
    rest = sum(n for _, n in items[limit:])
    return (shown + (f", others {rest}" if rest else "")) or "none"


def _minutes(value: float | None) -> str:
    return labels.business_time(value)


def _sections(ctx: Context, numbers: Status, team: Team | None) -> list[tuple[str, list[str]]]:
    m, s, y = numbers.marketing, numbers.sales, numbers.yesterday
    period = numbers.period
    rejected = numbers.rejected
    names = {r.key: r.name for r in ctx.agreement.all_reps()}
    currency = ctx.agreement.currency

    def money(value: float | None) -> str:
        return labels.money(value, currency)

    pace = (f"Pace: {_pct(m.pace)} of the pace the goal needs, with {_pct(period.elapsed)} of the "
            "month's business time gone" if m.pace is not None else
            "Pace: none yet (no business time has passed this month)")
    marketing = [
        f"Workable leads this month: {m.workable} of a {m.goal} goal ({m.active_reps} reps × "
        f"{ctx.agreement.marketing.workable_leads_per_rep_per_month} each)",
        pace,
        f"Month end: {labels.pace(m.projected, m.goal)} workable leads",
        f"Lead value this month: {money(m.value)}"
        + (f" of a {money(m.value_goal)} goal" if m.value_goal is not None else ""),
        f"By source: {_counts(m.mix.source, labels.source)}",
        f"By offer: {_counts(m.mix.offer, labels.offer)}",
        f"In nurture (not workable yet): {labels.count_of(m.nurture, 'lead')}",
        f"Rejected by Sales: {labels.count_of(rejected.total, 'lead')}"
        + (f" ({_counts(rejected.by_reason, labels.disqualify_reason)})" if rejected.total else ""),
    ]
    if m.per_rep:
        marketing.append("Per rep: " + ", ".join(f"{names.get(k, k)} {n}" for k, n in m.per_rep.items()))
    cap, loop = numbers.capacity, numbers.closed_loop
    marketing.extend(line for line in [labels.capacity_fill(cap.delivered, cap.capacity, cap.utilization),
                                       labels.below_baseline(loop.below_baseline, loop.cold_call_baseline_rate)]
                     if line)
    target = s.opportunity_rate_target
    sales = [
        f"Worked: {_pct(s.worked_pct)} of {labels.count_of(s.cohort, 'lead')} due "
        "(past their first-touch deadline or already touched)",
        f"Touched within the SLA: {_pct(s.within_sla_pct)}",
        f"Speed to lead: median first touch {_minutes(s.speed_to_lead_p50)} "
        f"(90% within {_minutes(s.speed_to_lead_p90)}), in business time",
        f"Follow-up: {_num(s.attempts_per_lead, 2)} attempts per lead; {_pct(s.connect_rate)} of "
        "worked leads connected",
        f"Opportunities: {_pct(s.opportunity_rate)} of workable leads"
        + (f" (target {_pct(target)})" if target is not None else "")
        + f"; {money(s.pipeline_value)} pipeline",
        f"Open breaches: {labels.count_of(s.open_breaches, 'lead')} past the first-touch deadline "
        "with no touch" if s.open_breaches else "Open breaches: none",
        *(line for line in [labels.opportunity_rate_against(s), labels.first_touch_pays(loop.first_touch, currency)]
          if line),
    ]
    breaches = numbers.breaches
    listed = [
        f"{b.name}" + (f" ({b.company})" if b.company else "")
        + f": owner {b.owner_name or b.owner or 'unassigned'}"
        + (f", {_team_name(ctx, b.team)}" if team is None and b.team else "")
        + f", {_minutes(b.minutes_overdue)} overdue (business time)"
        for b in breaches[:BREACHES_SHOWN]
    ]
    more = s.open_breaches - len(listed)
    if more > 0:
        listed.append(f"... and {more} more")
    if not listed:
        listed = ["None: every lead past its first-touch deadline has been touched."]
    day = y.date
    yesterday = [
        f"Workable leads handed off: {y.workable}; to nurture: {y.nurture}",
        f"First touches: {y.first_touches} ({y.first_touches_within_sla} within the SLA)",
        f"Opportunities created: {y.opportunities} ({money(y.opportunity_amount)})",
        f"Deadlines missed: {y.breaches}"
        + (" (" + ", ".join(f"{b.name} ({names.get(b.owner or '', b.owner or 'unassigned')})"
                            for b in y.breached[:BREACHES_SHOWN]) + ")" if y.breached else ""),
    ]
    return [
        ("Marketing: leads delivered", marketing),
        ("Sales: every lead worked", sales),
        ("Open breaches", listed),
        (f"Yesterday ({day:%a %b} {day.day})", yesterday),
    ] + ([("Experiments: leads sent to Sales as a trial",
           [experiment_sentence(e.model_dump()) for e in numbers.experiments])]
         if numbers.experiments else [])


def _team_name(ctx: Context, key: str) -> str:
    team = ctx.agreement.team(key)
    return team.name if team else key


def _as_text(title: str, sections: Iterable[tuple[str, list[str]]]) -> str:
    lines = [title]
    for heading, body in sections:
        lines += ["", heading, *(f"- {line}" for line in body)]
    return "\n".join(lines)


# --- schedule ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipient:
    """One digest to send today: who (`key`), where (`platform`, `target`), which scope."""

    key: str                 # marketing_vp | sales_vp | manager:TEAM | team:TEAM
    platform: str            # a chat platform, or "email"
    target: str              # a user or channel id, or an e-mail address
    to: str                  # user | channel | email
    team: str | None         # None: the whole-company digest
    due_at: datetime | None = None   # today's scheduled instant (None: forced, whatever the schedule)

    def period_key(self, day: date) -> str:
        return f"{self.key}:{self.platform}:{day.isoformat()}"

    def dedupe_key(self, day: date) -> str:
        return f"digest:{self.period_key(day)}"


def due_recipients(session: Session, ctx: Context, *, now: datetime, force: bool = False) -> list[Recipient]:
    """Everyone whose digest is due at `now` (today, on a scheduled day, at or after its local time),
    whether or not it was sent already. `force` ignores the schedule (`slabot digest --send`)."""
    calendar = ctx.calendar
    today = calendar.local_date(now)
    weekday = WEEKDAYS[today.weekday()]
    found: dict[tuple[str, str], Recipient] = {}
    for entry in ctx.agreement.digests:
        scheduled = calendar.at_local(today, entry.at)
        if not force and (weekday not in entry.days or now < scheduled):
            continue
        for audience in entry.to:
            for recipient in _expand(session, ctx, audience, via=entry.via):
                found.setdefault((recipient.key, recipient.platform),
                                 replace(recipient, due_at=None if force else scheduled))
    return list(found.values())


def _expand(session: Session, ctx: Context, audience: str, *, via: Iterable[str] = ("chat",)) -> list[Recipient]:
    agreement = ctx.agreement
    recipients: list[Recipient] = []
    if "email" in via:
        # By e-mail: the person's address in the agreement (slabot check refuses a missing one, and
        # team_channels by e-mail). Keyed like chat, with "email" as the platform.
        if audience in ("marketing_vp", "sales_vp"):
            person = getattr(agreement.people, audience)
            if person is not None and person.email:
                recipients.append(Recipient(audience, EMAIL, person.email, "email", None))
        elif audience == "managers":
            recipients += [Recipient(f"manager:{team.key}", EMAIL, team.manager.email, "email", team.key)
                           for team in agreement.teams if team.manager is not None and team.manager.email]
    for platform in (ctx.platforms if "chat" in via else ()):
        if audience in ("marketing_vp", "sales_vp"):
            person = getattr(agreement.people, audience)
            target = dm_target(person, platform) if person is not None else None
            if target:
                recipients.append(Recipient(audience, platform, target, "user", None))
        elif audience == "managers":
            for team in agreement.teams:
                target = dm_target(team.manager, platform) if team.manager is not None else None
                if target:
                    recipients.append(Recipient(f"manager:{team.key}", platform, target, "user", team.key))
        elif audience == "team_channels":
            for team in agreement.teams:
                channel = team_channel(session, agreement, team=team, platform=platform)
                if channel:
                    recipients.append(Recipient(f"team:{team.key}", platform, channel, "channel", team.key))
    return recipients


def queue_due_digests(ctx: Context, *, now: datetime, force: bool = False) -> list[str]:
    """Queue every digest due at `now` that was not sent today; returns the outbox keys queued.

    Cheap when nothing is due or everything was sent (one indexed lookup): the content (metrics
    and chart) is only built for the scopes someone still needs. `force` ignores the schedule but
    not the once-per-local-day rule (`slabot digest --send`).
    """
    now = as_utc(now)
    today = ctx.calendar.local_date(now)
    starts = {} if force else schedule_starts(ctx, now=now)
    with ctx.db.read() as session:
        recipients = due_recipients(session, ctx, now=now, force=force)
        if not recipients:
            return []
        sent = set(runs(session, job=DIGEST_JOB, period_keys=[r.period_key(today) for r in recipients]))
    pending = [r for r in recipients if r.period_key(today) not in sent
               and (force or _may_send(ctx, r, now=now, started=starts.get(r.platform, now)))]
    if not pending:
        return []
    contents: dict[str | None, DigestContent] = {}
    for recipient in pending:
        if recipient.team not in contents:
            contents[recipient.team] = build_digest(ctx, as_of=now, team=recipient.team)
    queued: list[str] = []
    with ctx.db.write() as session:
        for recipient in pending:
            # Here lay dragons: the JobRun insert is the claim; a second worker's insert matches
            # nothing and it queues nothing. The outbox key would stop a duplicate on its own too.
            if not _claim_run(session, recipient.period_key(today), now):
                continue
            content = contents[recipient.team]
            payload = content.payload(to=recipient.to)
            if recipient.platform == EMAIL:
                payload |= {"agreement": ctx.agreement.name, "why": why_you_get_this(ctx, recipient)}
            if enqueue(session, dedupe_key=recipient.dedupe_key(today), kind="digest",
                       platform=recipient.platform, target=recipient.target, now=now,
                       payload=payload):
                queued.append(recipient.dedupe_key(today))
    return queued


def why_you_get_this(ctx: Context, recipient: Recipient) -> str:
    """The e-mail's footer: which agreement sends it, to whom, and how it stops (no unsubscribe link:
    the agreement decides who gets the digest)."""
    if recipient.key.startswith("manager:"):
        team = ctx.agreement.team(recipient.key.removeprefix("manager:"))
        role = f"the manager of {team.name if team else recipient.key.removeprefix('manager:')}"
    else:
        role = {"marketing_vp": "its Marketing VP", "sales_vp": "its Sales VP"}.get(recipient.key, recipient.key)
    return (f"You get this e-mail because the service level agreement \"{ctx.agreement.name}\" sends its "
            f"daily digest to {role} by e-mail. To stop it or move it to chat, ask whoever maintains the "
            "agreement to change its digests.")


def _may_send(ctx: Context, recipient: Recipient, *, now: datetime, started: datetime) -> bool:
    """On time (within ON_TIME of its slot): always. Late (a catch-up after downtime): only if the
    service was already running its digest schedule before the slot, and only in business hours."""
    if recipient.due_at is None or now - recipient.due_at <= ON_TIME:
        return True
    if recipient.due_at < started - ON_TIME:
        return False        # missed before this service ever ran: a first start catches nothing up
    return ctx.calendar.is_open(now)


def schedule_starts(ctx: Context, *, now: datetime) -> dict[str, datetime]:
    """When this service first ran its digest schedule on each enabled platform; recorded now for a
    platform seen for the first time. One indexed read per tick once every platform has its row."""
    platforms = list(ctx.platforms) + ([EMAIL] if any(EMAIL in d.via for d in ctx.agreement.digests) else [])
    if not platforms:
        return {}

    def read() -> dict[str, datetime]:
        with ctx.db.read() as session:
            rows = runs(session, job=SCHEDULE_START_JOB, period_keys=platforms)
        return {platform: as_utc(at) for platform, at in rows.items()}

    starts = read()
    if all(platform in starts for platform in platforms):
        return starts
    with ctx.db.write() as session:
        for platform in platforms:
            if platform not in starts:
                _claim_run(session, platform, now, job=SCHEDULE_START_JOB)
    return read()


def _claim_run(session: Session, period_key: str, now: datetime, *, job: str = DIGEST_JOB) -> bool:
    """Insert the day's JobRun row; False if it was there already (another worker, an earlier tick)."""
    return claim_run(session, job=job, period_key=period_key, now=now)
