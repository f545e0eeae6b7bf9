"""`slabot demo`: the example agreement at work in one terminal: SQLite, simulated leads and reps, a console chat."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import io
import random
import signal
import sys
import tempfile
import threading
import time as real_time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from importlib import resources
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from bot.demo.console import ConsoleTransport, digest_lines
from bot.presentation.cards import ActionPayload, Button
from bot.presentation.presenters import lead_card, money
from bot.services import Services, build_services
from bot.settings import Settings
from bot.worker.delivery import Posted
from bot.worker.tick import tick
from commands import labels
from commands.actions import ActionRequest, perform
from commands.context import Context, identify
from commands.intake import handoff
from sla.agreement import Agreement
from sla.clock import FixedClock, ScaledClock
from sla.lead import LeadIn
from sla.lifecycle import Action
from storage.leads import events_of, get_lead, next_check_after, owners_of

__all__ = ["DemoSummary", "demo_agreement", "run_demo"]

#: Simulated time between two ticks, at most (the real interval shrinks as the speed grows).
TICK_SIMULATED = timedelta(minutes=2)
#: The real interval between two ticks stays within these bounds (seconds).
TICK_REAL_MIN, TICK_REAL_MAX = 0.05, 1.0
#: The clock starts this long before the day's first digest, so the first thing seen is the digest.
MORNING_LEAD = timedelta(minutes=5)
#: After the close, the demo lingers this long (late nudges, the last status) before skipping the night.
EVENING_GRACE = timedelta(minutes=10)


def demo_agreement() -> contextlib.AbstractContextManager[Path]:
    """The example agreement shipped inside the package, as a file path for the duration of the block."""
    return resources.as_file(resources.files("bot.demo").joinpath("data", "agreement.yaml"))


# --- the summary ---------------------------------------------------------------------------------


@dataclass
class DemoSummary:
    """What a demo run did. Every count is of things that really happened (the database agrees)."""

    leads: int = 0                 # handed off
    workable: int = 0              # routed to a rep and posted as a card
    nurture: int = 0               # kept for Marketing, never posted
    cards_posted: int = 0
    card_updates: int = 0
    rep_clicks: int = 0            # simulated button clicks that changed a lead
    nudges: int = 0                # ladder steps fired (escalations included)
    reassignments: int = 0         # claim timeouts and escalations that moved a lead
    direct_messages: int = 0
    digests: int = 0
    live_start: datetime | None = None   # the simulated instant the live part began
    simulated_end: datetime | None = None
    replayed: bool = False                # the day before the live part was replayed first
    real_seconds: float = 0.0
    stopped_by: str = ""           # "Ctrl-C", "--minutes is up", "simulated time is up"
    database: Path | None = None   # kept only when the caller chose the path

    def lines(self) -> list[str]:
        return [
            f"leads received: {self.leads} ({self.workable} workable, posted as cards; "
            f"{self.nurture} nurture, kept for Marketing and never posted)",
            f"cards posted: {self.cards_posted}, card updates: {self.card_updates}, "
            f"rep clicks: {self.rep_clicks}",
            f"nudges: {self.nudges}, reassignments: {self.reassignments}, "
            f"direct messages: {self.direct_messages}, digests: {self.digests}",
        ]


class DemoConsole(ConsoleTransport):
    """The console chat, with each day's digest shown in full once: the second VP's copy is the same
    message (one line), and a team channel's digest, the same sections for one team, shows its
    headline numbers. Cards, updates and DMs print as ConsoleTransport prints them.

    During a tick (`hold` ... `release`) output is held back and printed in a stable order: direct
    messages first (the product sends nudges before cards), then cards, then digests, each kind by
    target. Delivery runs its lanes in parallel, so the order they finish in is not the story's."""

    HEADLINES = ("Workable leads this month", "Worked:", "Open breaches:")
    ORDER = {"dm": 0, "card": 1, "digest": 2}

    def __init__(self, ctx: Context, out: TextIO | None = None) -> None:
        super().__init__(ctx, out)
        self._shown: dict[str, str] = {}        # digest text -> its first recipient
        self._full_days: set[date] = set()      # local days a digest was printed in full
        self._held: list[tuple[int, str, Callable[[], None]]] | None = None

    def hold(self) -> None:
        self._held = []

    def release(self) -> None:
        held, self._held = self._held or [], None
        for _, _, show in sorted(held, key=lambda h: (h[0], h[1])):   # stable: a lane's own order stays
            show()

    def _emit(self, kind: str, target: str, show: Callable[[], None]) -> None:
        if self._held is None:
            show()
        else:
            self._held.append((self.ORDER.get(kind, 1), target, show))

    async def send_message(self, kind: str, target: str, payload: dict[str, Any], *,
                           outbox_id: int) -> Posted | None:
        if kind != "digest":
            return await super().send_message(kind, target, payload, outbox_id=outbox_id)
        self.posted.append((kind, target, payload))
        self._emit(kind, target, lambda: self._show_digest(target, payload))
        return None

    def _show_digest(self, target: str, payload: dict[str, Any]) -> None:
        text = str(payload.get("text", ""))
        first = self._shown.get(text)
        if first is not None:
            self._print(f"digest → {target}", [f"the same digest as {first} got"])
            return
        self._shown[text] = target
        headlines = [line for section in payload.get("sections", []) for line in section["lines"]
                     if line.startswith(self.HEADLINES)]
        today = self.ctx.calendar.local_date(self.ctx.now())
        if payload.get("to") == "channel" and headlines and today in self._full_days:
            self._print(f"digest → {target}", [payload.get("title", ""), *(f"  {h}" for h in headlines),
                                                "  (the same sections as above, for this team, with its chart)"])
            return
        self._full_days.add(today)
        self._print(f"digest → {target}", digest_lines(payload))


# --- the simulated world: leads Marketing hands off, and what reps do with them ------------------

FIRST_NAMES = ("Jane", "Omar", "Lucia", "Kenji", "Amara", "Tom", "Priyanka", "Lars", "Mei", "Carlos",
               "Fatima", "Noah", "Ingrid", "Kwame", "Sofia", "Raj", "Hannah", "Diego", "Yuki", "Ola")
LAST_NAMES = ("Doe", "Haddad", "Moreno", "Sato", "Nwosu", "Becker", "Iyer", "Nilsson", "Wong", "Silva",
              "Khan", "Fischer", "Berg", "Mensah", "Rossi", "Patel", "Kowalski", "Reyes", "Tanaka", "Lund")
COMPANIES = ("Northwind Traders", "Contoso", "Fabrikam", "Tailspin Toys", "Adventure Works", "Litware",
             "Proseware", "Woodgrove Bank", "Wide World Importers", "Coho Winery", "Alpine Ski House",
             "Fourth Coffee", "Lamna Healthcare", "Trey Research", "Wingtip Toys", "Relecloud",
             "Humongous Insurance", "Blue Yonder Airlines", "Graphic Design Institute", "Munson's Pickles")
SMB_TITLES = ("Owner", "Operations Manager", "Office Manager", "Head of Sales", "COO", "Founder")
MID_TITLES = ("VP Operations", "Director of Revenue Operations", "IT Director", "Head of Field Service",
              "CFO", "Procurement Manager")
WEBINARS = ("Forecasting without spreadsheets", "Field service in 2027", "Scheduling at scale")
EBOOKS = ("The field service playbook", "Dispatch benchmarks report", "Ten scheduling mistakes")
NEEDS = ("replace spreadsheets for field ops", "cut dispatch time", "one schedule for three offices",
         "stop double bookings")
TIMEFRAMES = ("this quarter", "1-3 months", "before the busy season")

#: The kinds of lead Marketing hands off, as the handoff line names them.
KIND_WORDS = {
    "demo": "demo request", "webinar": "webinar lead", "ebook": "ebook lead",
    "webinar_early": "webinar lead", "ebook_browse": "ebook lead", "list": "purchased list",
    "careers": "careers-page visitor",
}
#: A day's first leads, in order: the story every simulated day tells (hot lead first, one ignored
#: hot lead that climbs the nudge ladder and moves to another rep, one lead worked too late, and the
#: leads that never reach Sales). The rest of the day is drawn at random.
DAY_OPENING = ("demo", "webinar", "demo", "list", "ebook", "webinar", "careers", "webinar_early",
               "demo", "ebook_browse")
DAY_RANDOM = ("demo", "demo", "webinar", "webinar", "ebook", "ebook", "webinar_early", "ebook_browse",
              "list", "careers")
IGNORED_AT, LATE_AT = 2, 5   # positions in DAY_OPENING
#: The story lead arrives this long before the opening of the first live day: its clock waits for
#: the opening, so at the default speed the whole ladder is on screen within the first real minute.
STORY_BEFORE_OPENING = timedelta(minutes=15)

#: What a rep does with a lead: steps of (action, business minutes after the previous step).
Step = tuple[Action, tuple[float, float]]
BEHAVIOURS: dict[str, tuple[Step, ...]] = {
    "opportunity": ((Action.CLAIM, (1, 5)), (Action.LOG_CALL, (2, 9)), (Action.LOG_EMAIL, (20, 60)),
                    (Action.CONNECTED, (40, 150)), (Action.QUALIFY, (10, 45))),
    "disqualify": ((Action.CLAIM, (1, 6)), (Action.LOG_CALL, (2, 10)), (Action.CONNECTED, (30, 120)),
                   (Action.DISQUALIFY, (5, 20))),
    "working": ((Action.CLAIM, (1, 6)), (Action.LOG_CALL, (2, 10)), (Action.LOG_EMAIL, (60, 180)),
                (Action.LOG_CALL, (60, 180))),
    "bad_data": ((Action.CLAIM, (2, 6)), (Action.LOG_EMAIL, (3, 9)), (Action.DISQUALIFY, (30, 90))),
    # Claimed at once, first touch well after a standard lead's 2h window: the ladder reaches the manager.
    "late": ((Action.CLAIM, (3, 6)), (Action.LOG_CALL, (130, 150)), (Action.CONNECTED, (60, 120)),
             (Action.QUALIFY, (20, 60))),
    # The story lead of the first live day: claimed at once, then left untouched, so the whole
    # ladder plays out (nudge, escalation, the VP's notice, reassignment) in its first half hour.
    "story": ((Action.CLAIM, (1, 3)),),
    # What the second owner of an ignored lead does, once it lands with them.
    "prompt": ((Action.CLAIM, (1, 3)), (Action.LOG_CALL, (2, 5)), (Action.CONNECTED, (20, 60)),
               (Action.QUALIFY, (10, 30))),
    "ignore": (),
}
RANDOM_BEHAVIOURS = ("opportunity", "opportunity", "disqualify", "disqualify", "working", "working",
                     "working", "bad_data")
DISQUALIFY_REASONS = {"disqualify": ("no_budget", "no_need", "competitor"), "bad_data": ("bad_contact_data",)}


def lead_body(kind: str, rng: random.Random, external_id: str) -> dict[str, Any]:
    """A realistic handoff body (`POST /api/v1/leads`) of one kind of lead."""
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    company = rng.choice(COMPANIES)
    mid_market = rng.random() < 0.45
    employees = rng.randrange(1000, 9000, 50) if mid_market else rng.randrange(15, 950, 5)
    slug = "".join(c for c in company.lower() if c.isalnum())
    body: dict[str, Any] = {
        "external_id": external_id, "email": f"{first}.{last}@{slug}.example".lower(),
        "first_name": first, "last_name": last, "company": company, "employees": employees,
        "title": rng.choice(MID_TITLES if mid_market else SMB_TITLES), "country": "US",
        "crm_url": f"https://crm.example/contacts/{external_id}",
    }
    bant = {"need": rng.choice(NEEDS), "budget": rng.random() < 0.6, "timeframe": rng.choice(TIMEFRAMES),
            "authority": rng.random() < 0.5}
    if kind == "demo":
        body |= {"source": "demo_request", "offer": "product_demo",
                 "stage": rng.choice(("solution_research", "evaluation")),
                 "activities": [{"type": "pricing_page_viewed"}, {"type": "demo_requested"}],
                 "page_visits": rng.randint(4, 30), "bant": bant}
    elif kind in ("webinar", "webinar_early"):
        # The early one is still learning ("education"): its persona is handed off at solution research.
        body |= {"source": "webinar", "offer": f"webinar: {rng.choice(WEBINARS)}",
                 "stage": "solution_research" if kind == "webinar" else "education",
                 "activities": [{"type": "webinar_attended"}, {"type": "pricing_page_viewed"}],
                 "page_visits": rng.randint(2, 15), "bant": bant}
    elif kind in ("ebook", "ebook_browse"):
        browsing = kind == "ebook_browse"
        body |= {"source": "ebook", "offer": f"ebook: {rng.choice(EBOOKS)}", "stage": "solution_research",
                 "activities": [{"type": "ebook_downloaded"}] + ([] if browsing else [{"type": "pricing_page_viewed"}]),
                 "page_visits": rng.randint(2, 8) if browsing else rng.randint(20, 40),
                 "bant": {"need": bant["need"]} if browsing else bant}
    elif kind == "list":
        body |= {"source": "list_purchase", "offer": "trade show attendee list", "stage": "solution_research",
                 "bant": {"need": bant["need"], "timeframe": bant["timeframe"]}}
    elif kind == "careers":
        body |= {"source": "website", "offer": "careers page", "title": "Student", "employees": None,
                 "company": "State University", "email": f"{first}.{last}@student.example".lower(),
                 "activities": [{"type": "careers_page_viewed"}, {"type": "ebook_downloaded"}],
                 "page_visits": rng.randint(20, 30), "stage": "education"}
    else:
        raise ValueError(f"unknown kind of lead {kind!r}")
    return body


@dataclass(order=True)
class _Event:
    at: datetime
    seq: int
    what: str = field(compare=False)                 # "arrive" | "click"
    kind: str = field(default="", compare=False)     # arrive: the kind of lead
    behaviour: str = field(default="", compare=False)
    lead_id: int = field(default=0, compare=False)   # click: the lead


@dataclass
class _Plan:
    """The rest of what the simulated reps will do with one lead."""

    steps: list[Step]
    rng: random.Random
    behaviour: str


# --- the demo ------------------------------------------------------------------------------------


class _Demo:
    def __init__(self, services: Services, transport: DemoConsole, *, speed: float, seed: int,
                 screen: TextIO, realtime: bool = True, stop: threading.Event | None = None) -> None:
        self.services = services
        self.ctx: Context = services.ctx
        self.agreement: Agreement = services.ctx.agreement
        self.calendar = services.ctx.calendar
        self.transport = transport
        self.speed = speed
        self.seed = seed
        self.screen = screen
        self.out = screen   # the screen, or a sink while a day is replayed
        self.run_id = uuid.uuid4().hex[:6]   # external ids stay unique if a kept database is reused
        self.summary = DemoSummary()
        self._events: list[_Event] = []
        self._seq = 0
        self._plans: dict[int, _Plan] = {}
        #: Ignored leads and the owner ignoring them: when the engine moves one, the new owner acts.
        self._ignored: dict[int, str] = {}
        self._planned_days: set[date] = set()
        self._next_status: datetime | None = None
        #: True: the simulated clock runs `speed` times faster than the wall clock. False: it moves
        #: by exactly one tick's worth per step (tests, reproducible transcripts), never by wall time.
        self.realtime = realtime
        #: Set by Ctrl-C (see `_ctrl_c`): every loop checks it between two steps.
        self.stop = stop or threading.Event()
        #: The story of the first live day: the local day, the lead once it arrived, beats told.
        self.story_day: date | None = None
        self.story_lead: int | None = None
        self._story_events: set[int] = set()
        self._story_told: set[str] = set()
        self._status_due = False

    # -- time --

    @property
    def tick_real(self) -> float:
        """Real seconds between two ticks at this speed."""
        return min(TICK_REAL_MAX, max(TICK_REAL_MIN, TICK_SIMULATED.total_seconds() / self.speed))

    @property
    def tick_simulated(self) -> timedelta:
        """Simulated time one tick stands for."""
        return timedelta(seconds=self.tick_real * self.speed)

    def set_clock(self, at: datetime) -> None:
        """Run the simulated clock from `at`: scaled wall time, or a clock only `advance` moves."""
        self.ctx.clock = ScaledClock(at, self.speed) if self.realtime else FixedClock(at)

    async def advance(self) -> None:
        """Let one tick's worth of simulated time pass."""
        if self.realtime:
            await asyncio.sleep(self.tick_real)
        else:
            clock = self.ctx.clock
            assert isinstance(clock, FixedClock)
            clock.advance(self.tick_simulated)
            await asyncio.sleep(0)

    # -- output --

    def say(self, header: str, lines: list[str] | None = None) -> None:
        stamp = f"{self.calendar.local(self.ctx.now()):%a %H:%M}"
        print(f"\n[{stamp}] {header}", file=self.out)
        for line in lines or []:
            print("  " + line, file=self.out)
        self.out.flush()

    def banner(self, first: datetime, kept: Path | None) -> None:
        a, cal, speed = self.agreement, self.calendar, self.speed
        start = cal.local(first)
        day_hours = cal.day_length.total_seconds() / 3600
        day_real = cal.day_length.total_seconds() / speed / 60
        tiers = "; ".join(f"{labels.tier(t.key)} leads within {labels.duration(t.first_touch_within)}"
                          for t in a.sales.tiers)
        ladder = "; ".join(f"{n.at:.0%} → {', '.join(labels.role(r) for r in n.notify) or 'nobody'}"
                           + (", reassign" if n.reassign else "") for n in a.nudges)
        schedule = "; ".join(f"{d.at:%H:%M} → {', '.join(labels.role(t) for t in d.to)}" for d in a.digests)
        q = a.qualification
        lines = [
            "=" * 78,
            f"slabot demo: {a.name}",
            "=" * 78,
            "The example agreement, run for real on "
            + (f"the SQLite database {kept}." if kept else "a throwaway SQLite database.") + " This terminal",
            "stands in for Slack and Teams: lead cards, card updates, DMs and digests print here.",
            "Simulated leads arrive from Marketing; simulated reps click the cards' buttons.",
            "",
        ]
        for team in a.teams:
            reps = ", ".join(r.name for r in team.reps)
            manager = f"; manager {team.manager.name}" if team.manager else ""
            lines.append(f"  #{team.key:<10} {team.name}: {reps}{manager}")
        vps = [f"{role} {p.name}" for role, p in (("VP Marketing", a.people.marketing_vp),
                                                  ("VP Sales", a.people.sales_vp)) if p is not None]
        if vps:
            lines.append(f"  {'VPs':<11} {', '.join(vps)}")
        lines += [
            f"  {'workable':<11} score >= {q.score_threshold}, at the buying stage, {q.bant.minimum}+ BANT facts;"
            " the rest goes to nurture",
            f"  {'first touch':<11} {tiers}"
            + (f"; unclaimed after {labels.duration(a.sales.claim_within)} → next rep"
               if a.sales.claim_within else ""),
            f"  {'nudges':<11} untouched at {ladder.replace('%', '% of the window', 1)}",
            f"  {'digests':<11} {schedule}",
            "",
            f"Time runs {speed:g}x faster: a {day_hours:g}-hour business day takes {day_real:.1f} minutes; "
            "nights are skipped.",
            f"The simulated clock starts {start:%a %b} {start.day}, {start:%H:%M} {start.tzname()} "
            f"({self.agreement.timezone}); every line is stamped with it.",
            "Ctrl-C to stop.",
            "=" * 78,
        ]
        print("\n".join(lines), file=self.out)
        self.out.flush()

    def status_line(self, label: str = "status") -> None:
        """`/sla status` in one line: both sides of the agreement, month to date."""
        numbers = self.services.status()
        m, s = numbers.marketing, numbers.sales
        breaches = s.open_breaches
        named = ", ".join(f"{b.name} ({b.owner_name or 'unassigned'})" for b in numbers.breaches[:3])
        named += f" and {breaches - 3} more" if breaches > 3 else ""
        self.say(f"{label}: Marketing {m.workable} of {m.goal} workable leads this month "
                 f"({m.nurture} to nurture) · "
                 + (f"Sales worked {labels.percent(s.worked_pct)} of {labels.count_of(s.cohort, 'lead')} "
                    f"due, {labels.percent(s.within_sla_pct)} touched within the SLA · " if s.cohort
                    else "Sales has no lead due yet · ")
                 + (f"{breaches} open breach{'es' if breaches != 1 else ''}: {named}" if breaches
                    else "no open breaches"))

    # -- the story of the first live day: one lead left unworked, the ladder at work --

    STORY_BEATS = ("the nudge to the rep", "the manager's escalation", "the VP's notice", "the reassignment")

    def story_begins(self, lead_name: str, rep_name: str, window: str) -> None:
        self.say(f"★ THE STORY TO WATCH: {rep_name} claims {lead_name}'s lead, then leaves it untouched.",
                 [f"Its first-touch window is {window} of business time. What slabot does about it:",
                  *(f"  {labels.nudge_step(n.at, n.notify, n.reassign)}" for n in self.agreement.nudges)])

    def _beat(self, index: int, lines: list[str]) -> None:
        self._story_told.add(self.STORY_BEATS[index])
        self.say(f"★ THE STORY, {index + 1} of {len(self.STORY_BEATS)}: {self.STORY_BEATS[index]}", lines)

    def tell_story(self) -> None:
        """Say what the ladder just did to the story lead, once per beat, right after its messages."""
        if self._status_due:   # a tick after the deadline passed: the breach is in the numbers now
            self._status_due = False
            self.status_line()
        if self.story_lead is None or "touched" in self._story_told:
            return
        with self.ctx.db.read() as session:
            lead = get_lead(session, lead_id=self.story_lead)
            events = events_of(session, lead_id=self.story_lead, skip=list(self._story_events),
                               types=["nudge", "log_call", "log_email", "connected"])
        if lead is None:
            return
        tier = self.ctx.clocks.tier(lead.tier or "")
        window = labels.duration(tier.first_touch_within)
        for event in events:
            assert event.id is not None
            self._story_events.add(event.id)
            data = event.data or {}
            if event.type != "nudge":
                if "the reassignment" in self._story_told:
                    self._story_told.add("touched")
                    self.say(f"★ THE STORY ENDS: {self._name(event.actor)} touched {lead.name}'s lead soon after "
                             "getting it.", ["Every step above is in the lead's history (GET /api/v1/leads/"
                                             f"{lead.id}), and the missed deadline stays in this month's numbers."])
                continue
            owner = self._name(data.get("owner"))
            notified = [str(k) for k in data.get("notified") or []]
            pct = f"{float(data.get('at_pct') or 0):g}%"
            if any(k.startswith("rep:") for k in notified) and not any(
                    k.startswith("manager:") for k in notified) and self.STORY_BEATS[0] not in self._story_told:
                self._beat(0, [f"{pct} of the {window} first-touch window has passed and {owner} has not touched "
                               f"the lead: slabot sent {owner} a direct message (above)."])
            if any(k.startswith("manager:") for k in notified) and self.STORY_BEATS[1] not in self._story_told:
                managers = ", ".join(self._name(k) for k in notified if k.startswith("manager:"))
                self._beat(1, [f"{pct} of the window: the first-touch deadline has come with no touch, so "
                               f"{owner}'s manager {managers} got a direct message too (above).",
                               "From now on the lead counts as an open breach in the numbers."])
                self._status_due = True
            vps = [k for k in notified if k in ("marketing_vp", "sales_vp")]
            if vps and self.STORY_BEATS[2] not in self._story_told:
                who = ", ".join(f"{self._name(k)} ({labels.role(k)})" for k in vps)
                self._beat(2, [f"{pct} of the window and still no touch: {who} got a direct message (above). "
                               "Both sides of the agreement hear about leads nobody works."])
            moved_to = data.get("reassigned_to")
            if moved_to and self.STORY_BEATS[3] not in self._story_told:
                self._beat(3, [f"slabot took the lead from {owner} and gave it to {self._name(moved_to)}, with a "
                               f"fresh {window} first-touch window (see “is now yours” above)."])

    def _name(self, key: object) -> str:
        """A person key of the agreement (`rep:ana`, `manager:smb`, `marketing_vp`, `ana`) as a name."""
        text = str(key or "")
        kind, _, rest = text.partition(":")
        if kind == "manager":
            team = self.agreement.team(rest)
            return team.manager.name if team is not None and team.manager is not None else text
        if kind in ("marketing_vp", "sales_vp"):
            person = getattr(self.agreement.people, kind)
            return person.name if person is not None else labels.role(kind)
        rep = self.agreement.rep(rest if kind == "rep" else text)
        return rep.name if rep is not None else text or "nobody"

    # -- the day's schedule --

    def morning_of(self, day: date) -> datetime:
        """When the demo's day starts: just before the first digest (or the opening)."""
        times = [d.at for d in self.agreement.digests] + [self.agreement.business_hours.start]
        earliest = datetime.combine(day, min(times)) - MORNING_LEAD
        return self.calendar.at_local(day, earliest.time())

    def next_morning(self, now: datetime) -> datetime:
        day = self.calendar.local_date(now)
        if not (self.calendar.is_business_day(day) and now < self.morning_of(day)):
            day += timedelta(days=1)
        while not self.calendar.is_business_day(day):
            day += timedelta(days=1)
        return self.morning_of(day)

    def is_night(self, now: datetime) -> bool:
        day = self.calendar.local_date(now)
        interval = self.calendar.open_interval(day)
        return interval is None or now < self.morning_of(day) or now >= interval[1] + EVENING_GRACE

    def _push(self, event: _Event) -> None:
        heapq.heappush(self._events, event)

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def plan_day(self, now: datetime) -> None:
        """Schedule today's arrivals (once per day), from the opening's story and the seed."""
        day = self.calendar.local_date(now)
        interval = self.calendar.open_interval(day)
        if interval is None or day in self._planned_days:
            return
        self._planned_days.add(day)
        opens, closes = interval
        if day == self.story_day:
            self._push(_Event(max(opens - STORY_BEFORE_OPENING, now), self._next_seq(), "arrive", kind="demo",
                              behaviour="story"))
        rng = random.Random(f"{self.seed}:day:{day.isoformat()}")
        at = opens - timedelta(minutes=20)   # the first lead comes in before the opening: its clock waits
        position = 0
        while at < closes - timedelta(minutes=45):
            if position < len(DAY_OPENING):
                kind = DAY_OPENING[position]
                behaviour = ("ignore" if position == IGNORED_AT else "late" if position == LATE_AT
                             else rng.choice(RANDOM_BEHAVIOURS))
            else:
                kind, behaviour = rng.choice(DAY_RANDOM), rng.choice(RANDOM_BEHAVIOURS)
            if at >= now:
                self._push(_Event(at, self._next_seq(), "arrive", kind=kind, behaviour=behaviour))
            position += 1
            at += timedelta(minutes=rng.uniform(18, 42))

    # -- what happens --

    def run_due(self, now: datetime) -> None:
        self._watch_ignored(now)
        while self._events and self._events[0].at <= now:
            event = heapq.heappop(self._events)
            if event.what == "arrive":
                self.arrive(event)
            else:
                self.click(event.lead_id)

    def arrive(self, event: _Event) -> None:
        number = self.summary.leads + 1
        rng = random.Random(f"{self.seed}:lead:{number}")
        lead_in = LeadIn.model_validate(lead_body(event.kind, rng, f"demo-{self.run_id}-{number:04d}")
                                        | {"received_at": self.ctx.now()})
        result = handoff(self.ctx, lead_in, actor="demo")
        if result.duplicate:
            return
        lead = result.lead
        self.summary.leads += 1
        who = " · ".join(p for p in (lead.title, lead.company) if p)
        size = f"{lead.employees:,} employees" if lead.employees is not None else "company size unknown"
        header = f"Marketing hands off {lead.name} ({who}, {size}): {KIND_WORDS[event.kind]}"
        if not lead.workable:
            self.summary.nurture += 1
            failed = [labels.qualification_reason(r) for r in lead.reasons
                      if any(k in r for k in ("<", "before handoff", "below minimum", "not workable"))]
            self.say(header, [f"→ nurture: {'; '.join(failed) or labels.nurture_reason(lead.nurture_reason)}. "
                              "Counted for Marketing, never posted to Sales."])
            return
        self.summary.workable += 1
        tier = self.ctx.clocks.tier(lead.tier or "")
        team = self.agreement.team(lead.team or "")
        rep = self.agreement.rep(lead.owner or "")
        self.say(header, [f"→ workable: score {lead.score}, {labels.tier(tier.key).lower()} lead (first touch "
                          f"within {labels.duration(tier.first_touch_within)}), value {money(self.ctx, lead.value)}; "
                          f"routed to {rep.name if rep else 'nobody'} ({team.name if team else lead.team})"])
        assert lead.id is not None
        steps = list(BEHAVIOURS[event.behaviour])
        self._plans[lead.id] = _Plan(steps, rng, event.behaviour)
        if event.behaviour in ("ignore", "story") and lead.owner:
            self._ignored[lead.id] = lead.owner
        if event.behaviour == "story" and rep is not None:
            self.story_lead = lead.id
            self.story_begins(lead.name, rep.name, labels.duration(tier.first_touch_within))
        if event.behaviour != "ignore":
            self._schedule_next(lead.id, self.ctx.now())

    def _schedule_next(self, lead_id: int, after: datetime) -> None:
        plan = self._plans.get(lead_id)
        if plan is None or not plan.steps:
            self._plans.pop(lead_id, None)
            return
        low, high = plan.steps[0][1]
        # Business minutes: reps work in business hours, so a step due after the close waits for the morning.
        at = self.calendar.add(after, timedelta(minutes=plan.rng.uniform(low, high)))
        self._push(_Event(at, self._next_seq(), "click", lead_id=lead_id))

    def _watch_ignored(self, now: datetime) -> None:
        if not self._ignored:
            return
        with self.ctx.db.read() as session:
            owners = owners_of(session, lead_ids=list(self._ignored))
        for lead_id, ignoring in list(self._ignored.items()):
            if owners.get(lead_id) != ignoring:
                del self._ignored[lead_id]
                plan = self._plans.get(lead_id)
                rng = plan.rng if plan is not None else random.Random(f"{self.seed}:moved:{lead_id}")
                self._plans[lead_id] = _Plan(list(BEHAVIOURS["prompt"]), rng, "prompt")
                self._schedule_next(lead_id, now)

    def click(self, lead_id: int) -> None:
        """The lead's current owner clicks the next button of their plan on the card as it is now."""
        plan = self._plans.get(lead_id)
        if plan is None or not plan.steps:
            return
        action, _ = plan.steps.pop(0)
        with self.ctx.db.read() as session:
            lead = get_lead(session, lead_id=lead_id)
        rep = self.agreement.rep(lead.owner or "") if lead is not None else None
        if lead is None or rep is None:
            self._plans.pop(lead_id, None)
            return
        card = lead_card(self.ctx, lead)
        button = next((b for b in card.buttons if b.action is action), None)
        if button is None:   # the card no longer offers it (closed, already claimed): skip the step
            self._schedule_next(lead_id, self.ctx.now())
            return
        extra, chosen = self._choice(button, plan)
        payload = ActionPayload.parse(button.payload(**extra))
        actor = identify(self.agreement, platform="console", user_id=rep.name)
        outcome = perform(self.ctx, ActionRequest(lead_id=payload.lead_id, action=payload.action, actor=actor,
                          version=payload.version, reason=payload.reason, amount=payload.amount,
                          to_rep=payload.to_rep))
        if not outcome.refused:
            self.summary.rep_clicks += 1
        self.say(f"{rep.name} clicks [{button.label}{chosen}] on {lead.name}'s card",
                 [f"slabot replies to {rep.name.split()[0]} only: {outcome.text}"])
        self._schedule_next(lead_id, self.ctx.now())

    def _choice(self, button: Button, plan: _Plan) -> tuple[dict[str, Any], str]:
        if button.action is Action.DISQUALIFY:
            offered = {o.value for o in button.options}
            wanted = [r for r in DISQUALIFY_REASONS.get(plan.behaviour, ("no_budget",)) if r in offered]
            reason = plan.rng.choice(wanted or sorted(offered))
            return {"reason": reason}, f": {labels.disqualify_reason(reason)}"
        if button.action is Action.QUALIFY:
            amount = plan.rng.randrange(12_000, 90_000, 500)
            return {"amount": amount}, f": {money(self.ctx, amount)}"
        return {}, ""

    async def step(self) -> None:
        """One turn of the world at the clock's instant: due arrivals and clicks, then the product's
        tick (deliver, nudge, escalate, digest), then a look at whether the engine moved an ignored lead."""
        now = self.ctx.now()
        self.run_due(now)
        self.transport.hold()
        try:
            report = await tick(self.services)
        finally:
            self.transport.release()
        self.summary.nudges += report.sweep.nudges
        self.summary.reassignments += report.sweep.reassigned
        self._watch_ignored(self.ctx.now())
        self.tell_story()

    def next_instant(self, now: datetime, until: datetime) -> datetime:
        """The next instant anything can happen (replay): a planned arrival or click, an SLA clock of
        an open lead, a digest; at most half an hour away."""
        candidates = [until, now + timedelta(minutes=30)]
        if self._events:
            candidates.append(self._events[0].at)
        with self.ctx.db.read() as session:
            due = next_check_after(session, now=now)
        if due is not None:
            candidates.append(due)
        day = self.calendar.local_date(now)
        candidates += [at for at in (self.calendar.at_local(day, d.at) for d in self.agreement.digests) if at > now]
        return max(min(candidates), now + timedelta(seconds=1))

    def hourly(self, now: datetime) -> None:
        """A status line on every business hour, so the numbers move in front of the newcomer."""
        if self._next_status is not None and now < self._next_status:
            return
        if self._next_status is not None:
            interval = self.calendar.open_interval(self.calendar.local_date(now))
            if interval is not None and interval[0] < now <= interval[1] + EVENING_GRACE:
                self.status_line()
        local = self.calendar.local(now).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        self._next_status = local.astimezone(now.tzinfo)

    def skip_night(self, now: datetime) -> None:
        morning = self.next_morning(now)
        opens = self.calendar.next_open(morning)
        local, target = self.calendar.local(opens), self.calendar.local(morning)
        self.say(f"Business hours are over: every SLA clock waits for the opening ({local:%a %H:%M}), "
                 f"and the demo skips ahead to {target:%a %b} {target.day}, {target:%H:%M}.")
        self.set_clock(morning)
        self._next_status = None
        self.plan_day(morning)

    def finish(self) -> None:
        kinds = Counter(kind for kind, _, _ in self.transport.posted)
        self.summary.cards_posted = kinds["post"]
        self.summary.card_updates = kinds["update"]
        self.summary.direct_messages = kinds["dm"]
        self.summary.digests = kinds["digest"]
        self.summary.simulated_end = self.ctx.now()


async def _replay(demo: _Demo, day: date, *, real_deadline: float | None = None) -> None:
    """Run one business day through the product at full speed on a fixed clock that jumps from one
    due instant to the next, quietly: the live morning's digest then has real numbers to show."""
    calendar = demo.calendar
    interval = calendar.open_interval(day)
    if interval is None:
        return
    clock = FixedClock(demo.morning_of(day))
    demo.ctx.clock = clock
    until = interval[1] + EVENING_GRACE
    demo.plan_day(clock.now())
    while clock.now() < until and not demo.stop.is_set():
        if real_deadline is not None and real_time.monotonic() >= real_deadline:
            demo.summary.stopped_by = "--minutes is up"
            return
        await demo.step()
        clock.set(demo.next_instant(clock.now(), until))


async def _live(demo: _Demo, *, real_deadline: float | None, simulated_stop: datetime | None) -> None:
    while True:
        now = demo.ctx.now()
        if demo.stop.is_set():
            demo.summary.stopped_by = "Ctrl-C"
            return
        if simulated_stop is not None and now >= simulated_stop:
            demo.summary.stopped_by = "simulated time is up"
            return
        if real_deadline is not None and real_time.monotonic() >= real_deadline:
            demo.summary.stopped_by = "--minutes is up"
            return
        if demo.is_night(now):
            if simulated_stop is not None and demo.next_morning(now) >= simulated_stop:
                demo.summary.stopped_by = "simulated time is up"
                return
            demo.skip_night(now)
            continue
        await demo.step()
        demo.hourly(demo.ctx.now())
        await demo.advance()


async def _run(demo: _Demo, *, start: datetime, replay: bool, real_deadline: float | None,
               simulated_stop: datetime | None) -> None:
    calendar = demo.calendar
    demo.story_day = calendar.local_date(demo.next_morning(start) if demo.is_night(start) else start)
    if replay:
        day = calendar.local_date(start) - timedelta(days=1)
        while not calendar.is_business_day(day):
            day -= timedelta(days=1)
        began = real_time.monotonic()
        demo.ctx.clock = FixedClock(start)   # the notes are stamped with the live morning
        demo.say(f"Replaying yesterday ({day:%a %b} {day.day}) quietly, so this morning's digest has numbers...")
        demo.transport.out = demo.out = io.StringIO()
        try:
            await _replay(demo, day, real_deadline=real_deadline)
            demo.summary.replayed = True
        finally:
            demo.transport.out = demo.out = demo.screen
        s = demo.summary
        demo.ctx.clock = FixedClock(start)
        if demo.stop.is_set() or demo.summary.stopped_by:
            demo.summary.stopped_by = "Ctrl-C" if demo.stop.is_set() else demo.summary.stopped_by
            demo.say(f"...stopped ({demo.summary.stopped_by}) before the live day began.")
            return
        demo.say(f"...done in {real_time.monotonic() - began:.1f} s: yesterday had {_n(s.leads, 'lead')} "
                 f"({s.workable} workable, {s.nurture} nurture), {_n(s.rep_clicks, 'rep click')}, "
                 f"{_n(s.nudges, 'nudge')}, {_n(s.reassignments, 'reassignment')}. Today runs live.")
    demo.set_clock(start)
    demo.summary.live_start = start
    if not demo.is_night(start):
        demo.plan_day(start)
    await _live(demo, real_deadline=real_deadline, simulated_stop=simulated_stop)


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _settings(database_url: str, agreement: Path) -> Settings:
    """Demo settings: nothing from the environment, so chat credentials set there are never used."""
    return Settings(database_url=database_url, slabot_agreement=str(agreement), console=True,
                    slabot_intake_token=None, slack_bot_token=None, slack_signing_secret=None,
                    slack_app_token=None, teams_app_id=None, teams_app_password=None, teams_tenant_id=None,
                    teams_allow_unauthenticated=False, hubspot_client_secret=None, slabot_public_url=None,
                    _env_file=None)


def default_start(agreement: Agreement, today: date) -> datetime:
    """Just before the first digest on the second business day of next month: a fresh month whose
    first day is replayed, so month-to-date numbers, pace and "yesterday" all mean what they say."""
    calendar = agreement.calendar()
    day = (today.replace(day=1) + timedelta(days=32)).replace(day=1)
    found = 0
    while True:
        if calendar.is_business_day(day):
            found += 1
            if found == 2:
                break
        day += timedelta(days=1)
    times = [d.at for d in agreement.digests] + [agreement.business_hours.start]
    return calendar.at_local(day, (datetime.combine(day, min(times)) - MORNING_LEAD).time())


@contextlib.contextmanager
def _database(db_path: Path | None) -> Iterator[tuple[str, Path | None]]:
    if db_path is not None:
        yield f"sqlite:///{db_path}", db_path
        return
    with tempfile.TemporaryDirectory(prefix="slabot-demo-", ignore_cleanup_errors=True) as folder:
        yield f"sqlite:///{Path(folder) / 'demo.db'}", None


def _warm_up() -> None:
    """Load the digest chart's plotting library before the clock starts: its first import takes a
    second or two, which the fast clock would turn into an hour of nobody answering."""
    from commands.chart import cumulative_chart_png

    cumulative_chart_png(days=[date(2026, 1, 1)], actual=[0], goal=[1.0], title="warm-up")


@contextlib.contextmanager
def _ctrl_c(stop: threading.Event) -> Iterator[None]:
    """While the demo runs, Ctrl-C (SIGINT) only asks it to stop: every loop checks `stop` between two
    steps, so the press never lands in the middle of a database write and the summary always prints.
    Outside the main thread (no signals there) this does nothing."""
    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    try:
        previous: Callable[[int, FrameType | None], Any] | int | None = signal.signal(signal.SIGINT, handler)
    except ValueError:   # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run_demo(*, speed: float = 120.0, minutes: float = 0.0, seed: int = 7, out: TextIO | None = None,
             db_path: Path | None = None, start: datetime | None = None,
             simulated_hours: float | None = None, replay: bool = True, realtime: bool = True,
             desk_port: int | None = None) -> DemoSummary:
    """Run the demo until Ctrl-C, `minutes` of real time (if > 0) or `simulated_hours` of live
    simulated time (if given), whichever comes first.

    `start`: the simulated instant the live part begins (default: 08:25 local on the second business
    day of next month). `replay`: first run the business day before `start` quietly, so the morning
    digest has numbers. `db_path`: keep the database there (default: a temporary file, deleted at
    the end). `realtime` False: each step moves the simulated clock by exactly one tick's worth at
    this speed, without waiting (the same story, deterministic, as fast as the machine goes). Prints
    everything to `out` (default stdout) and returns what happened. Ctrl-C at any moment ends it with
    the closing summary. `desk_port`: also serve the desk on 127.0.0.1 at this port (0: a free
    one), without sign-in, and print its URL first (None: no desk).
    """
    if not speed > 0:
        raise ValueError(f"speed must be > 0, got {speed!r}")
    stop = threading.Event()
    with _ctrl_c(stop):
        return _run_demo(speed=speed, minutes=minutes, seed=seed, out=out, db_path=db_path, start=start,
                         simulated_hours=simulated_hours, replay=replay, realtime=realtime, stop=stop,
                         desk_port=desk_port)


def _run_demo(*, speed: float, minutes: float, seed: int, out: TextIO | None, db_path: Path | None,
              start: datetime | None, simulated_hours: float | None, replay: bool, realtime: bool,
              stop: threading.Event, desk_port: int | None = None) -> DemoSummary:
    from bot.http.app import create_app

    screen = out or sys.stdout
    began = real_time.monotonic()
    with demo_agreement() as agreement_path, _database(db_path) as (url, kept), contextlib.ExitStack() as stack:
        services = build_services(_settings(url, agreement_path))
        try:
            services.ctx.db.upgrade()
            app = create_app(services)   # the product's wiring: console=True and no credentials: console only
            if desk_port is not None:   # the desk in a browser, no sign-in: its URL comes first
                from bot.desk.serve import serve_demo_desk

                desk = stack.enter_context(serve_demo_desk(app, port=desk_port))
                print(f"The desk: {desk.url}  (open it in a browser; act as anyone in the agreement)", file=screen)
            transport = DemoConsole(services.ctx, out=screen)
            services.transports.clear()
            services.transports["console"] = transport
            first = start or default_start(services.ctx.agreement, services.ctx.calendar.local_date(
                services.ctx.now()))
            demo = _Demo(services, transport, speed=speed, seed=seed, screen=screen, realtime=realtime, stop=stop)
            demo.summary.database = kept
            demo.ctx.clock = FixedClock(first)
            demo.banner(first, kept)
            if not stop.is_set():
                _warm_up()
            real_deadline = began + minutes * 60 if minutes > 0 else None
            simulated_stop = first + timedelta(hours=simulated_hours) if simulated_hours is not None else None
            try:
                if not stop.is_set():
                    asyncio.run(_run(demo, start=first, replay=replay, real_deadline=real_deadline,
                                     simulated_stop=simulated_stop))
            except KeyboardInterrupt:   # outside the main thread Ctrl-C still arrives this way
                stop.set()
            if stop.is_set():
                demo.summary.stopped_by = "Ctrl-C"
            demo.transport.out = demo.out = screen
            demo.finish()
            demo.summary.real_seconds = real_time.monotonic() - began
            _print_summary(demo)
            return demo.summary
        finally:
            services.ctx.db.dispose()


def _print_summary(demo: _Demo) -> None:
    s = demo.summary
    demo.status_line("final status")
    cal = demo.calendar
    assert s.simulated_end is not None
    a, b = cal.local(s.live_start or s.simulated_end), cal.local(s.simulated_end)
    lines = ["", "=" * 78,
             f"Demo stopped ({s.stopped_by}) after {s.real_seconds / 60:.1f} real minutes: simulated "
             f"{a:%a %b} {a.day} {a:%H:%M} → {b:%a %b} {b.day} {b:%H:%M}"
             + (" (counts include the replayed day before)." if s.replayed else "."),
             *(f"  {line}" for line in s.lines())]
    if s.database is not None:
        lines.append(f"  The database is kept at {s.database}.")
    lines += ["Next: write your agreement (`slabot check agreement.yaml`), then `slabot serve` with Slack or",
              "Teams credentials.",
              "=" * 78]
    print("\n".join(lines), file=demo.out)
    demo.out.flush()
