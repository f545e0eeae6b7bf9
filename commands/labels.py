"""Identifiers -> words for people: the one place that names reasons, facts, states and numbers.

Everything a person reads (cards, `/sla` answers, digests, App Home, the demo) goes through here,
so a VP reads "No budget" and "81% touched within the SLA", never `no_budget` or `0.81`. Stored
values, API fields and the values buttons and selects carry stay identifiers: only the words change.

Keys the agreement defines (disqualify reasons, tiers, personas, sources) that have no phrase here
become readable by rule: underscores to spaces, first letter capitalised (`went_dark` -> "Went dark").
Numbers are formatted, never rounded differently from `storage.metrics.status()`: a percentage is
the fraction times 100 to whole percent, business minutes are rounded to the minute.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from commands.context import Context

__all__ = [
    "activity", "bant_fact", "bant_summary", "business_time", "count_of", "disqualify_reason", "duration",
    "money", "nudge_step", "nurture_reason", "offer", "pace", "percent", "persona", "qualification_reason",
    "readable", "role", "score_reason", "source", "stage", "state", "tier",
]

NA = "n/a"


def readable(key: object) -> str:
    """The rule for a key without a phrase: `student_or_job_seeker` -> "Student or job seeker"."""
    if key is None:
        return NA
    text = " ".join(str(key).replace("_", " ").split())
    return text[:1].upper() + text[1:] if text else NA


def _lookup(table: Mapping[str, str], key: object) -> str:
    if key is None:
        return NA
    return table.get(str(key).strip().lower(), readable(key))


# --- what leads and people are ----------------------------------------------------------------

DISQUALIFY_REASONS = {
    "no_budget": "No budget", "no_need": "No need", "no_authority": "No authority to buy",
    "no_timeframe": "No timeframe", "bad_contact_data": "Bad contact data",
    "competitor": "Chose a competitor", "student_or_job_seeker": "Student or job seeker",
    "duplicate": "Duplicate lead", "not_a_fit": "Not a fit", "unresponsive": "Unresponsive",
}

STATES = {
    "received": "Received", "nurture": "Nurture", "routed": "New: waiting to be claimed",
    "claimed": "Claimed", "working": "Working", "connected": "Connected",
    "qualified": "Qualified (opportunity)", "disqualified": "Disqualified", "recycled": "Back in nurture",
    "won": "Won", "lost": "Lost",
}

ACTIVITIES = {
    "demo_requested": "Requested a demo", "pricing_page_viewed": "Viewed the pricing page",
    "webinar_attended": "Attended a webinar", "webinar_registered": "Registered for a webinar",
    "ebook_downloaded": "Downloaded an ebook", "whitepaper_downloaded": "Downloaded a whitepaper",
    "careers_page_viewed": "Viewed the careers page", "form_submitted": "Submitted a form",
    "trial_started": "Started a trial", "contact_us": "Asked to be contacted",
    "email_clicked": "Clicked an e-mail", "email_opened": "Opened an e-mail",
    # What reps record on a lead (event types of its history).
    "claimed": "Claimed", "log_call": "Call logged", "log_email": "E-mail logged",
    "connected": "Connected", "qualify": "Qualified (opportunity)", "disqualify": "Disqualified",
    "recycle": "Back to nurture", "reassign": "Reassigned", "nudge": "Nudge",
    "claim_timeout": "Not claimed in time",
}

SOURCES = {
    "demo_request": "Demo request", "webinar": "Webinar", "ebook": "Ebook", "list_purchase": "Purchased list",
    "website": "Website", "paid_search": "Paid search", "organic_search": "Organic search",
    "social": "Social", "referral": "Referral", "trade_show": "Trade show", "event": "Event",
    "partner": "Partner", "email": "E-mail", "content": "Content", "cold_call": "Cold call",
    "hubspot": "HubSpot", "csv": "CSV import",
}

OFFERS = {
    "product_demo": "Product demo", "free_trial": "Free trial", "careers page": "Careers page",
    "trade show attendee list": "Trade show attendee list", "contact_sales": "Contact sales",
}

ROLES = {
    "rep": "Rep", "manager": "Manager", "managers": "Managers", "marketing_vp": "VP Marketing",
    "sales_vp": "VP Sales", "team_channels": "Team channels", "system": "slabot",
}

PERSONAS = {"smb": "SMB", "mid_market": "Mid-market", "enterprise": "Enterprise"}

TIERS = {"hot": "Hot", "standard": "Standard", "warm": "Warm", "cold": "Cold"}

STAGES = {
    "awareness": "Awareness", "education": "Education", "solution_research": "Solution research",
    "evaluation": "Evaluation", "decision": "Decision",
}

BANT = {"need": "Need", "budget": "Budget", "timeframe": "Timeframe", "authority": "Authority"}

NURTURE_REASONS = {
    "score_below_threshold": "Score below the threshold",
    "before_handoff_stage": "Not yet at the buying stage for handoff",
    "bant_below_minimum": "Too few BANT facts known",
    "segment_not_workable": "From a segment that is not workable",
}


def disqualify_reason(key: object) -> str:
    return _lookup(DISQUALIFY_REASONS, key)


def state(key: object) -> str:
    return _lookup(STATES, key)


def activity(key: object) -> str:
    return _lookup(ACTIVITIES, key)


def source(key: object) -> str:
    return _lookup(SOURCES, key)


def offer(key: object) -> str:
    return _lookup(OFFERS, key)


def role(key: object) -> str:
    return _lookup(ROLES, key)


def persona(key: object) -> str:
    return _lookup(PERSONAS, key)


def tier(key: object) -> str:
    return _lookup(TIERS, key)


def stage(key: object) -> str:
    return _lookup(STAGES, key)


def nurture_reason(key: object) -> str:
    return _lookup(NURTURE_REASONS, key)


def bant_fact(name: str, value: object) -> str | None:
    """One BANT fact as words: `authority: True` -> "Authority known", a note -> "Need: cut costs";
    None when the fact is not known (absent, false or empty)."""
    if value is None or value is False or value == "":
        return None
    label = _lookup(BANT, name)
    if value is True:
        return f"{label} known"
    if isinstance(value, int | float):
        return f"{label}: {value:,.0f}" if float(value).is_integer() else f"{label}: {value:,}"
    return f"{label}: {value}"


def bant_summary(bant: Mapping[str, Any] | None) -> str:
    facts = [fact for name, value in (bant or {}).items() if (fact := bant_fact(name, value))]
    return "; ".join(facts) or "None known"


# --- agreement terms ----------------------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+)\s*([dhm])")


def duration(value: object) -> str:
    """An agreement duration (`15m`, `2h`, `1h30m`, `5d`) as "15 min", "2 h", "1 h 30 min",
    "5 business days"; anything else as it is."""
    text = str(value).strip()
    parts = _DURATION_PART.findall(text)
    if not parts or _DURATION_PART.sub("", text).strip():
        return text
    words = []
    for amount, unit in parts:
        n = int(amount)
        words.append(f"{n} business day{'s' if n != 1 else ''}" if unit == "d"
                     else f"{n} h" if unit == "h" else f"{n} min")
    return " ".join(words)


def nudge_step(at: float, notify: Sequence[str], reassign: bool) -> str:
    """A rung of the escalation ladder: "at 200% of the first-touch window: tell the manager and VP
    Marketing, and reassign"."""
    who = [role(r).replace("Rep", "the rep").replace("Manager", "the manager") for r in notify]
    told = "tell " + _and(who) if who else "tell nobody"
    return f"at {percent(at)} of the first-touch window: {told}" + (", and reassign the lead" if reassign else "")


def _and(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


# --- qualification reasons (stored as sla.qualification writes them) ----------------------------

_CONDITION = re.compile(r"(\w+)=(\[[^\]]*\]|[^,]+)")


def _condition(text: str) -> str:
    """`activity=demo_requested, page_visits_at_least=20` -> "requested a demo, 20+ page visits"."""
    found = _CONDITION.findall(text)
    if not found:
        return text
    words = []
    for key, raw in found:
        value = raw.strip().strip("'\"")
        if key == "activity":
            words.append(activity(value).lower())
        elif key == "page_visits_at_least":
            words.append(f"{value}+ page visits")
        elif key in ("employees_between", "employees_at_least", "employees_at_most"):
            numbers = [int(n) for n in re.findall(r"\d+", value)]
            if key == "employees_between" and len(numbers) == 2:
                words.append(f"{numbers[0]:,} to {numbers[1]:,} employees")
            elif numbers:
                words.append(f"{'at least' if key.endswith('least') else 'at most'} {numbers[0]:,} employees")
        elif key in ("score_at_least", "score_below"):
            words.append(f"score {'at least' if key.endswith('least') else 'below'} {value}")
        elif key == "source":
            words.append(f"source {source(value)}")
        elif key == "offer":
            words.append(f"offer {offer(value)}")
        elif key == "title_contains":
            words.append(f"title contains “{value}”")
        else:
            words.append(f"{readable(key).lower()} {readable(value)}")
    return ", ".join(words)


def score_reason(text: str) -> str:
    """`+30 activity=demo_requested` -> "+30 requested a demo"."""
    points, _, rest = text.partition(" ")
    return f"{points} {_condition(rest)}" if re.fullmatch(r"[+-]\d+", points) and rest else text


_REASONS: list[tuple[re.Pattern[str], Any]] = [
    (re.compile(r"^score (-?\d+) >= threshold (-?\d+)$"),
     lambda m: f"Score {m[1]}, at or above the threshold of {m[2]}"),
    (re.compile(r"^score (-?\d+) < threshold (-?\d+)$"),
     lambda m: f"Score {m[1]}, below the threshold of {m[2]}"),
    (re.compile(r"^no persona matched: no buying-stage gate$"),
     lambda _m: "No persona matched, so no buying-stage gate"),
    (re.compile(r"^persona (\S+) at stage (\S+) \(handoff at (\S+)\)$"),
     lambda m: f"{persona(m[1])} buyer at the {stage(m[2]).lower()} stage (handed off from "
               f"{stage(m[3]).lower()})"),
    (re.compile(r"^persona (\S+) at stage (\S+), before handoff stage (\S+)$"),
     lambda m: f"{persona(m[1])} buyer at the {stage(m[2]).lower()} stage, before "
               f"{stage(m[3]).lower()} (the handoff stage)"),
    (re.compile(r"^BANT (\d)/4 known \(([^)]*)\), minimum (\d+)$"),
     lambda m: f"{m[1]} of 4 BANT facts known ({_bant_names(m[2])}); {m[3]} needed"),
    (re.compile(r"^BANT (\d)/4 known, below minimum (\d+)$"),
     lambda m: f"Only {m[1]} of 4 BANT facts known; {m[2]} needed"),
    (re.compile(r"^segment (.+) is not workable$"),
     lambda m: f"Segment not workable ({_condition(m[1])})"),
    (re.compile(r"^tier (\S+)$"), lambda m: f"{tier(m[1])} tier"),
]


def _bant_names(text: str) -> str:
    names = [n.strip() for n in text.split(",") if n.strip() and n.strip() != "none"]
    return ", ".join(_lookup(BANT, n).lower() for n in names) or "none"


def qualification_reason(text: str) -> str:
    """A reason `sla.qualification` stored (`BANT 3/4 known (need, budget, timeframe), minimum 2`)
    as a sentence ("3 of 4 BANT facts known (need, budget, timeframe); 2 needed"). A reason in
    another form is shown as it is: it was written for people already."""
    for pattern, phrase in _REASONS:
        match = pattern.match(text.strip())
        if match:
            return str(phrase(match))
    return text


# --- numbers ------------------------------------------------------------------------------------

CURRENCY_SIGNS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹", "CAD": "CA$", "AUD": "A$"}


def percent(value: Any) -> str:
    """A fraction as a whole percentage (0.81 -> "81%")."""
    return NA if value is None else f"{float(value) * 100:.0f}%"


def money(amount: Any, currency: str | None = "USD") -> str:
    """`98000` -> "$98,000"; a currency without a sign: "98,000 CHF"."""
    if amount is None:
        return NA
    text = f"{float(amount):,.0f}"
    code = (currency or "").upper()
    sign = CURRENCY_SIGNS.get(code)
    if sign:
        return f"-{sign}{text[1:]}" if text.startswith("-") else f"{sign}{text}"
    return f"{text} {code}".rstrip()


def business_time(minutes: Any) -> str:
    """Business minutes as "9 min", "1 h 35 min" or "2 h"."""
    if minutes is None:
        return NA
    total = round(float(minutes))
    if total < 60:
        return f"{total} min"
    hours, rest = divmod(total, 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"


def count_of(value: Any, noun: str) -> str:
    """`3, "lead"` -> "3 leads"; `1` -> "1 lead"."""
    if value is None:
        return f"{NA} {noun}s"
    number = float(value)
    shown = f"{number:,.0f}" if number.is_integer() else f"{number:,.1f}"
    return f"{shown} {noun}{'' if number == 1 else 's'}"


def pace(projected: Any, goal: Any) -> str:
    """The month's projection against its goal: "on pace for 142 of 200"."""
    if projected is None:
        return "no pace yet"
    return f"on pace for {float(projected):,.0f} of {float(goal or 0):,.0f}"


# --- the closed loop in plain words (digest and /sla status) ------------------------------------

_VERSUS = {"above": "above", "below": "below", "unclear": "too close to call against"}


def rate_with_interval(rate: Any, interval: Sequence[float] | None) -> str:
    """`0.18, [0.12, 0.26]` -> "18% (12–26%)": a rate is never shown without its interval."""
    if rate is None:
        return NA
    if not interval:
        return percent(rate)
    return f"{percent(rate)} ({float(interval[0]) * 100:.0f}–{float(interval[1]) * 100:.0f}%)"


def capacity_fill(delivered: int, capacity: int, utilization: Any) -> str | None:
    """This week's workable leads against the reps' summed weekly capacity; None with no active rep
    (no capacity to fill)."""
    if not capacity:
        return None
    return (f"Marketing's share of Sales' time: {count_of(delivered, 'workable lead')} this week fill "
            f"{percent(utilization)} of the reps' weekly capacity of {capacity:,}")


def opportunity_rate_against(sales: Any) -> str | None:
    """The opportunity rate with its interval against the target and the cold-call baseline; None
    when the agreement sets neither or there is no workable lead yet."""
    parts = []
    if sales.opportunity_rate_vs_target is not None:
        parts.append(f"{_VERSUS[sales.opportunity_rate_vs_target]} the {percent(sales.opportunity_rate_target)} "
                     "target")
    if sales.opportunity_rate_vs_baseline is not None:
        parts.append(f"{_VERSUS[sales.opportunity_rate_vs_baseline]} cold calling's "
                     f"{percent(sales.cold_call_baseline_rate)}")
    if not parts:
        return None
    rate = rate_with_interval(sales.opportunity_rate, sales.opportunity_rate_interval)
    return f"Opportunity rate {rate}: {_and(parts)}"


def first_touch_pays(split: Any, currency: str | None = "USD") -> str | None:
    """Does the SLA pay: opportunity rates (with intervals) and pipeline per lead of the leads touched
    within the SLA and of the missed ones; None when no lead is due yet."""
    if split is None or not (split.met.leads or split.missed.leads):
        return None

    def bounds(side: Any) -> str:
        low, high = side.interval
        few = f"; only {count_of(side.leads, 'lead')}" if side.leads < 30 else ""
        return f"({float(low) * 100:.0f}–{float(high) * 100:.0f}%{few})"

    met, missed = split.met, split.missed
    if met.leads:
        first = (f"Leads touched within the SLA became opportunities {percent(met.opportunity_rate)} of the "
                 f"time {bounds(met)}")
    else:
        first = "No lead was touched within the SLA yet"
    second = (f"missed ones {percent(missed.opportunity_rate)} {bounds(missed)}" if missed.leads
              else "none missed it")
    pipeline = ""
    if met.leads and missed.leads:
        pipeline = (f"; pipeline per lead {money(met.pipeline_per_lead, currency)} against "
                    f"{money(missed.pipeline_per_lead, currency)}")
    return f"{first}, {second}{pipeline}"


def below_baseline(segments: Sequence[Any], baseline: Any, limit: int = 3) -> str | None:
    """The segments surely below the cold-call baseline (their interval's upper bound is below it)."""
    if not segments:
        return None
    named = [
        source(s.source) + (f" / {offer(s.offer)}" if s.offer else "")
        + f" ({s.opportunities} of {count_of(s.leads, 'lead')}, at most {float(s.interval[1]) * 100:.1f}%)"
        for s in segments[:limit]
    ]
    rest = len(segments) - len(named)
    more = f" and {rest} more" if rest > 0 else ""
    return f"Below cold calling's {percent(baseline)}: {'; '.join(named)}{more}"


def local_time(ctx: Context, at: datetime | None) -> str:
    """An instant in the agreement's time zone, as people read it: "Tue Nov 24, 09:30 EST" ("n/a": none)."""
    if at is None:
        return "n/a"
    local = ctx.calendar.local(at)
    return f"{local:%a %b} {local.day}, {local:%H:%M} {local.tzname()}"
