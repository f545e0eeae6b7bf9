"""Who may use the desk and how they sign in: the people of the agreement by key, what each sees,
one-time sign-in links, and `/sla desk` (a direct message with a link).

A link's token is 32 random bytes; only its SHA-256 is stored (storage/desk.py). It works once,
for 10 minutes, and is spent by the desk's "Sign in" POST, never by a GET (chat unfurls and mail
scanners open links before people do).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from commands.context import Actor, Context, dm_target, identify
from sla.agreement import Person
from storage.desk import add_signin
from storage.outbox import enqueue

#: How long a sign-in link works.
LINK_TTL = timedelta(minutes=10)
#: The platform name the desk's actors carry (the audit log and the outbox never send to it).
PLATFORM = "desk"


@dataclass(frozen=True)
class DeskPerson:
    """Someone of the agreement who may use the desk."""

    key: str          # rep:ana, manager:smb, marketing_vp, sales_vp
    person: Person
    role: str         # what the switcher and the confirm page say: "rep, SMB team"

    @property
    def name(self) -> str:
        return self.person.name


def people(ctx: Context) -> list[DeskPerson]:
    """Everyone the desk knows, VPs first, then each team's manager and reps."""
    found: list[DeskPerson] = []
    for vp, title in (("marketing_vp", "Marketing VP"), ("sales_vp", "Sales VP")):
        person = getattr(ctx.agreement.people, vp)
        if person is not None:
            found.append(DeskPerson(vp, person, title))
    for team in ctx.agreement.teams:
        if team.manager is not None:
            found.append(DeskPerson(f"manager:{team.key}", team.manager, f"manager, {team.name}"))
        for rep in team.reps:
            found.append(DeskPerson(f"rep:{rep.key}", rep, f"rep, {team.name}"))
    return found


def person(ctx: Context, key: str) -> DeskPerson | None:
    return next((p for p in people(ctx) if p.key == key), None)


def by_email(ctx: Context, email: str) -> DeskPerson | None:
    wanted = email.strip().lower()
    return next((p for p in people(ctx) if p.person.email and p.person.email.lower() == wanted), None)


def actor_for(ctx: Context, key: str) -> Actor | None:
    """The actor a desk person acts as: the same roles chat gives them (by e-mail, else by name,
    plus the role the key names)."""
    found = person(ctx, key)
    if found is None:
        return None
    actor = identify(ctx.agreement, platform=PLATFORM, user_id=found.person.name, email=found.person.email)
    kind, _, rest = key.partition(":")
    if kind == "rep" and actor.rep is None:
        actor = Actor(platform=PLATFORM, user_id=found.name, name=found.name, rep=rest, manages=actor.manages,
                      vp=actor.vp)
    if kind == "manager" and rest not in actor.manages:
        actor = Actor(platform=PLATFORM, user_id=found.name, name=found.name, rep=actor.rep,
                      manages=actor.manages | {rest}, vp=actor.vp)
    return actor


def key_of(actor: Actor) -> str | None:
    """The desk key of a chat actor: VP, else manager, else rep."""
    if actor.vp:
        return actor.vp
    if actor.manages:
        return f"manager:{min(actor.manages)}"
    if actor.rep:
        return f"rep:{actor.rep}"
    return None


@dataclass(frozen=True)
class View:
    """What a desk person may see: leads (`owner`, plus the unowned leads of `owner_team` they may
    claim; `teams`; None: all) and numbers (`scope`)."""

    scope: str
    scope_label: str
    owner: str | None
    teams: tuple[str, ...] | None
    owner_team: str | None = None

    def may_see(self, lead_owner: str | None, lead_team: str | None) -> bool:
        if self.owner is not None:
            return lead_owner == self.owner or (lead_owner is None and lead_team == self.owner_team)
        if self.teams is not None:
            return lead_team in self.teams
        return True


def view_for(ctx: Context, actor: Actor) -> View | None:
    """A rep sees their own leads and their team's numbers, a manager their team(s), the VPs
    everything; anyone else nothing (None)."""
    if actor.vp:
        return View("all", "everyone", None, None)
    if actor.manages:
        teams = tuple(sorted(actor.manages))
        if len(teams) == 1:
            team = ctx.agreement.team(teams[0])
            return View(f"team:{teams[0]}", team.name if team else teams[0], None, teams)
        return View("all", "your teams", None, teams)
    if actor.rep:
        team = next((t for t in ctx.agreement.teams if actor.rep in {r.key for r in t.reps}), None)
        if team is None:
            return None
        return View(f"team:{team.key}", team.name, actor.rep, None, team.key)
    return None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def safe_next(path: str | None) -> str:
    """Only a local desk path: never another site (`//evil`, `https://...`, `/\\evil`)."""
    if not path or not path.startswith("/desk") or path.startswith("//") or "\\" in path:
        return "/desk"
    if any(ord(c) < 32 for c in path):
        return "/desk"
    return path


def signin_link(ctx: Context, *, key: str, next_path: str | None = None, base_url: str) -> str:
    """Create a one-time link for a desk person and return its URL."""
    token = secrets.token_urlsafe(32)
    now = ctx.now()
    with ctx.db.write() as session:
        add_signin(session, token_hash=token_hash(token), person=key, next_path=safe_next(next_path), now=now,
                   expires_at=now + LINK_TTL)
    return f"{base_url.rstrip('/')}/desk/signin/{token}"


def send_link(ctx: Context, actor: Actor, platform: str) -> str:
    """`/sla desk`: a one-time sign-in link in a direct message (it notifies, and an ephemeral reply
    is easy to lose), through the outbox. Returns what the command answers."""
    key = key_of(actor)
    found = person(ctx, key) if key else None
    if key is None or found is None:
        return ("You are not in the SLA agreement (as a rep, manager or VP), so the desk has nothing to "
                "show you. Ask your RevOps admin to add your chat id or e-mail to the agreement.")
    if not ctx.desk_url:
        return ("The desk has no public address yet (SLABOT_PUBLIC_URL is not set): ask your operator for "
                "a link (`slabot desk link YOUR-EMAIL`).")
    target = dm_target(found.person, platform) or actor.user_id
    token = secrets.token_urlsafe(32)
    now = ctx.now()
    url = f"{ctx.desk_url.rstrip('/')}/desk/signin/{token}"
    with ctx.db.write() as session:
        add_signin(session, token_hash=token_hash(token), person=key, next_path="/desk", now=now,
                   expires_at=now + LINK_TTL)
        enqueue(session, dedupe_key=f"desk:signin:{token_hash(token)[:32]}", kind="dm", platform=platform,
                target=target, now=now,
                payload={"text": f"Your sign-in link to the slabot desk (it works once, for 10 minutes): {url}",
                         "link": url})   # a link slabot made: platforms that make text inert keep this one
    return "I sent you a direct message with a sign-in link to the desk. It works once, for 10 minutes."
