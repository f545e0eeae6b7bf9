"""The desk's routes: pages, the sign-in confirm page and POST, clicks, the demo's switcher."""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import anyio
from fastapi import APIRouter, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response, StreamingResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from bot.desk import charts
from bot.desk import session as sessions
from bot.desk.session import DeskConfig, DeskSession
from bot.presentation.cards import ActionPayload
from bot.presentation.presenters import lead_card
from bot.services import Services
from commands import changes, labels
from commands import desk as people
from commands.actions import ActionRequest
from commands.context import Actor
from commands.digest import digest_chart
from commands.interaction import act as interact
from commands.labels import local_time
from sla.agreement import AgreementError, load_agreement
from sla.lifecycle import Action, State
from storage import desk as queries
from storage.tables import Lead

HERE = Path(__file__).parent
PAGE_SIZE = 50
STATIC = {"desk.css": "text/css", "desk.js": "text/javascript"}
SPEED_LABELS = ("< 5 min", "5-15 min", "15-30 min", "30-60 min", "1-2 h", "2-4 h", "4-8 h", "8 h +")


class Denied(Exception):
    """Render a refusal page: 401 (not signed in), 403 (not yours), 410 (a spent link)."""

    def __init__(self, status: int, title: str, text: str) -> None:
        super().__init__(title)
        self.status, self.title, self.text = status, title, text


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["pct"] = labels.percent
    env.filters["num"] = lambda v: "n/a" if v is None else (f"{v:,.0f}" if float(v).is_integer() else f"{v:,.1f}")
    env.filters["minutes"] = labels.business_time
    env.filters["readable"] = labels.readable
    return env


def install(app: FastAPI, services: Services) -> None:
    """Mount the desk on the app. The demo sets `app.state.desk.demo = True` afterwards."""
    settings = services.settings
    key = settings.slabot_secret_key.get_secret_value().encode() if settings.slabot_secret_key else None
    app.state.desk = DeskConfig(secret=key, public_url=settings.slabot_public_url)
    services.ctx.desk_url = settings.slabot_public_url   # `/sla desk` links point here
    desk = Desk(app, services, _environment())
    app.include_router(desk.router())


class Desk:
    def __init__(self, app: FastAPI, services: Services, env: Environment) -> None:
        self.app, self.services, self.ctx, self.env = app, services, services.ctx, env

    @property
    def config(self) -> DeskConfig:
        config: DeskConfig = self.app.state.desk
        if config.demo and config.secret is None:
            config.secret = secrets.token_bytes(32)   # the demo's sessions live as long as the process
        return config

    def router(self) -> APIRouter:
        r = APIRouter(prefix="/desk", include_in_schema=False)
        r.add_api_route("", self.overview, methods=["GET"])
        r.add_api_route("/", self.overview, methods=["GET"])
        r.add_api_route("/leads", self.leads, methods=["GET"])
        r.add_api_route("/leads.csv", self.leads_csv, methods=["GET"])
        r.add_api_route("/leads/{lead_id}", self.lead, methods=["GET"])
        r.add_api_route("/leads/{lead_id}/act", self.act, methods=["POST"])
        r.add_api_route("/agreement", self.agreement, methods=["GET"])
        r.add_api_route("/people", self.people_page, methods=["GET"])
        r.add_api_route("/signin/{token}", self.signin_page, methods=["GET"])
        r.add_api_route("/signin/{token}", self.signin, methods=["POST"])
        r.add_api_route("/signout", self.signout, methods=["POST"])
        r.add_api_route("/as", self.switch, methods=["POST"])
        r.add_api_route("/static/{name}", self.static, methods=["GET"])
        return r

    # --- rendering and who is asking ------------------------------------------------------

    def render(self, name: str, *, status: int = 200, session: DeskSession | None = None,
               **values: Any) -> HTMLResponse:
        values.setdefault("actor", None)
        values.setdefault("view", None)
        flash = session.flash if session else None
        html = self.env.get_template(name).render(
            session=session, demo=self.config.demo, flash=flash, agreement=self.ctx.agreement,
            people=people.people(self.ctx) if self.config.demo else [], **values)
        response = HTMLResponse(html, status_code=status)
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Content-Security-Policy"] = ("default-src 'self'; img-src 'self' data:; "
                                                       "style-src 'self'; script-src 'self'; frame-ancestors 'none'")
        response.headers["Referrer-Policy"] = "same-origin"
        if session is not None:
            session.flash = None
            sessions.write(self.config, response, session)
        return response

    def denied(self, exc: Denied, session: DeskSession | None = None) -> HTMLResponse:
        return self.render("message.html", status=exc.status, title=exc.title, text=exc.text,
                           session=session if exc.status != 401 else None)

    def who(self, request: Request) -> tuple[DeskSession, Actor, people.View]:
        config = self.config
        if config.secret is None:
            raise Denied(503, "The desk is not set up",
                         "The operator has not set SLABOT_SECRET_KEY, so nobody can sign in yet.")
        session = sessions.read(config, request)
        if session is None and config.demo:
            first = people.people(self.ctx)[0]
            session = DeskSession(person=first.key, csrf=secrets.token_urlsafe(24))
        if session is None:
            raise Denied(401, "Please sign in", "Type /sla desk in Slack or Teams: slabot sends you a "
                                                "one-time sign-in link in a direct message.")
        actor = people.actor_for(self.ctx, session.person)
        view = people.view_for(self.ctx, actor) if actor else None
        if actor is None or view is None:
            raise Denied(403, "Not available", "You may not see this page.")
        return session, actor, view

    def _lead_for(self, lead_id: int, view: people.View) -> Lead:
        lead = None
        if 0 < lead_id < 2**63:
            with self.ctx.db.read() as db:
                lead = queries.get_lead(db, lead_id)
        if lead is None or not view.may_see(lead.owner, lead.team):
            # The same page whether the lead is missing or someone else's: it leaks nothing.
            raise Denied(403, "Not available", "You may not see this page.")
        return lead

    # --- pages -------------------------------------------------------------------------------

    def overview(self, request: Request, period: str = "this", as_of: str | None = None) -> Response:
        try:
            session, actor, view = self.who(request)
            instant = self._as_of(period, as_of)
        except Denied as exc:
            return self.denied(exc)
        except ValueError:
            return self.denied(Denied(422, "Not a date", "Pick a date like 2026-11-30."))
        calendar = self.ctx.calendar
        # Each figure's change from the previous period (commands/changes.py says which instant):
        # its numbers are computed beside this period's, on a connection of their own.
        previous = changes.previous_as_of(calendar, instant)
        with ThreadPoolExecutor(1, thread_name_prefix="desk-previous") as pool:
            before_later = pool.submit(self.status, view.scope, previous.as_of) if self._side_by_side else None
            numbers = self.status(view.scope, instant)
            team = view.scope.partition(":")[2] or None
            start, _ = calendar.month_bounds(instant)
            with self.ctx.db.read() as db:
                days, actual, goal = digest_chart(db, self.ctx, as_of=instant, team=team,
                                                  goal_total=numbers["marketing"]["goal"])
                speeds = queries.speed_distribution(db, start=start, as_of=instant,
                                                    teams=[team] if team else view.teams)
            before = before_later.result() if before_later else self.status(view.scope, previous.as_of)
        month = f"{calendar.local(instant):%B %Y}"
        values: dict[str, Any] = dict(
            actor=actor, view=view, s=numbers, period=period if not as_of else "date", as_of_text=as_of or "",
            as_of=instant, month=month, as_of_local=local_time(self.ctx, instant),
            chart=charts.cumulative(days, actual, goal, title=f"Workable leads in {month} against the goal"),
            speed_chart=charts.distribution(SPEED_LABELS, speeds, title=f"Speed to lead, {month}"),
            rep_names={r.key: r.name for r in self.ctx.agreement.all_reps()}, local=self._local,
            currency=self.ctx.agreement.currency, money=self._money, refresh=self.config.refresh_seconds,
            delta=changes.changes(numbers, before, currency=self.ctx.agreement.currency),
            previous_as_of=before["as_of"],
            previous_text=changes.describe(calendar, previous, local_time(self.ctx, previous.as_of)),
            sources=changes.keys_of(numbers["marketing"]["by_source"], before["marketing"]["by_source"]),
            reasons=changes.keys_of(numbers["rejected"]["by_reason"], before["rejected"]["by_reason"]),
        )
        fragment = request.headers.get("x-desk-fragment") == "1"
        return self.render("overview_live.html" if fragment else "overview.html", session=session, **values)

    @property
    def _side_by_side(self) -> bool:
        """Two read transactions at once need two connections: not an in-memory SQLite database,
        whose sessions share its one connection (storage/db.py)."""
        return self.ctx.db.url not in ("sqlite://", "sqlite:///:memory:")

    def status(self, scope: str, as_of: datetime) -> dict[str, Any]:
        """The numbers of GET /api/v1/status, as its JSON (typed model or dict alike)."""
        result: Any = self.services.status(scope=scope, as_of=as_of)
        data: dict[str, Any] = result.model_dump(mode="json") if hasattr(result, "model_dump") \
            else jsonable_encoder(result)
        return data

    def _as_of(self, period: str, as_of: str | None) -> datetime:
        now = self.ctx.now()
        calendar = self.ctx.calendar
        if as_of:
            text = as_of.strip()
            if len(text) == 10:
                day = date.fromisoformat(text)
                end = calendar.day_bounds(day)[1] - timedelta(seconds=1)
                return min(end, now).replace(microsecond=0)
            instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if instant.tzinfo is None:
                raise ValueError("as_of needs a time zone")
            return instant.astimezone(UTC)
        if period == "last":
            start, _ = calendar.month_bounds(now)
            return start - timedelta(seconds=1)
        return now.replace(microsecond=0)

    def _local(self, at: Any) -> str:
        if isinstance(at, str):
            at = datetime.fromisoformat(at.replace("Z", "+00:00"))
        return local_time(self.ctx, at)

    def _money(self, amount: Any) -> str:
        return labels.money(amount, self.ctx.agreement.currency)

    def _filter(self, request: Request, view: people.View) -> queries.LeadFilter:
        q = request.query_params
        flag = q.get("flag") if q.get("flag") in ("breached", "at_risk") else None
        return queries.LeadFilter(state=q.get("state") or None, team=q.get("team") or None,
                                  rep=q.get("rep") or None, tier=q.get("tier") or None, flag=flag,
                                  q=(q.get("q") or "").strip()[:200] or None, owner=view.owner, teams=view.teams,
                                  owner_team=view.owner_team)

    def leads(self, request: Request) -> Response:
        try:
            session, actor, view = self.who(request)
        except Denied as exc:
            return self.denied(exc)
        f = self._filter(request, view)
        after = request.query_params.get("after") or None
        now = self.ctx.now()
        try:
            with self.ctx.db.read() as db:
                rows, cursor = queries.lead_page(db, f, now=now, after=after, limit=PAGE_SIZE)
        except ValueError:
            return self.denied(Denied(422, "Not a page", "That page link is not valid; start from the first page."))
        kept = {k: v for k, v in request.query_params.items() if k != "after" and v}
        next_url = f"/desk/leads?{urlencode({**kept, 'after': cursor})}" if cursor else None
        teams = [t for t in self.ctx.agreement.teams if view.teams is None or t.key in view.teams]
        if view.owner is not None:
            teams = []
        return self.render(
            "leads.html", session=session, actor=actor, view=view, rows=[self._row(lead, now) for lead in rows],
            f=f, next_url=next_url, first_url=f"/desk/leads?{urlencode(kept)}" if after else None,
            csv_url=f"/desk/leads.csv?{urlencode(kept)}", states=[(s.value, labels.state(s.value)) for s in State],
            teams=teams, reps=[r for t in teams for r in t.reps],
            tiers=[(t.key, labels.tier(t.key)) for t in self.ctx.agreement.sales.tiers])

    def _row(self, lead: Lead, now: datetime) -> dict[str, Any]:
        rep = self.ctx.agreement.rep(lead.owner or "")
        left = ""
        if lead.is_open and lead.first_touch_at is None and lead.first_touch_due is not None:
            delta = lead.first_touch_due - now
            minutes = int(abs(delta.total_seconds()) // 60)
            span = f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"
            left = f"{span} left" if delta.total_seconds() >= 0 else f"overdue by {span}"
        return {"id": lead.id, "name": lead.name, "company": lead.company or "", "state": labels.state(lead.state),
                "team": lead.team or "", "owner": rep.name if rep else (lead.owner or "unassigned"),
                "tier": labels.tier(lead.tier) if lead.tier else "", "due": local_time(self.ctx, lead.first_touch_due)
                if lead.first_touch_due else "", "left": left, "attempts": lead.attempts,
                "email": lead.email or "", "handed_off": local_time(self.ctx, lead.handed_off_at)}

    def leads_csv(self, request: Request) -> Response:
        try:
            _, _, view = self.who(request)
        except Denied as exc:
            return self.denied(exc)
        f = self._filter(request, view)
        now = self.ctx.now()
        columns = ["id", "name", "company", "email", "state", "team", "owner", "tier", "handed_off", "due", "left",
                   "attempts"]

        def safe(value: Any) -> Any:
            text = str(value)
            return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else value

        def lines() -> Iterator[str]:
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow(columns)
            with self.ctx.db.read() as db:
                for lead in queries.iter_leads(db, f, now=now):
                    row = self._row(lead, now)
                    writer.writerow([safe(row[c]) for c in columns])
                    if buffer.tell() > 64 * 1024:
                        yield buffer.getvalue()
                        buffer.seek(0)
                        buffer.truncate()
            yield buffer.getvalue()

        return StreamingResponse(lines(), media_type="text/csv; charset=utf-8",
                                 headers={"Content-Disposition": 'attachment; filename="leads.csv"',
                                          "Cache-Control": "no-store"})

    def lead(self, request: Request, lead_id: int) -> Response:
        try:
            session, actor, view = self.who(request)
            lead = self._lead_for(lead_id, view)
        except Denied as exc:
            return self.denied(exc)
        with self.ctx.db.read() as db:
            events = queries.lead_events(db, lead_id)
        card = lead_card(self.ctx, lead)
        clocks = [(label, local_time(self.ctx, at)) for label, at in (
            ("Handed off", lead.handed_off_at), ("Routed", lead.routed_at), ("Claim due", lead.claim_due),
            ("Claimed", lead.claimed_at), ("First touch due (this owner)", lead.first_touch_due),
            ("First touch due (as the numbers judge it)", lead.sla_due), ("First touch", lead.first_touch_at),
            ("Last attempt", lead.last_attempt_at), ("Next check", lead.next_check_at),
            ("Closed", lead.closed_at)) if at is not None]
        history = [{"at": local_time(self.ctx, e.at), "actor": self._who_label(e.actor),
                    "type": labels.readable(e.type), "data": self._event_data(e.data)} for e in events]
        row = self._row(lead, self.ctx.now())
        return self.render("lead.html", session=session, actor=actor, view=view, lead=lead, card=card,
                           clocks=clocks, history=history, left=row["left"],
                           workable=[labels.qualification_reason(r) for r in lead.reasons],
                           nurture=labels.nurture_reason(lead.nurture_reason) if lead.nurture_reason else None,
                           routing=lead.routing_reason)

    def _who_label(self, actor: str) -> str:
        rep = self.ctx.agreement.rep(actor)
        if rep:
            return rep.name
        found = people.person(self.ctx, actor)
        return found.name if found else actor

    @staticmethod
    def _event_data(data: dict[str, Any]) -> str:
        parts = []
        for key, value in (data or {}).items():
            if value in (None, "", [], {}):
                continue
            shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
            parts.append(f"{labels.readable(key)}: {shown}")
        return "; ".join(parts)

    def agreement(self, request: Request) -> Response:
        try:
            session, actor, view = self.who(request)
        except Denied as exc:
            return self.denied(exc)
        agreement = self.ctx.agreement
        path = self.services.settings.slabot_agreement
        problems: list[str] = []
        try:
            load_agreement(path)
            verdict = f"{path}: ok: {agreement.name!r}, {len(agreement.teams)} teams, " \
                      f"{len(agreement.all_reps())} reps, version {agreement.version}"
        except AgreementError as exc:
            verdict = f"{path}: not valid"
            problems = [p.render(path) for p in exc.problems]
        except OSError:
            verdict = f"loaded by the running service: {agreement.name!r}, version {agreement.version} " \
                      f"(no file at {path} to check)"
        tiers = [{"name": labels.tier(t.key), "first_touch": labels.duration(t.first_touch_within),
                  "attempts": f"{t.attempts.count} within {labels.duration(t.attempts.within)}"}
                 for t in agreement.sales.tiers]
        ladder = [labels.nudge_step(n.at, n.notify, n.reassign) for n in agreement.nudges]
        routing = [{"when": self._condition(rule.when), "team": rule.team} for rule in agreement.routing.rules]
        scoring = [{"when": self._condition(rule.when), "points": rule.points}
                   for rule in agreement.qualification.scoring]
        return self.render("agreement.html", session=session, actor=actor, view=view, verdict=verdict,
                           problems=problems, tiers=tiers, ladder=ladder, routing=routing, scoring=scoring,
                           strategy=labels.readable(agreement.routing.strategy),
                           threshold=agreement.qualification.score_threshold,
                           reasons=[labels.disqualify_reason(r) for r in agreement.sales.disqualify_reasons])

    @staticmethod
    def _condition(when: Any) -> str:
        parts = [f"{labels.readable(k)} {', '.join(map(str, v)) if isinstance(v, list | tuple) else v}"
                 for k, v in when.model_dump(exclude_none=True).items()]
        return "; ".join(parts) or "always"

    def people_page(self, request: Request) -> Response:
        try:
            session, actor, view = self.who(request)
        except Denied as exc:
            return self.denied(exc)
        now = self.ctx.now()
        reps = [r.key for r in self.ctx.agreement.all_reps()]
        with self.ctx.db.read() as db:
            statuses = queries.rep_statuses(db)
            open_now = queries.open_counts(db, reps)
        teams = []
        for team in self.ctx.agreement.teams:
            rows = []
            for rep in team.reps:
                status = statuses.get(rep.key)
                away = bool(status and status.away and (status.away_until is None or status.away_until > now))
                until = local_time(self.ctx, status.away_until) if away and status and status.away_until else None
                rows.append({"name": rep.name, "capacity": rep.capacity_per_week, "active": rep.active,
                             "away": ("away until " + until) if until else ("away" if away else "available"),
                             "open": open_now.get(rep.key, 0)})
            teams.append({"name": team.name, "manager": team.manager.name if team.manager else "none", "reps": rows})
        vps = [(title, p.name) for title, p in (("Marketing VP", self.ctx.agreement.people.marketing_vp),
                                                 ("Sales VP", self.ctx.agreement.people.sales_vp)) if p]
        return self.render("people.html", session=session, actor=actor, view=view, teams=teams, vps=vps)

    def static(self, name: str) -> Response:
        if name not in STATIC:
            return Response(status_code=404)
        return FileResponse(HERE / "static" / name, media_type=STATIC[name],
                            headers={"Cache-Control": "public, max-age=300"})

    # --- forms ---------------------------------------------------------------------------------

    @staticmethod
    async def _form(request: Request) -> dict[str, str]:
        body = await request.body()
        if len(body) > 16 * 1024:
            return {}
        return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}

    def _checked(self, request: Request, form: dict[str, str]) -> tuple[DeskSession, Actor, people.View]:
        """The person posting, after the CSRF token and origin checks."""
        session, actor, view = self.who(request)
        if not sessions.same_origin(self.config, request) or not sessions.csrf_ok(
                sessions.read(self.config, request), form.get("csrf")):
            raise Denied(403, "Refused", "This form did not come from the desk, so nothing was done. "
                                         "Reload the page and try again.")
        return session, actor, view

    async def act(self, request: Request, lead_id: int) -> Response:
        """A button on the desk is a click like one in Slack or Teams: the same interaction service
        (commands.interaction) authorizes it against the lead as it is now, performs it with the
        same compare-and-set and queues the chat cards' update through the outbox. The desk then
        shows the lead as it is and says what happened, in the words chat uses (a refusal
        included); a desk page that was out of date is refused like a stale card, and the page it
        leads to is the refreshed one."""
        form = await self._form(request)
        try:
            session, actor, view = self._checked(request, form)
            self._lead_for(lead_id, view)
            payload = ActionPayload.parse({"a": form.get("a", ""), "lead": lead_id, "v": form.get("v") or None,
                                           "reason": form.get("choice") if form.get("a") == Action.DISQUALIFY.value
                                           else None,
                                           "to": form.get("choice") if form.get("a") == Action.REASSIGN.value else None,
                                           "amount": form.get("amount") or None})
        except Denied as exc:
            return self.denied(exc)
        except (ValueError, KeyError, TypeError):
            return self.denied(Denied(422, "Not an action", "That button is not one slabot knows."))
        acted = await anyio.to_thread.run_sync(lambda: interact(self.ctx, ActionRequest(
            lead_id=payload.lead_id, action=payload.action, actor=actor, version=payload.version,
            reason=payload.reason, amount=payload.amount, to_rep=payload.to_rep)))
        self.services.wake_worker()
        session.flash = acted.outcome.text
        response = RedirectResponse(f"/desk/leads/{lead_id}", status_code=303)
        sessions.write(self.config, response, session)
        return response

    def signin_page(self, request: Request, token: str) -> Response:
        """A GET never spends the link (chat unfurls and mail scanners open it first)."""
        with self.ctx.db.read() as db:
            row = queries.signin_for(db, token_hash=people.token_hash(token), now=self.ctx.now())
        found = people.person(self.ctx, row.person) if row else None
        if row is None or found is None:
            return self.denied(self._spent())
        return self.render("signin.html", person=found, action=f"/desk/signin/{token}")

    @staticmethod
    def _spent() -> Denied:
        return Denied(410, "This link does not work any more", "Sign-in links work once, for 10 minutes. "
                      "Type /sla desk in Slack or Teams for a new one.")

    async def signin(self, request: Request, token: str) -> Response:
        if self.config.secret is None:
            return self.denied(Denied(503, "The desk is not set up",
                                      "The operator has not set SLABOT_SECRET_KEY, so nobody can sign in yet."))
        if not sessions.same_origin(self.config, request):
            return self.denied(Denied(403, "Refused", "This form did not come from the desk, so nothing was done."))

        def spend() -> tuple[str, str] | None:
            with self.ctx.db.write() as db:
                row = queries.spend_signin(db, token_hash=people.token_hash(token), now=self.ctx.now())
                return (row.person, row.next_path) if row else None

        spent = await anyio.to_thread.run_sync(spend)
        if spent is None or people.person(self.ctx, spent[0]) is None:
            return self.denied(self._spent())
        response = RedirectResponse(people.safe_next(spent[1]), status_code=303)
        sessions.start(self.config, response, spent[0])
        return response

    async def signout(self, request: Request) -> Response:
        form = await self._form(request)
        try:
            self._checked(request, form)
        except Denied as exc:
            return self.denied(exc)
        response = self.render("message.html", title="Signed out",
                               text="You are signed out. Type /sla desk in chat to sign in again.")
        sessions.end(response)
        return response

    async def switch(self, request: Request) -> Response:
        """The demo's "act as": any person of the agreement, no sign-in."""
        form = await self._form(request)
        if not self.config.demo:
            return self.denied(Denied(404, "Not found", "There is no such page."))
        try:
            self._checked(request, form)
        except Denied as exc:
            return self.denied(exc)
        if people.person(self.ctx, form.get("as", "")) is None:
            return self.denied(Denied(422, "Nobody by that name", "Pick a person from the list."))
        response = RedirectResponse(people.safe_next(form.get("next")), status_code=303)
        sessions.start(self.config, response, form["as"])
        return response
