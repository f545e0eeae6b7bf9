"""The agreement file: its typed model, its loader and every check `slabot check` makes."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from sla.calendar import BusinessCalendar

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: The built-in buying-journey order, earliest first. An agreement may define its own `stages`.
DEFAULT_STAGES = ("awareness", "education", "solution_research", "evaluation", "decision")
NOTIFY_ROLES = ("rep", "manager", "marketing_vp", "sales_vp")
DIGEST_AUDIENCES = ("marketing_vp", "sales_vp", "team_channels", "managers")
#: The chat platforms the agreement names people and channels on (their `slack:` and `teams:` keys).
CHAT_PLATFORMS = ("slack", "teams")
#: How a direct message is addressed by e-mail on a chat platform, to a person without an id there:
#: Slack resolves `email:ADDRESS` with users.lookupByEmail; Teams the bare address through the
#: connector's member lookup.
EMAIL_TARGETS = {"slack": "email:{}", "teams": "{}"}

_DURATION = re.compile(r"^\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*$")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True)
class Duration:
    """A span of business time. `d` is one business day's worth of business hours."""

    days: int = 0
    minutes: int = 0

    def to_timedelta(self, day_length: timedelta) -> timedelta:
        return self.days * day_length + timedelta(minutes=self.minutes)

    def __str__(self) -> str:
        hours, minutes = divmod(self.minutes, 60)
        parts = [f"{self.days}d" if self.days else "", f"{hours}h" if hours else "",
                 f"{minutes}m" if minutes else ""]
        return "".join(parts) or "0m"


def parse_duration(value: object) -> Duration:
    """`15m`, `2h`, `1h30m`, `5d` -> Duration; anything else is an error naming the accepted forms."""
    if isinstance(value, Duration):
        return value
    text = str(value)
    match = _DURATION.match(text) if isinstance(value, str) else None
    if not match or not any(match.groups()):
        raise ValueError(f"bad duration {text!r}: use forms like 15m, 2h, 1h30m or 5d")
    days, hours, minutes = (int(g) if g else 0 for g in match.groups())
    duration = Duration(days=days, minutes=hours * 60 + minutes)
    if duration.days == 0 and duration.minutes == 0:
        raise ValueError(f"bad duration {text!r}: must be longer than zero")
    return duration


def parse_percent(value: object) -> float:
    """`50%` -> 0.5 (a bare number is read as percent too)."""
    text = str(value).strip()
    number = text[:-1] if text.endswith("%") else text
    try:
        fraction = float(number) / 100
    except ValueError:
        raise ValueError(f"bad percentage {text!r}: use a form like 50%") from None
    if fraction <= 0:
        raise ValueError(f"bad percentage {text!r}: must be above 0%")
    return fraction


def parse_clock_time(value: object) -> time:
    text = str(value)
    match = _HHMM.match(text)
    if not match:
        raise ValueError(f"bad time {text!r}: use 24-hour HH:MM like 09:00")
    return time(int(match.group(1)), int(match.group(2)))


def _parse_weekday(value: object) -> str:
    text = str(value).lower()[:3]
    if text not in WEEKDAYS:
        raise ValueError(f"bad weekday {value!r}: use mon, tue, wed, thu, fri, sat or sun")
    return text


BusinessDuration = Annotated[Duration, BeforeValidator(parse_duration)]
Percent = Annotated[float, BeforeValidator(parse_percent)]
ClockTime = Annotated[time, BeforeValidator(parse_clock_time)]
Weekday = Annotated[str, BeforeValidator(_parse_weekday)]
Key = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_\-]*$", max_length=64)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Person(_Model):
    name: str
    email: str | None = None
    slack: str | None = None
    teams: str | None = None

    def id_on(self, platform: str) -> str | None:
        """Their id on a chat platform of the agreement (None on any other)."""
        value: str | None = getattr(self, platform) if platform in CHAT_PLATFORMS else None
        return value

    def dm_target(self, platform: str) -> str | None:
        """How a direct message to them is addressed on a chat platform: their id there, else their
        e-mail in the platform's form (EMAIL_TARGETS); None if neither is known."""
        by_email = EMAIL_TARGETS.get(platform)
        return self.id_on(platform) or (by_email.format(self.email) if by_email and self.email else None)

    def chat_ids(self) -> list[str]:
        """Their ids on every chat platform of the agreement, in CHAT_PLATFORMS order."""
        return [i for i in (self.id_on(p) for p in CHAT_PLATFORMS) if i]


class Rep(Person):
    key: Key
    capacity_per_week: int = Field(default=50, gt=0)
    weight: float = Field(default=1.0, gt=0)
    active: bool = True


class ChannelIds(_Model):
    slack: str | None = None
    teams: str | None = None

    def on(self, platform: str) -> str | None:
        """The channel on a chat platform of the agreement (None on any other)."""
        value: str | None = getattr(self, platform) if platform in CHAT_PLATFORMS else None
        return value


class Team(_Model):
    key: Key
    name: str
    channel: ChannelIds = ChannelIds()
    manager: Person | None = None
    reps: list[Rep] = Field(min_length=1)


class People(_Model):
    marketing_vp: Person | None = None
    sales_vp: Person | None = None


class BusinessHours(_Model):
    days: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS[:5]), min_length=1)
    start: ClockTime = time(9)
    end: ClockTime = time(17)
    holidays: str | list[date] | None = None
    subdivision: str | None = None


class MarketingGoals(_Model):
    workable_leads_per_rep_per_month: int = Field(ge=0)
    lead_value_goal_per_month: float | None = Field(default=None, ge=0)
    opportunity_rate_target: float | None = Field(default=None, ge=0, le=1)
    #: Sales' opportunity rate from cold calling (seed 004 #5): the rate any marketing lead must
    #: beat to be worth Sales' time. Optional; status, digest and `/sla status` compare against it.
    cold_call_baseline_rate: float | None = Field(default=None, ge=0, le=1)


class Condition(_Model):
    """What a rule matches. Every key given must match (AND); an empty condition matches all."""

    activity: str | None = None
    page_visits_at_least: int | None = None
    employees_between: tuple[int, int] | None = None
    employees_at_least: int | None = None
    employees_at_most: int | None = None
    score_at_least: int | None = None
    score_below: int | None = None
    source: str | list[str] | None = None
    offer: str | list[str] | None = None
    campaign: str | list[str] | None = None
    country: str | list[str] | None = None
    stage: str | list[str] | None = None
    title_contains: str | None = None

    @field_validator("employees_between")
    @classmethod
    def _ordered(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and value[0] > value[1]:
            raise ValueError(f"employees_between [{value[0]}, {value[1]}] is empty: low > high")
        return value

    def is_catch_all(self) -> bool:
        return not any(v is not None for v in self.model_dump().values())


class ScoringRule(_Model):
    when: Condition
    points: int


class Persona(_Model):
    key: Key
    when: Condition
    handoff_stage: str


class Bant(_Model):
    minimum: int = Field(default=0, ge=0, le=4)


class Segment(_Model):
    when: Condition
    value: float | None = Field(default=None, ge=0)
    workable: bool = True


class Qualification(_Model):
    score_threshold: int = 0
    scoring: list[ScoringRule] = []
    stages: list[str] = Field(default_factory=lambda: list(DEFAULT_STAGES), min_length=1)
    personas: list[Persona] = []
    bant: Bant = Bant()
    segments: list[Segment] = []
    default_value: float = Field(default=0, ge=0)


class RoutingRule(_Model):
    when: Condition = Condition()
    team: str


class Routing(_Model):
    rules: list[RoutingRule] = Field(min_length=1)
    strategy: Literal["round_robin", "weighted", "least_loaded"] = "round_robin"
    skip_unavailable: bool = True


class Attempts(_Model):
    count: int = Field(ge=1)
    within: BusinessDuration


class Tier(_Model):
    key: Key
    when: Condition = Condition()
    first_touch_within: BusinessDuration
    attempts: Attempts


class Sales(_Model):
    tiers: list[Tier] = Field(min_length=1)
    claim_within: BusinessDuration | None = None
    disqualify_reasons: list[Key] = Field(min_length=1)


class Nudge(_Model):
    at: Percent
    notify: list[Literal["rep", "manager", "marketing_vp", "sales_vp"]] = []
    reassign: bool = False
    outside_business_hours: bool = False


class Digest(_Model):
    to: list[Literal["marketing_vp", "sales_vp", "team_channels", "managers"]] = Field(min_length=1)
    at: ClockTime
    days: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS[:5]), min_length=1)
    #: How it is delivered: `chat` (a direct message or the team's channel), `email` (the person's
    #: `email`; not for team_channels), or both.
    via: list[Literal["chat", "email"]] = Field(default=["chat"], min_length=1)


#: The lead fields a HubSpot contact property can fill (`integrations.hubspot.properties`), and
#: the property each is read from unless the agreement says otherwise (no default: not read).
HUBSPOT_DEFAULT_PROPERTIES: dict[str, str | None] = {
    "email": "email", "first_name": "firstname", "last_name": "lastname", "title": "jobtitle",
    "company": "company", "employees": "numberofemployees", "country": "country", "phone": "phone",
    "source": "hs_analytics_source", "stage": "lifecyclestage", "page_visits": "hs_analytics_num_page_views",
    "offer": None, "campaign": None, "activities": None,
    "need": None, "budget": None, "timeframe": None, "authority": None,
}
#: A HubSpot property's internal name (lower case letters, digits, underscores).
HubSpotProperty = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=100)]


class HubSpotIntegration(_Model):
    """How HubSpot contacts become leads and deals become outcomes (used with HUBSPOT_ACCESS_TOKEN)."""

    #: Lead field -> HubSpot property, over HUBSPOT_DEFAULT_PROPERTIES; `null` stops reading a field.
    properties: dict[str, HubSpotProperty | None] = {}
    #: Deal stages (internal ids) that mean won or lost; other pipelines have their own ids.
    won_stages: list[str] = Field(default_factory=lambda: ["closedwon"], min_length=1)
    lost_stages: list[str] = Field(default_factory=lambda: ["closedlost"], min_length=1)

    @field_validator("properties")
    @classmethod
    def _known_fields(cls, value: dict[str, str | None]) -> dict[str, str | None]:
        unknown = sorted(set(value) - set(HUBSPOT_DEFAULT_PROPERTIES))
        if unknown:
            raise ValueError(f"unknown lead field {', '.join(map(repr, unknown))} (fields: "
                             f"{', '.join(HUBSPOT_DEFAULT_PROPERTIES)})")
        return value

    def property_map(self) -> dict[str, str]:
        """Lead field -> the HubSpot property it is read from (defaults, then the agreement's)."""
        merged = {**HUBSPOT_DEFAULT_PROPERTIES, **self.properties}
        return {field: prop for field, prop in merged.items() if prop}


class Integrations(_Model):
    hubspot: HubSpotIntegration = HubSpotIntegration()


class Experiment(_Model):
    """A trial of leads the agreement does not make workable (seed item 9, "experiment"): between
    `start` and `end` (local dates, both included), up to `limit` matching leads go to Sales anyway,
    tagged with `key`, so their opportunity rate can be judged against the target."""

    key: Key
    #: How people read it (cards, digest); the key when not given.
    name: str | None = Field(default=None, max_length=100)
    when: Condition
    limit: int = Field(gt=0)
    start: date
    end: date

    @property
    def label(self) -> str:
        return self.name or self.key


class Agreement(_Model):
    name: str
    timezone: str
    #: ISO 4217 code of every amount (lead value, goals, pipeline); only changes how money is shown.
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    business_hours: BusinessHours = BusinessHours()
    people: People = People()
    teams: list[Team] = Field(min_length=1)
    marketing: MarketingGoals
    qualification: Qualification = Qualification()
    routing: Routing
    sales: Sales
    nudges: list[Nudge] = []
    digests: list[Digest] = []
    #: CRM connections (HubSpot's property mapping and deal stages).
    integrations: Integrations = Integrations()
    #: Trials of leads the agreement would send to nurture (routed to Sales up to a limit).
    experiments: list[Experiment] = []
    #: sha256 prefix of the canonical content: each lead keeps the version it was routed under.
    version: str = ""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}: use an IANA name like America/New_York") from None
        return value

    # --- lookups the rest of the code uses -------------------------------------------------

    def team(self, key: str) -> Team | None:
        return next((t for t in self.teams if t.key == key), None)

    def rep(self, key: str) -> Rep | None:
        return next((r for t in self.teams for r in t.reps if r.key == key), None)

    def team_of_rep(self, key: str) -> Team | None:
        return next((t for t in self.teams if any(r.key == key for r in t.reps)), None)

    def all_reps(self) -> list[Rep]:
        return [r for t in self.teams for r in t.reps]

    def tier(self, key: str) -> Tier | None:
        return next((t for t in self.sales.tiers if t.key == key), None)

    def experiment(self, key: str) -> Experiment | None:
        return next((e for e in self.experiments if e.key == key), None)

    def calendar(self) -> BusinessCalendar:
        hours = self.business_hours
        return BusinessCalendar(
            timezone=self.timezone,
            days=[WEEKDAYS.index(d) for d in hours.days],
            start=hours.start,
            end=hours.end,
            holidays=hours.holidays,
            subdivision=hours.subdivision,
        )


# --- loading and checking ------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    path: str
    message: str
    line: int | None = None

    def render(self, filename: str) -> str:
        where = f"{filename}:{self.line}" if self.line else filename
        return f"{where}: {self.path or '(top)'}: {self.message}"


class AgreementError(Exception):
    """The agreement is not valid; `problems` has one entry per problem found."""

    def __init__(self, problems: list[Problem], filename: str = "agreement") -> None:
        self.problems = problems
        self.filename = filename
        super().__init__("\n".join(p.render(filename) for p in problems))


def _path_text(loc: Iterable[str | int]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _line_index(node: yaml.Node, path: tuple[str | int, ...] = ()) -> dict[tuple[str | int, ...], int]:
    """Map every YAML path to its 1-based line, so problems can point into the file."""
    lines = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = (*path, str(key_node.value))
            lines.update(_line_index(value_node, child))
            lines[child] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.update(_line_index(item, (*path, index)))
    return lines


def _nearest_line(lines: dict[tuple[str | int, ...], int], loc: tuple[str | int, ...]) -> int | None:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _check_semantics(a: Agreement) -> list[tuple[tuple[str | int, ...], str]]:
    """Cross-field rules the schema alone cannot express."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    team_keys = [t.key for t in a.teams]
    seen_teams: set[str] = set()
    for i, team in enumerate(a.teams):
        if team.key in seen_teams:
            problems.append((("teams", i, "key"), f"duplicate team key {team.key!r}"))
        seen_teams.add(team.key)
    seen_reps: dict[str, str] = {}
    for i, team in enumerate(a.teams):
        for j, rep in enumerate(team.reps):
            if rep.key in seen_reps:
                problems.append(((
                    "teams", i, "reps", j, "key"),
                    f"duplicate rep key {rep.key!r} (already in team {seen_reps[rep.key]!r})"))
            seen_reps.setdefault(rep.key, team.key)

    try:
        calendar = a.calendar()
    except ValueError as exc:
        problems.append((("business_hours",), str(exc)))
        calendar = None
    if a.business_hours.start >= a.business_hours.end:
        problems.append((("business_hours", "end"), "end must be later than start"))

    stages = a.qualification.stages
    if len(set(stages)) != len(stages):
        problems.append((("qualification", "stages"), "stages must be unique"))
    for i, persona in enumerate(a.qualification.personas):
        if persona.handoff_stage not in stages:
            problems.append((("qualification", "personas", i, "handoff_stage"),
                             f"unknown stage {persona.handoff_stage!r} (stages: {', '.join(stages)})"))

    for i, rule in enumerate(a.routing.rules):
        if rule.team not in team_keys:
            problems.append((("routing", "rules", i, "team"),
                             f"unknown team {rule.team!r} (teams: {', '.join(team_keys)})"))
    problems += _unreachable(a.routing.rules, ("routing", "rules"), "routing rule")
    if not a.routing.rules[-1].when.is_catch_all():
        problems.append((("routing", "rules"),
                         "no rule matches every lead: end with a rule without `when`"))

    problems += _unreachable(a.sales.tiers, ("sales", "tiers"), "tier")
    if not a.sales.tiers[-1].when.is_catch_all():
        problems.append((("sales", "tiers"),
                         "no tier matches every lead: end with a tier without `when`"))
    tier_keys = [t.key for t in a.sales.tiers]
    if len(set(tier_keys)) != len(tier_keys):
        problems.append((("sales", "tiers"), "tier keys must be unique"))
    for i, tier in enumerate(a.sales.tiers):
        for field in ("activity", "page_visits_at_least"):
            if getattr(tier.when, field) is not None:
                problems.append((("sales", "tiers", i, "when", field),
                                 f"{field} is not known when tiers are chosen; use score or fit"))

    if calendar is not None:
        for i, tier in enumerate(a.sales.tiers):
            window = tier.first_touch_within.to_timedelta(calendar.day_length)
            cadence = tier.attempts.within.to_timedelta(calendar.day_length)
            if cadence < window:
                problems.append((("sales", "tiers", i, "attempts", "within"),
                                 f"attempt window {tier.attempts.within} is shorter than the "
                                 f"first-touch window {tier.first_touch_within}"))

    people = a.people
    has_manager = all(t.manager is not None for t in a.teams)
    ats: set[float] = set()
    reassigned_at: float | None = None
    for i, nudge in enumerate(a.nudges):
        where = ("nudges", i)
        if nudge.at in ats:
            problems.append(((*where, "at"), f"two nudges at {nudge.at:.0%}"))
        ats.add(nudge.at)
        if i and nudge.at < a.nudges[i - 1].at:
            problems.append(((*where, "at"), "nudges must be in increasing order of `at`"))
        if not nudge.notify and not nudge.reassign:
            problems.append((where, "this nudge notifies no one and reassigns nothing"))
        if reassigned_at is not None and nudge.at > reassigned_at:
            problems.append(((*where, "at"),
                             f"can never apply: the lead is reassigned at {reassigned_at:.0%}, "
                             "which gives its new owner a fresh window"))
        if nudge.reassign and reassigned_at is None:
            reassigned_at = nudge.at
        for notified in nudge.notify:
            if notified == "manager" and not has_manager:
                problems.append(((*where, "notify"), "notifies `manager` but a team has none"))
            if notified in ("marketing_vp", "sales_vp") and getattr(people, notified) is None:
                problems.append(((*where, "notify"), f"notifies {notified} but people.{notified} is not set"))

    seen_experiments: set[str] = set()
    for i, experiment in enumerate(a.experiments):
        if experiment.key in seen_experiments:
            problems.append((("experiments", i, "key"), f"duplicate experiment key {experiment.key!r}"))
        seen_experiments.add(experiment.key)
        if experiment.end <= experiment.start:
            problems.append((("experiments", i, "end"),
                             f"end {experiment.end} must be after start {experiment.start}"))
        if experiment.when.is_catch_all():
            problems.append((("experiments", i, "when"),
                             "matches every lead: name the leads to try (source, offer, activity, ...)"))

    for i, digest in enumerate(a.digests):
        for role in digest.to:
            if role in ("marketing_vp", "sales_vp") and getattr(people, role) is None:
                problems.append((("digests", i, "to"), f"sends to {role} but people.{role} is not set"))
            if role == "team_channels" and not any(t.channel.slack or t.channel.teams for t in a.teams):
                problems.append((("digests", i, "to"),
                                 "sends to team_channels but no team has a channel (bind one "
                                 "with /sla link TEAM, or set teams[].channel)"))
            if "email" in digest.via:
                problems += [(("digests", i, "via"), problem) for problem in _email_problems(a, role)]
    return problems


def _email_problems(a: Agreement, role: str) -> list[str]:
    """Why a digest sent `via: email` cannot reach `role` (empty: everyone has an address)."""
    if role == "team_channels":
        return ["team_channels cannot get e-mail (a channel has no address): send them the digest "
                "via chat, or list managers instead"]
    if role in ("marketing_vp", "sales_vp"):
        person = getattr(a.people, role)
        if person is not None and not person.email:
            return [f"sends e-mail to {role} but people.{role} has no email"]
        return []
    return [f"sends e-mail to managers but the manager of team {team.key} has no email"
            for team in a.teams if team.manager is not None and not team.manager.email]


def _unreachable(rules: list[Any], where: tuple[str, ...], what: str) -> list[tuple[tuple[str | int, ...], str]]:
    found: list[tuple[tuple[str | int, ...], str]] = []
    for i, rule in enumerate(rules[:-1]):
        if rule.when.is_catch_all():
            for j in range(i + 1, len(rules)):
                found.append(((*where, j), f"{what} can never apply: {what} {i} above matches every lead"))
            break
    return found


class _Loader(yaml.SafeLoader):
    """SafeLoader that leaves dates as strings, so a bad date is a field error with a path and a line
    (not a crash inside the YAML parser)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def parse_agreement(text: str, filename: str = "agreement.yaml") -> Agreement:
    """Parse and check an agreement; raises AgreementError listing every problem found."""
    try:
        root = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        detail = getattr(exc, "problem", None) or str(exc)
        raise AgreementError(
            [Problem("", f"YAML syntax error: {detail}", mark.line + 1 if mark else None)], filename
        ) from None
    if not isinstance(data, dict) or root is None:
        raise AgreementError([Problem("", "the agreement must be a YAML mapping", 1)], filename)
    lines = _line_index(root)
    try:
        agreement = Agreement.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(part for part in error["loc"] if not _is_union_tag(part))
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown field"
            problems.append(Problem(_path_text(loc), message, _nearest_line(lines, loc)))
        raise AgreementError(_dedupe(problems), filename) from None
    found = _check_semantics(agreement)
    if found:
        raise AgreementError(
            [Problem(_path_text(loc), msg, _nearest_line(lines, loc)) for loc, msg in found], filename
        )
    version = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return agreement.model_copy(update={"version": version})


def _is_union_tag(part: str | int) -> bool:
    # pydantic adds the union member's type to `loc` ("str", "list[date]", "function-before[...]").
    return isinstance(part, str) and (part in {"str", "int", "float", "bool", "date"}
                                      or "[" in part or part.startswith("function-"))


def _dedupe(problems: list[Problem]) -> list[Problem]:
    """One line per problem: of a union's alternatives, keep the one that got furthest (a field
    `holidays` that is neither a string nor a valid list of dates reports the bad date)."""
    paths = {p.path for p in problems}
    deeper = {p.path for p in problems if any(q != p.path and q.startswith(p.path) for q in paths)}
    seen: set[tuple[str, str]] = set()
    unique = []
    for p in problems:
        if p.path in deeper:
            continue
        if (p.path, p.message) not in seen:
            seen.add((p.path, p.message))
            unique.append(p)
    return unique


def load_agreement(path: str | Path) -> Agreement:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AgreementError([Problem("", f"cannot read the agreement: {exc.strerror}")], str(path)) from None
    return parse_agreement(text, str(path))
