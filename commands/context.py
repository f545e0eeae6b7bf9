"""What every command needs: the agreement, its calendar and clocks, the database, the time, and
who a chat user is in the agreement."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sla.agreement import CHAT_PLATFORMS, Agreement, Person, Team
from sla.calendar import BusinessCalendar
from sla.clock import Clock
from sla.deadlines import Clocks
from sla.lifecycle import Role
from storage import bindings, identity
from storage.db import Database, Session
from storage.tables import Lead


@dataclass
class Context:
    db: Database
    agreement: Agreement
    clock: Clock
    #: Platforms cards and messages are delivered to: those of sla.agreement.CHAT_PLATFORMS, and local ones
    #: (a console transport the demo adds, bot/demo/console.py), where people are named and channels are "#TEAM".
    platforms: tuple[str, ...] = ()
    #: Operator notices this process has logged already (each is logged once, not at every tick).
    noticed: set[str] = field(default_factory=set, repr=False, compare=False)
    #: The desk's base URL for `/sla desk` sign-in links (bot/desk sets it from SLABOT_PUBLIC_URL).
    desk_url: str | None = None
    calendar: BusinessCalendar = field(init=False)
    clocks: Clocks = field(init=False)

    def __post_init__(self) -> None:
        self.calendar = self.agreement.calendar()
        self.clocks = Clocks(self.agreement, self.calendar)

    def now(self) -> datetime:
        return self.clock.now()


@dataclass(frozen=True)
class Actor:
    """A chat user as the agreement knows them. Unknown users get an Actor with nothing set."""

    platform: str
    user_id: str
    name: str | None = None
    rep: str | None = None
    manages: frozenset[str] = frozenset()
    vp: str | None = None

    @property
    def label(self) -> str:
        """How the audit log names them."""
        who = self.rep or (f"manager:{min(self.manages)}" if self.manages else None) or self.vp
        return who or f"{self.platform}:{self.user_id}"

    def role_for(self, agreement: Agreement, lead: Lead) -> Role:
        if self.rep is not None and self.rep == lead.owner:
            return Role.OWNER
        if lead.team is not None and lead.team in self.manages:
            return Role.MANAGER
        team = agreement.team(lead.team or "")
        if team is not None and self.rep in {r.key for r in team.reps}:
            return Role.TEAM_REP
        return Role.OTHER


def person_id(person: Person, platform: str) -> str | None:
    """Their id on a chat platform of the agreement; on a local one (the console), their name."""
    return person.id_on(platform) if platform in CHAT_PLATFORMS else person.name


def dm_target(person: Person, platform: str) -> str | None:
    """How a direct message to `person` is addressed on a platform: their platform id, else their
    e-mail in the form that platform resolves (sla.agreement.EMAIL_TARGETS); their name locally."""
    if platform in CHAT_PLATFORMS:
        return person.dm_target(platform)
    return person_id(person, platform)


def _same(person: Person, platform: str, user_id: str, email: str | None) -> bool:
    pid = person_id(person, platform)
    if pid is not None and pid == user_id:
        return True
    return bool(email and person.email and person.email.lower() == email.lower())


def identify(agreement: Agreement, *, platform: str, user_id: str, email: str | None = None) -> Actor:
    """Match a chat user to the agreement by platform id, falling back to e-mail."""
    rep = next((r for r in agreement.all_reps() if _same(r, platform, user_id, email)), None)
    manages = {t.key for t in agreement.teams if t.manager and _same(t.manager, platform, user_id, email)}
    vp = None
    for role in ("sales_vp", "marketing_vp"):
        person = getattr(agreement.people, role)
        if person is not None and _same(person, platform, user_id, email):
            vp = role
            break
    if vp == "sales_vp":
        manages |= {t.key for t in agreement.teams}   # the sales VP may act as any team's manager
    name = rep.name if rep else None
    if name is None and vp:
        name = getattr(agreement.people, vp).name
    if name is None and manages:
        manager = next(t.manager for t in agreement.teams if t.key in manages and t.manager)
        name = manager.name
    return Actor(platform=platform, user_id=user_id, name=name, rep=rep.key if rep else None,
                 manages=frozenset(manages), vp=vp)


def known_email(session: Session, *, platform: str, user_id: str) -> str | None:
    """The e-mail a platform's member lookup reported for this user, if we stored one."""
    return identity.known_email(session, platform=platform, user_id=user_id)


def team_channels(session: Session, teams: Sequence[Team], platform: str) -> dict[tuple[str, str], str | None]:
    """`team_channel` of several teams on a platform, by (team, platform), in one query."""
    bound = bindings.bound_channels(session, teams=[team.key for team in teams], platform=platform)
    return {(team.key, platform): bound.get(team.key) or (
        f"#{team.key}" if platform not in CHAT_PLATFORMS else team.channel.on(platform)) for team in teams}


def team_channel(session: Session, agreement: Agreement,  # noqa: ARG001 (the callers' signature)
                 *, team: Team, platform: str) -> str | None:
    """Where a team's cards go: a channel bound with `/sla link`, else the agreement's channel; on a local
    platform (not one of the agreement's chat platforms) the team's key as "#TEAM"."""
    return team_channels(session, [team], platform)[(team.key, platform)]
