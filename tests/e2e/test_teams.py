"""Microsoft Teams end to end: activities POSTed over real HTTP to the live app's /api/messages, the
real Agents SDK connector client talking to a fake Bot Connector on 127.0.0.1, the real outbox
worker delivering cards, and, with TEAMS_APP_ID set, tokens signed with a local RSA key."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from microsoft_agents.authentication.msal import MsalAuth
from microsoft_agents.hosting.core import JwtTokenValidator
from sqlmodel import select

from bot.http.app import create_app
from bot.services import Services, build_services
from bot.teams.auth import LoopbackAllowingValidator
from bot.teams.render import card_verbs, iter_nodes
from bot.worker.delivery import DeliveryReport, OutboxWorker
from sla.agreement import Agreement, load_agreement
from sla.clock import FixedClock
from storage.db import Database
from storage.outbox import enqueue
from storage.tables import (
    ChannelBinding,
    ConversationRef,
    DeskSignin,
    Lead,
    MessageRef,
    OutboxMessage,
    PlatformUser,
)
from tests.conftest import EXAMPLE_LEAD, INTAKE_TOKEN, T0, LiveServer, make_settings
from tests.e2e.teams_helpers import (
    APP_ID,
    BOT,
    GENERAL,
    LEADS_CHANNEL,
    PEOPLE,
    TEAM_ID,
    TENANT,
    Signer,
    agreement_with_teams_ids,
    assert_valid_card,
    card_click,
    channel_message,
    member,
    personal_chat,
    personal_install,
    personal_message,
    team_install,
    unsigned_token,
    user,
)
from tests.fakes.bot_connector import FakeBotConnector

CARD = "application/vnd.microsoft.card.adaptive"
MESSAGE = "application/vnd.microsoft.activity.message"


@dataclass
class Teams:
    services: Services
    server: LiveServer
    connector: FakeBotConnector
    http: httpx.Client
    slept: list[float]

    @property
    def url(self) -> str:
        return self.connector.service_url

    def send(self, activity: dict[str, Any], **headers: str) -> httpx.Response:
        return self.http.post("/api/messages", json=activity, headers=headers)

    def worker(self) -> OutboxWorker:
        async def sleep(seconds: float) -> None:   # pacing and Retry-After waits, without waiting
            self.slept.append(seconds)

        return OutboxWorker(self.services.ctx, self.services.transports, worker_id="test", sleep=sleep)

    async def deliver(self, now: Any = None) -> DeliveryReport:
        return await self.worker().deliver_due(now)

    def handoff(self, **changes: Any) -> dict[str, Any]:
        body = json.loads(EXAMPLE_LEAD.read_text())
        body.update({"employees": 200, "external_id": f"teams-{len(self.rows(Lead))}"}, **changes)
        response = self.http.post("/api/v1/leads", json=body, headers={"Authorization": f"Bearer {INTAKE_TOKEN}"})
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    def rows(self, table: type) -> list[Any]:
        with self.services.ctx.db.read() as session:
            return list(session.execute(select(table)).scalars().all())

    def lead(self, lead_id: int) -> Lead:
        with self.services.ctx.db.read() as session:
            found = session.get(Lead, lead_id)
            assert found is not None
            return found

    def install_and_link(self, team: str = "smb", by: str = "priya") -> None:
        assert self.send(team_install(self.url)).status_code == 202
        assert self.send(channel_message(self.url, by, f"sla link {team}")).status_code == 202


@pytest.fixture
def connector() -> Iterator[FakeBotConnector]:
    with FakeBotConnector() as fake:
        fake.members = {member(who)["id"]: member(who) for who in PEOPLE}
        yield fake


def start_teams(db: Database, clock: FixedClock, agreement: Agreement,
                connector: FakeBotConnector) -> Iterator[Teams]:
    services = build_services(make_settings(database_url=db.url, teams_allow_unauthenticated=True),
                              clock=clock, agreement=agreement, db=db)
    with LiveServer(create_app(services)) as server, httpx.Client(base_url=server.url, timeout=10) as http:
        yield Teams(services, server, connector, http, [])


@pytest.fixture
def teams(db: Database, clock: FixedClock, tmp_path: Path, connector: FakeBotConnector) -> Iterator[Teams]:
    """Anonymous mode, an agreement whose SMB people have `teams:` (AAD object) ids."""
    yield from start_teams(db, clock, load_agreement(agreement_with_teams_ids(tmp_path)), connector)


@pytest.fixture
def teams_by_email(db: Database, clock: FixedClock, agreement: Agreement,
                   connector: FakeBotConnector) -> Iterator[Teams]:
    """Anonymous mode, the example agreement: no `teams:` ids, people are matched by e-mail."""
    yield from start_teams(db, clock, agreement, connector)


def texts(connector: FakeBotConnector, conversation_id: str) -> list[str]:
    return [a.text or "" for a in connector.activities(conversation_id)]


def click_data(content: dict[str, Any], verb: str) -> dict[str, Any]:
    found = [n["data"] for n in iter_nodes(content) if n.get("type") == "Action.Execute" and n.get("verb") == verb]
    assert found, f"no {verb} button on the card"
    return dict(found[0])


def posted_card(t: Teams) -> tuple[MessageRef, dict[str, Any]]:
    (ref,) = t.rows(MessageRef)
    activity = t.connector.activity(ref.channel, ref.message_id)
    assert activity is not None
    return ref, activity.attachment_contents[0]


# --- installation and linking ---------------------------------------------------------------------


def test_install_in_team_stores_the_conversation_reference(teams: Teams) -> None:
    response = teams.send(team_install(teams.url))
    assert response.status_code == 202
    refs = {r.conversation_id: r for r in teams.rows(ConversationRef)}
    # The team's General channel, and the channel picked in the install dialog.
    assert set(refs) == {GENERAL, LEADS_CHANNEL}
    general = refs[GENERAL]
    assert (general.kind, general.service_url, general.tenant_id, general.team_id) == (
        "channel", teams.url, TENANT, TEAM_ID)
    assert general.reference["bot"]["id"] == BOT["id"]
    # A short welcome in the channel says how to link it; no error text, no token in anonymous mode.
    (welcome,) = texts(teams.connector, GENERAL)
    assert "sla link TEAM" in welcome.replace("\\", "")
    assert not any(c.has_authorization for c in teams.connector.calls)


def test_bot_removed_from_a_team_forgets_its_channels(teams: Teams) -> None:
    teams.send(team_install(teams.url))
    removed = team_install(teams.url)
    removed.pop("membersAdded")
    removed["membersRemoved"] = [{"id": BOT["id"]}]
    removed["channelData"]["eventType"] = "teamMemberRemoved"
    teams.send(personal_message(teams.url, "ana", "sla help"))
    assert teams.send(removed).status_code == 202
    # Every channel of that team is forgotten; ana's personal chat stays.
    assert {r.conversation_id for r in teams.rows(ConversationRef)} == {personal_chat("ana")}


def test_sla_link_in_a_channel_binds_it(teams: Teams) -> None:
    teams.send(team_install(teams.url))
    response = teams.send(channel_message(teams.url, "priya", "sla link smb"))
    assert response.status_code == 202
    (binding,) = teams.rows(ChannelBinding)
    assert (binding.team, binding.platform, binding.channel) == ("smb", "teams", LEADS_CHANNEL)
    assert binding.bound_by == "manager:smb"
    # The answer is public (private=False) and lands in the thread of the command (mention stripped).
    thread = [cid for cid in teams.connector.conversations if cid.startswith(f"{LEADS_CHANNEL};messageid=")]
    assert len(thread) == 1
    (reply,) = texts(teams.connector, thread[0])
    assert "SMB Inbound" in reply


def test_link_by_someone_who_may_not_is_refused_privately(teams: Teams) -> None:
    teams.send(team_install(teams.url))
    assert teams.send(channel_message(teams.url, "ana", "sla link smb")).status_code == 202
    assert teams.rows(ChannelBinding) == []
    # Teams has no ephemeral messages: the refusal goes to ana's 1:1 chat with the bot.
    (created,) = teams.connector.created_conversations
    assert created["members"] == [{"id": PEOPLE["ana"][0]}] and created["isGroup"] is False
    assert "Only the manager of SMB Inbound" in texts(teams.connector, created["id"])[0]
    personal = [r for r in teams.rows(ConversationRef) if r.kind == "personal"]
    assert [(r.conversation_id, r.user_aad_id) for r in personal] == [(created["id"], PEOPLE["ana"][1])]


# --- cards ------------------------------------------------------------------------------------------


async def test_handoff_posts_a_new_thread_and_the_owner_claims_it(teams: Teams) -> None:
    teams.install_and_link()
    lead = teams.handoff()
    assert lead["team"] == "smb" and lead["rep"] in {"ana", "ben", "cho"}
    report = await teams.deliver()
    assert report.sent == 1 and not report.errors

    (created,) = [c for c in teams.connector.created_conversations if c.get("isGroup")]
    assert created["channelData"]["channel"]["id"] == LEADS_CHANNEL
    assert created["tenantId"] == TENANT and created["channelData"]["tenant"]["id"] == TENANT
    assert created["bot"]["id"] == BOT["id"]
    ref, content = posted_card(teams)
    assert ref.channel == created["id"] and ref.channel.startswith(f"{LEADS_CHANNEL};messageid=")
    assert_valid_card(content)
    assert "lead.claim" in card_verbs(content)
    owner_aad = PEOPLE[lead["rep"]][1]
    assert content["msteams"]["entities"][0]["mentioned"]["id"] == owner_aad
    assert teams.lead(lead["id"]).card_posted_at is not None

    click = card_click(teams.url, who=user(lead["rep"]), verb="lead.claim",
                       data=click_data(content, "lead.claim"), thread=ref.channel, activity_id=ref.message_id)
    response = teams.send(click)
    assert response.status_code == 200
    body = response.json()
    assert (body["statusCode"], body["type"]) == (200, CARD)
    assert_valid_card(body["value"])
    verbs = card_verbs(body["value"])
    assert "lead.claim" not in verbs and {"lead.log_call", "lead.log_email", "lead.connected"} <= set(verbs)
    stored = teams.lead(lead["id"])
    assert stored.state == "claimed" and stored.claimed_at is not None

    # The outbox also updates the thread's card in place (no second thread).
    report = await teams.deliver()
    assert report.updated == 1
    (update,) = teams.connector.updates()
    assert (update.conversation_id, update.activity_id) == (ref.channel, ref.message_id)
    updated = update.body["attachments"][0]["content"]
    assert_valid_card(updated)
    assert "lead.claim" not in card_verbs(updated)
    assert "timestamp" not in update.body
    assert len([c for c in teams.connector.created_conversations if c.get("isGroup")]) == 1


async def test_a_click_by_someone_else_changes_nothing(teams: Teams) -> None:
    teams.install_and_link()
    lead = teams.handoff()
    await teams.deliver()
    ref, content = posted_card(teams)
    other = next(rep for rep in ("ana", "ben", "cho") if rep != lead["rep"])
    before = teams.lead(lead["id"])

    response = teams.send(card_click(teams.url, who=user(other), verb="lead.claim",
                                     data=click_data(content, "lead.claim"), thread=ref.channel,
                                     activity_id=ref.message_id))
    assert response.status_code == 200
    body = response.json()
    assert (body["statusCode"], body["type"]) == (200, MESSAGE)
    assert "Only the lead's owner or the team's manager" in body["value"]
    after = teams.lead(lead["id"])
    assert (after.state, after.version, after.claimed_at) == ("routed", before.version, None)
    # The card is re-rendered as it is now through the outbox (for clickers holding a stale card).
    report = await teams.deliver()
    assert report.updated == 1
    assert "lead.claim" in card_verbs(teams.connector.updates()[0].body["attachments"][0]["content"])


async def test_disqualify_with_a_reason_from_the_card_input(teams: Teams) -> None:
    teams.install_and_link()
    lead = teams.handoff()
    await teams.deliver()
    ref, content = posted_card(teams)
    # Teams merges the show card's input (id "reason") into action.data.
    data = {**click_data(content, "lead.disqualify"), "reason": "no_budget"}
    body = teams.send(card_click(teams.url, who=user("priya"), verb="lead.disqualify", data=data,
                                 thread=ref.channel, activity_id=ref.message_id)).json()
    assert body["type"] == CARD
    stored = teams.lead(lead["id"])
    assert (stored.state, stored.disqualify_reason) == ("disqualified", "no_budget")
    facts = {f["title"]: f["value"] for node in iter_nodes(body["value"]) if node.get("type") == "FactSet"
             for f in node["facts"]}
    assert facts["Reason"] == "No budget"   # the reader sees words; the stored reason stays the key


async def test_people_are_matched_by_email_from_the_member_lookup(teams_by_email: Teams) -> None:
    t = teams_by_email
    t.install_and_link()          # priya is the SMB manager only by e-mail here
    assert [b.channel for b in t.rows(ChannelBinding)] == [LEADS_CHANNEL]
    lead = t.handoff()
    await t.deliver()
    ref, content = posted_card(t)
    assert "msteams" not in content or "entities" not in content["msteams"]   # no teams id: no mention
    lookups = len(t.connector.calls_of("members"))

    claim = t.send(card_click(t.url, who=user(lead["rep"]), verb="lead.claim",
                              data=click_data(content, "lead.claim"), thread=ref.channel,
                              activity_id=ref.message_id)).json()
    assert claim["type"] == CARD and t.lead(lead["id"]).state == "claimed"
    assert len(t.connector.calls_of("members")) == lookups + 1
    mri, aad, email = PEOPLE[lead["rep"]]
    stored = {(u.user_id, u.email) for u in t.rows(PlatformUser)}
    assert {(aad, email), (mri, email)} <= stored

    # The e-mail is cached: the next click needs no lookup.
    log = t.send(card_click(t.url, who=user(lead["rep"]), verb="lead.log_call",
                            data=click_data(claim["value"], "lead.log_call"), thread=ref.channel,
                            activity_id=ref.message_id)).json()
    assert log["type"] == CARD and t.lead(lead["id"]).attempts == 1
    assert len(t.connector.calls_of("members")) == lookups + 1


async def test_unknown_card_action_is_a_bad_request(teams: Teams) -> None:
    click = card_click(teams.url, who=user("ana"), verb="lead.explode", data={"a": "explode", "lead": 1},
                       thread=f"{LEADS_CHANNEL};messageid=1", activity_id="1")
    response = teams.send(click)
    assert response.status_code == 200 and response.json()["statusCode"] == 400


# --- commands and personal messages -------------------------------------------------------------------


def test_sla_status_in_a_personal_chat(teams: Teams) -> None:
    assert teams.send(personal_message(teams.url, "ana", "sla status")).status_code == 202
    (reply,) = texts(teams.connector, personal_chat("ana"))
    assert reply.startswith("SLA status for everyone")
    (ref,) = teams.rows(ConversationRef)
    assert (ref.kind, ref.user_aad_id) == ("personal", PEOPLE["ana"][1])


def test_private_answers_to_channel_commands_go_to_a_personal_chat(teams: Teams) -> None:
    teams.send(team_install(teams.url))
    assert teams.send(channel_message(teams.url, "ben", "sla leads")).status_code == 202
    (created,) = teams.connector.created_conversations
    assert created["members"] == [{"id": PEOPLE["ben"][0]}]
    assert texts(teams.connector, created["id"])[0].startswith("Your open leads")
    thread = next(cid for cid in teams.connector.conversations if ";messageid=" in cid)
    assert "personal chat" in texts(teams.connector, thread)[0]


async def test_nudges_arrive_as_personal_messages(teams: Teams) -> None:
    db = teams.services.ctx.db
    assert teams.send(personal_install(teams.url, "ana")).status_code == 202
    teams.send(team_install(teams.url))
    # ben is only seen (and looked up) in a channel, clicking a card: no personal chat yet.
    teams.send(card_click(teams.url, who=user("ben"), verb="lead.claim", data={"a": "claim", "lead": 999, "v": 1},
                          thread=f"{LEADS_CHANNEL};messageid=1", activity_id="1"))
    teams.connector.reset_calls()
    with db.write() as session:
        enqueue(session, dedupe_key="nudge:ana", kind="dm", platform="teams", target=PEOPLE["ana"][1], now=T0,
                payload={"text": "Acme is due in 5 minutes: [call now](https://evil.example)"})
        enqueue(session, dedupe_key="nudge:ben", kind="dm", platform="teams", target="Ben@Acme.example",
                now=T0, payload={"text": "Reminder for Ben"})
        enqueue(session, dedupe_key="nudge:nobody", kind="dm", platform="teams", target="eve@acme.example",
                now=T0, payload={"text": "never seen in Teams"})
    report = await teams.deliver()
    assert report.sent == 2 and report.retried == 1

    # ana installed the app personally: her stored 1:1 chat is used.
    nudge = texts(teams.connector, personal_chat("ana"))[-1]
    assert nudge.startswith("Acme is due in 5 minutes") and "](" not in nudge and "https://" not in nudge
    # ben was only seen in a channel: a 1:1 chat is created with his 29: id, then remembered.
    (created,) = teams.connector.created_conversations
    assert created["members"] == [{"id": PEOPLE["ben"][0]}] and created["tenantId"] == TENANT
    assert texts(teams.connector, created["id"]) == ["Reminder for Ben"]
    assert any(r.user_aad_id == PEOPLE["ben"][1] and r.kind == "personal" for r in teams.rows(ConversationRef))
    # eve never used slabot in Teams: nothing to send to, said plainly, kept for a retry.
    (row,) = [r for r in teams.rows(OutboxMessage) if r.dedupe_key == "nudge:nobody"]
    assert row.status == "pending" and "has not talked to slabot in Teams" in (row.last_error or "")


async def test_digest_to_a_channel_is_a_card(teams: Teams) -> None:
    teams.send(team_install(teams.url))
    with teams.services.ctx.db.write() as session:
        enqueue(session, dedupe_key="digest:smb", kind="digest", platform="teams", target=LEADS_CHANNEL, now=T0,
                payload={"title": "SLA digest", "text": "digest", "to": "channel", "chart_png_b64": None,
                         "sections": [{"heading": "Marketing", "lines": ["12 workable leads"]}]})
    assert (await teams.deliver()).sent == 1
    (post,) = teams.connector.activities(LEADS_CHANNEL)
    assert post.via == "send"
    assert_valid_card(post.attachment_contents[0])


# --- rate limits and failures -------------------------------------------------------------------------


async def test_429_is_retried_after_retry_after_on_the_same_lane(teams: Teams) -> None:
    teams.install_and_link()
    teams.handoff()
    teams.connector.fail_next("create", 429, retry_after=2)
    report = await teams.deliver()
    assert (report.sent, report.retried) == (1, 1)
    assert 1.5 <= max(teams.slept) <= 2.0
    assert len([c for c in teams.connector.created_conversations if c.get("isGroup")]) == 1


async def test_502_and_dropped_connections_back_off_then_deliver(teams: Teams) -> None:
    teams.install_and_link()
    teams.handoff()
    teams.connector.fail_next("create", 502)
    report = await teams.deliver(T0)
    assert (report.sent, report.retried) == (0, 1) and "502" in report.errors[0]
    (row,) = [r for r in teams.rows(OutboxMessage) if r.kind == "card"]
    assert row.status == "pending" and row.next_attempt_at > T0

    teams.connector.fail_next("create", 0)   # connection dropped without an answer
    later = T0 + timedelta(minutes=10)
    assert (await teams.deliver(later)).retried == 1
    assert (await teams.deliver(later + timedelta(minutes=10))).sent == 1
    assert len([c for c in teams.connector.created_conversations if c.get("isGroup")]) == 1
    assert len(teams.rows(MessageRef)) == 1


async def test_updates_are_retried_too(teams: Teams) -> None:
    teams.install_and_link()
    lead = teams.handoff()
    await teams.deliver(T0)
    ref, content = posted_card(teams)
    teams.send(card_click(teams.url, who=user(lead["rep"]), verb="lead.claim",
                          data=click_data(content, "lead.claim"), thread=ref.channel, activity_id=ref.message_id))
    teams.connector.fail_next("update", 412)
    assert (await teams.deliver(T0)).retried == 1
    assert (await teams.deliver(T0 + timedelta(minutes=5))).updated == 1
    assert len(teams.connector.updates()) == 1


def test_a_failing_turn_apologises_without_leaking(teams: Teams, monkeypatch: pytest.MonkeyPatch) -> None:
    import commands.sla

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("database password is hunter2")

    monkeypatch.setattr(commands.sla, "run", broken)
    assert teams.send(personal_message(teams.url, "ana", "sla status")).status_code == 202
    (reply,) = texts(teams.connector, personal_chat("ana"))
    assert reply.startswith("Sorry, something went wrong") and "hunter2" not in reply


async def test_a_failing_click_gets_a_generic_message(teams: Teams, monkeypatch: pytest.MonkeyPatch) -> None:
    import commands.interaction

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("stack trace with secrets")

    monkeypatch.setattr(commands.interaction, "perform", broken)
    response = teams.send(card_click(teams.url, who=user("ana"), verb="lead.claim",
                                     data={"a": "claim", "lead": 1, "v": 1},
                                     thread=f"{LEADS_CHANNEL};messageid=1", activity_id="1"))
    assert response.status_code == 200
    body = response.json()
    assert body["type"] == MESSAGE and body["value"].startswith("Sorry") and "secrets" not in response.text
    assert teams.connector.activities() == []


# --- the route's guards ----------------------------------------------------------------------------------


def test_unknown_service_urls_are_refused(teams: Teams) -> None:
    for url in ("https://evil.example/amer/", "http://10.0.0.7/amer/", "https://smba.trafficmanager.net.evil.example/"):
        assert teams.send(personal_message(url, "ana", "sla status")).status_code == 401
    assert teams.rows(ConversationRef) == []


def test_anonymous_mode_still_checks_a_token_that_is_sent(teams: Teams) -> None:
    response = teams.send(personal_message(teams.url, "ana", "sla status"), Authorization="Bearer not-a-jwt")
    assert response.status_code == 401


def test_bodies_are_limited_and_must_be_activities(teams: Teams) -> None:
    big = personal_message(teams.url, "ana", "x" * (300 * 1024))
    assert teams.send(big).status_code == 413
    def chunks() -> Iterator[bytes]:   # chunked: no Content-Length to refuse early
        yield json.dumps(personal_message(teams.url, "ana", "sla status")).encode()[:-1]
        yield b" " * (300 * 1024) + b"}"

    assert teams.http.post("/api/messages", content=chunks(),
                           headers={"Content-Type": "application/json"}).status_code == 413
    assert teams.connector.calls == []
    assert teams.http.post("/api/messages", content=b"{not json",
                           headers={"Content-Type": "application/json"}).status_code == 400
    assert teams.http.post("/api/messages", json={"type": "message"}).status_code == 400


# --- production authentication ---------------------------------------------------------------------------


@pytest.fixture
def signer(monkeypatch: pytest.MonkeyPatch) -> Signer:
    signer = Signer()
    # The Bot Framework JWKS download is replaced by our key; everything else is the SDK's check.
    monkeypatch.setattr(JwtTokenValidator._jwk_client_manager, "get_signing_key", signer.get_signing_key)

    async def token(self: Any, resource_url: str, scopes: list[str], force_refresh: bool = False) -> str:
        return "stub-bot-token"

    monkeypatch.setattr(MsalAuth, "get_access_token", token)
    return signer


@pytest.fixture
def production(db: Database, clock: FixedClock, agreement: Agreement, signer: Signer) -> Iterator[Teams]:
    settings = make_settings(database_url=db.url, teams_app_id=APP_ID, teams_app_password="secret",
                             teams_tenant_id=TENANT)
    services = build_services(settings, clock=clock, agreement=agreement, db=db)
    with FakeBotConnector() as fake, LiveServer(create_app(services)) as server, \
            httpx.Client(base_url=server.url, timeout=10) as http:
        yield Teams(services, server, fake, http, [])


SMBA = "https://smba.trafficmanager.net/amer/"


def bot_removed() -> dict[str, Any]:
    """A turn that needs no outbound call: the bot leaves a personal chat we know."""
    body = personal_install(SMBA, "ana")
    body.pop("membersAdded")
    body["membersRemoved"] = [{"id": BOT["id"]}]
    return body


def seed_personal_ref(t: Teams, service_url: str = SMBA) -> None:
    with t.services.ctx.db.write() as session:
        session.add(ConversationRef(conversation_id=personal_chat("ana"), kind="personal", service_url=service_url,
                                    tenant_id=TENANT, user_aad_id=PEOPLE["ana"][1], updated_at=T0,
                                    reference={"bot": BOT, "user": user("ana")}))


def test_without_a_token_the_bot_refuses_but_health_stays_open(production: Teams) -> None:
    assert production.http.get("/healthz").status_code == 200
    assert production.send(bot_removed()).status_code == 401


@pytest.mark.parametrize("make", [
    lambda s: "garbage",
    lambda s: unsigned_token(serviceurl=SMBA),
    lambda s: s.token(aud="00000000-0000-0000-0000-000000000000"),
    lambda s: s.token(iss="https://evil.example"),
    lambda s: s.token(expires_in=-3600),
    lambda s: Signer(kid="other-key").token(),
    lambda s: Signer(kid=s.kid).token(),              # right key id, wrong key
], ids=["garbage", "unsigned", "wrong-audience", "wrong-issuer", "expired", "unknown-key", "forged"])
def test_bad_tokens_are_refused(production: Teams, signer: Signer, make: Any) -> None:
    seed_personal_ref(production)
    response = production.send(bot_removed(), Authorization=f"Bearer {make(signer)}")
    assert response.status_code == 401
    assert len(production.rows(ConversationRef)) == 1


def test_a_token_without_a_key_id_is_a_401_not_a_500(production: Teams, signer: Signer) -> None:
    import jwt

    token = jwt.encode({"aud": APP_ID, "iss": "https://api.botframework.com"}, signer.key, algorithm="RS256")
    assert production.send(bot_removed(), Authorization=f"Bearer {token}").status_code == 401


def test_a_correctly_signed_token_is_accepted(production: Teams, signer: Signer) -> None:
    seed_personal_ref(production)
    response = production.send(bot_removed(), Authorization=f"Bearer {signer.token()}")
    assert response.status_code == 202
    assert production.rows(ConversationRef) == []   # the turn ran: the chat was forgotten


def test_production_refuses_loopback_and_mismatched_service_urls(production: Teams, signer: Signer) -> None:
    loopback = personal_message(production.connector.service_url, "ana", "sla status")
    token = signer.token(service_url=production.connector.service_url)
    assert production.send(loopback, Authorization=f"Bearer {token}").status_code == 401
    # A token minted for one serviceUrl cannot be replayed with another.
    other = bot_removed()
    other["serviceUrl"] = "https://smba.trafficmanager.net/emea/"
    token = signer.token(service_url="https://elsewhere.botframework.com/")
    assert production.send(other, Authorization=f"Bearer {token}").status_code == 401
    assert production.connector.calls == []


async def test_production_outbound_calls_carry_the_bot_token(production: Teams,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    transport = production.services.transports["teams"]
    # Only so the token can be observed at the loopback fake; production refuses loopback (above).
    monkeypatch.setattr(transport.auth, "host_validator", LoopbackAllowingValidator(enabled=True))  # type: ignore[attr-defined]
    seed_personal_ref(production, production.connector.service_url)
    posted = await transport.send_message("dm", PEOPLE["ana"][1], {"text": "hello"}, outbox_id=1)
    assert posted is not None and posted.channel == personal_chat("ana")
    (call,) = production.connector.calls
    assert call.headers["authorization"] == "Bearer stub-bot-token"


def test_sla_status_is_refused_privately_to_people_outside_the_agreement(teams: Teams) -> None:
    teams.send(team_install(teams.url))
    # Asked in a channel: Teams has no ephemeral messages, so the refusal goes to a 1:1 chat.
    assert teams.send(channel_message(teams.url, "stranger", "sla status")).status_code == 202
    (created,) = teams.connector.created_conversations
    assert created["members"] == [{"id": PEOPLE["stranger"][0]}] and created["isGroup"] is False
    (refusal,) = texts(teams.connector, created["id"])
    assert refusal.startswith("Sorry, you are not in the SLA agreement") and "SLA status for" not in refusal
    thread = next(cid for cid in teams.connector.conversations if ";messageid=" in cid)
    assert all("SLA status for" not in text for text in texts(teams.connector, thread))
    # Asked in the personal chat: the answer is the same refusal, there.
    assert teams.send(personal_message(teams.url, "stranger", "sla status team smb")).status_code == 202
    assert texts(teams.connector, personal_chat("stranger"))[-1].startswith("Sorry, you are not in the SLA")


# --- the desk ------------------------------------------------------------------------------------


@pytest.fixture
def teams_desk(db: Database, clock: FixedClock, tmp_path: Path, connector: FakeBotConnector) -> Iterator[Teams]:
    """Teams and the desk in one app, its public address the live server's."""
    settings = make_settings(database_url=db.url, teams_allow_unauthenticated=True,
                             slabot_secret_key="teams-desk-secret-key-0123456789abcdef")
    services = build_services(settings, clock=clock, agreement=load_agreement(agreement_with_teams_ids(tmp_path)),
                              db=db)
    with LiveServer(create_app(services)) as server, httpx.Client(base_url=server.url, timeout=10) as http:
        services.ctx.desk_url = server.url
        yield Teams(services, server, connector, http, [])


async def test_sla_desk_in_teams_sends_a_sign_in_link_by_personal_message(teams_desk: Teams) -> None:
    t = teams_desk
    assert t.send(personal_message(t.url, "ana", "sla desk")).status_code == 202
    (answer,) = texts(t.connector, personal_chat("ana"))
    assert "sign-in link" in answer and "/desk/signin/" not in answer
    assert (await t.deliver()).sent == 1

    # The link arrives in ana's personal chat, as a link Teams opens (not made inert like
    # arbitrary text is), and only there.
    dm = t.connector.activities(personal_chat("ana"))[-1]
    found = re.search(r"\((http://127\.0\.0\.1:\d+/desk/signin/[A-Za-z0-9_-]+)\)", dm.text or "")
    assert found is not None, dm.text
    link = found.group(1)
    assert sum(link in (a.text or "") for cid in t.connector.conversations
               for a in t.connector.activities(cid)) == 1

    # A preview opening the link spends nothing; the confirm page names ana.
    async with httpx.AsyncClient(base_url=t.server.url) as browser:
        for _ in range(2):
            page = await browser.get(link)
            assert page.status_code == 200 and "Ana Ruiz" in page.text
        assert (await browser.get("/desk")).status_code == 401
        # Pressing "Sign in" (the POST) starts a session.
        signed_in = await browser.post(link, headers={"Origin": t.server.url})
        assert signed_in.status_code == 303 and "slabot_desk" in signed_in.headers["set-cookie"]
        desk = await browser.get("/desk")
        assert desk.status_code == 200 and "Ana Ruiz" in desk.text
        again = await browser.post(link, headers={"Origin": t.server.url})
    assert again.status_code == 410   # a link works once


async def test_sla_desk_in_teams_is_refused_to_people_outside_the_agreement(teams_desk: Teams) -> None:
    t = teams_desk
    assert t.send(personal_message(t.url, "stranger", "sla desk")).status_code == 202
    (answer,) = texts(t.connector, personal_chat("stranger"))
    assert answer.startswith("You are not in the SLA agreement")
    assert "/desk/signin/" not in answer
    assert (await t.deliver()).sent == 0
    assert t.rows(OutboxMessage) == [] and t.rows(DeskSignin) == []
