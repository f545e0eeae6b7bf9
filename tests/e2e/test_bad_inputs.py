"""Every bad input is a 4xx, never a 500, and stores nothing: the table of inputs tried.

Each row is one request sent over real HTTP to the app under uvicorn on 127.0.0.1, with valid
credentials (bearer token, Slack v0 signature, HubSpot v3 signature) so that the input itself is
what is judged. After each, no table holds a row: no lead, event, receipt or queued message.

Teams answers a card click (an `invoke`) with HTTP 200 whatever happened, and the invoke's own
status in the body's `statusCode`: for those rows the status in the table is that one.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import SQLModel

from bot.http.api import hubspot_signature
from bot.http.app import create_app
from bot.services import Services, build_services
from sla.agreement import Agreement
from sla.clock import FixedClock
from storage.db import Database
from tests.conftest import EXAMPLE_LEAD, INTAKE_TOKEN, LiveServer, make_settings
from tests.e2e import slack_helpers as sh
from tests.e2e.teams_helpers import personal_message
from tests.fakes.slack_api import FakeSlack

HUBSPOT_SECRET = "hubspot-client-secret-for-bad-inputs"
AUTH = {"Authorization": f"Bearer {INTAKE_TOKEN}"}


def lead(**changes: Any) -> bytes:
    body = json.loads(EXAMPLE_LEAD.read_text())
    body.update(changes)
    return json.dumps(body).encode()


def nested(depth: int, leaf: str = "1") -> str:
    return "[" * depth + leaf + "]" * depth


def hubspot_event(**changes: Any) -> dict[str, Any]:
    event = {"eventId": 100, "subscriptionId": 7, "portalId": 62515, "appId": 54321,
             "occurredAt": int(time.time() * 1000), "subscriptionType": "contact.creation",
             "attemptNumber": 0, "objectId": 123, "changeFlag": "CREATED", "changeSource": "CRM"}
    event.update(changes)
    return event


def hubspot(events: Any) -> bytes:
    return json.dumps(events).encode()


def slack_form(payload: str) -> bytes:
    return urlencode({"payload": payload}).encode()


@dataclass(frozen=True)
class Case:
    """One row of the table: what is sent, where, and the status it must get."""

    name: str
    method: str
    path: str
    body: bytes | None
    expected: int
    kind: str = "api"            # api: bearer token; hubspot: v3 signature; slack: v0 signature; teams
    content_type: str = "application/json"


def teams(**changes: Any) -> bytes:
    """A Bot Framework activity (a personal message) with some fields changed; None drops one."""
    body = personal_message("http://127.0.0.1:9", "ana", "sla status")
    body.update(changes)
    return json.dumps({k: v for k, v in body.items() if v is not None}).encode()


def click(value: Any) -> bytes:
    return teams(type="invoke", name="adaptiveCard/action", text=None, value=value)


def execute(data: Any) -> dict[str, Any]:
    return {"action": {"type": "Action.Execute", "verb": "lead.claim", "data": data}}


SLASH_WITHOUT_USER = urlencode({"command": "/sla", "text": "status", "team_id": sh.TEAM_ID}).encode()

CASES = [
    # --- POST /api/v1/leads: 422 with the field named ------------------------------------------
    Case("lead: JSON nested 1,000 deep", "POST", "/api/v1/leads",
         f'{{"email": "a@b.example", "x": {nested(1000)}}}'.encode(), 422),
    Case("lead: JSON nested 100 deep in bant", "POST", "/api/v1/leads",
         lead(bant={"need": json.loads(nested(100))}), 422),
    Case("lead: page_visits 10**40", "POST", "/api/v1/leads", lead(page_visits=10**40), 422),
    Case("lead: employees 10**40", "POST", "/api/v1/leads", lead(employees=10**40), 422),
    Case("lead: NUL in first_name", "POST", "/api/v1/leads", lead(first_name="Ja\x00ne"), 422),
    Case("lead: escape sequence in company", "POST", "/api/v1/leads", lead(company="Globex\x1b[2J"), 422),
    Case("lead: U+202E in company", "POST", "/api/v1/leads", lead(company="Globex\u202egpj.exe"), 422),
    Case("lead: U+2066 isolate in last_name", "POST", "/api/v1/leads", lead(last_name="Doe\u2066"), 422),
    Case("lead: newline in title", "POST", "/api/v1/leads", lead(title="VP\nOperations"), 422),
    Case("lead: lone surrogate in first_name", "POST", "/api/v1/leads",
         b'{"email": "a@b.example", "first_name": "\\ud800"}', 422),
    Case("lead: NUL in a BANT fact", "POST", "/api/v1/leads", lead(bant={"need": "a\x00b"}), 422),
    Case("lead: budget NaN", "POST", "/api/v1/leads",
         b'{"email": "a@b.example", "bant": {"budget": NaN}}', 422),
    Case("lead: budget 1e400 (infinity)", "POST", "/api/v1/leads",
         b'{"email": "a@b.example", "bant": {"budget": 1e400}}', 422),
    Case("lead: budget an object", "POST", "/api/v1/leads", lead(bant={"budget": {"amount": 1}}), 422),
    Case("lead: received_at year 1 (+01:00)", "POST", "/api/v1/leads",
         lead(received_at="0001-01-01T00:00:00+01:00"), 422),
    Case("lead: received_at 9999-12-31 (-01:00)", "POST", "/api/v1/leads",
         lead(received_at="9999-12-31T23:59:59-01:00"), 422),
    Case("lead: activity at year 1", "POST", "/api/v1/leads",
         lead(activities=[{"type": "demo_requested", "at": "0001-01-01T00:00:00Z"}]), 422),
    Case("lead: body a JSON list", "POST", "/api/v1/leads", b"[]", 422),
    Case("lead: body not UTF-8", "POST", "/api/v1/leads", b'{"email": "\xff\xfe"}', 422),
    # --- GET /api/v1/leads/{id} and /api/v1/status ----------------------------------------------
    Case("lead id 99999999999999999999999", "GET", "/api/v1/leads/99999999999999999999999", None, 404),
    Case("lead id 2**63", "GET", f"/api/v1/leads/{2**63}", None, 404),
    Case("lead id -1", "GET", "/api/v1/leads/-1", None, 404),
    Case("status as_of 9999-12-31T23:59:59Z", "GET", "/api/v1/status?as_of=9999-12-31T23:59:59Z", None, 422),
    Case("status as_of 0001-01-01T00:00:00Z", "GET", "/api/v1/status?as_of=0001-01-01T00:00:00Z", None, 422),
    Case("status scope with NUL", "GET", "/api/v1/status?scope=team:%00", None, 422),
    # --- POST /api/v1/outcomes ------------------------------------------------------------------
    Case("outcome: NUL in external_id", "POST", "/api/v1/outcomes",
         json.dumps({"external_id": "a\x00b", "type": "won"}).encode(), 422),
    Case("outcome: amount 1e400 (infinity)", "POST", "/api/v1/outcomes",
         b'{"external_id": "x", "type": "won", "amount": 1e400}', 422),
    Case("outcome: at year 1", "POST", "/api/v1/outcomes",
         json.dumps({"external_id": "x", "type": "won", "at": "0001-01-01T00:00:00+01:00"}).encode(), 422),
    Case("outcome: JSON nested 1,000 deep", "POST", "/api/v1/outcomes", nested(1000).encode(), 422),
    # --- POST /webhooks/hubspot (signed): 400, which HubSpot does not retry ---------------------
    Case("hubspot: JSON nested 5,000 deep", "POST", "/webhooks/hubspot", nested(5000).encode(), 400, "hubspot"),
    Case("hubspot: not JSON", "POST", "/webhooks/hubspot", b"[{", 400, "hubspot"),
    Case("hubspot: an object, not a list", "POST", "/webhooks/hubspot", hubspot(hubspot_event()), 400, "hubspot"),
    Case("hubspot: an event that is a number", "POST", "/webhooks/hubspot", hubspot([1]), 400, "hubspot"),
    Case("hubspot: occurredAt \"yesterday\"", "POST", "/webhooks/hubspot",
         hubspot([hubspot_event(occurredAt="yesterday")]), 400, "hubspot"),
    Case("hubspot: occurredAt 10**20", "POST", "/webhooks/hubspot",
         hubspot([hubspot_event(occurredAt=10**20)]), 400, "hubspot"),
    Case("hubspot: objectId an object", "POST", "/webhooks/hubspot",
         hubspot([hubspot_event(objectId={"id": 1})]), 400, "hubspot"),
    Case("hubspot: objectId 10**40", "POST", "/webhooks/hubspot",
         hubspot([hubspot_event(objectId=10**40)]), 400, "hubspot"),
    Case("hubspot: no subscriptionType", "POST", "/webhooks/hubspot",
         hubspot([{"eventId": 1, "objectId": 5}]), 400, "hubspot"),
    Case("hubspot: eventId a list", "POST", "/webhooks/hubspot",
         hubspot([hubspot_event(eventId=[1])]), 400, "hubspot"),
    Case("hubspot: one good event, one malformed", "POST", "/webhooks/hubspot",
         hubspot([hubspot_event(), hubspot_event(eventId=101, objectId="x\x00")]), 400, "hubspot"),
    # --- POST /slack/events (signed): 400 -------------------------------------------------------
    Case("slack: payload not JSON", "POST", "/slack/events", slack_form("{not json"), 400, "slack", sh.FORM),
    Case("slack: payload a JSON list", "POST", "/slack/events", slack_form("[]"), 400, "slack", sh.FORM),
    Case("slack: payload without a type", "POST", "/slack/events", slack_form("{}"), 400, "slack", sh.FORM),
    Case("slack: block_actions without user or actions", "POST", "/slack/events",
         slack_form(json.dumps({"type": "block_actions", "team": {"id": sh.TEAM_ID}})), 400, "slack", sh.FORM),
    Case("slack: block_actions, actions not a list", "POST", "/slack/events",
         slack_form(json.dumps({"type": "block_actions", "team": {"id": sh.TEAM_ID},
                                "user": {"id": "U0EVE00001"}, "actions": "claim"})), 400, "slack", sh.FORM),
    Case("slack: view_submission without a view", "POST", "/slack/events",
         slack_form(json.dumps({"type": "view_submission", "team": {"id": sh.TEAM_ID},
                                "user": {"id": "U0EVE00001"}})), 400, "slack", sh.FORM),
    Case("slack: payload nested 5,000 deep", "POST", "/slack/events", slack_form(nested(5000)), 400, "slack",
         sh.FORM),
    Case("slack: JSON body not JSON", "POST", "/slack/events", b"{not json", 400, "slack"),
    Case("slack: JSON body a list", "POST", "/slack/events", b"[]", 400, "slack"),
    Case("slack: event_callback without an event", "POST", "/slack/events",
         json.dumps({"type": "event_callback", "team_id": sh.TEAM_ID, "event_id": "Ev1"}).encode(), 400, "slack"),
    Case("slack: /sla without user_id", "POST", "/slack/events", SLASH_WITHOUT_USER, 400, "slack", sh.FORM),
    Case("slack: form body not UTF-8", "POST", "/slack/events", b"payload=%FF%FE", 400, "slack", sh.FORM),
    # --- POST /api/messages (Teams, anonymous test mode): 400 -----------------------------------
    Case("teams: not JSON", "POST", "/api/messages", b"{not json", 400, "teams"),
    Case("teams: JSON nested 5,000 deep", "POST", "/api/messages", nested(5000).encode(), 400, "teams"),
    Case("teams: a JSON list", "POST", "/api/messages", b"[]", 400, "teams"),
    Case("teams: activity without a type", "POST", "/api/messages", teams(type=None), 400, "teams"),
    Case("teams: message without a conversation", "POST", "/api/messages", teams(conversation=None), 400,
         "teams"),
    Case("teams: from a string", "POST", "/api/messages", teams(**{"from": "ana"}), 400, "teams"),
    Case("teams: text a number", "POST", "/api/messages", teams(text=5), 400, "teams"),
    Case("teams: card click without a value", "POST", "/api/messages", click(None), 400, "teams"),
    Case("teams: card click value a string", "POST", "/api/messages", click("claim"), 400, "teams"),
    Case("teams: card click data a list", "POST", "/api/messages", click(execute([1])), 400, "teams"),
    Case("teams: card click lead 10**30", "POST", "/api/messages",
         click(execute({"a": "claim", "lead": 10**30, "v": 1})), 400, "teams"),
    Case("teams: card click lead \"x\"", "POST", "/api/messages",
         click(execute({"a": "claim", "lead": "x", "v": 1})), 400, "teams"),
]


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        yield server


@pytest.fixture
def app(db: Database, agreement: Agreement, clock: FixedClock, fake: FakeSlack) -> Iterator[tuple[LiveServer,
                                                                                                    Services]]:
    settings = make_settings(database_url=db.url, hubspot_client_secret=HUBSPOT_SECRET,
                             slack_bot_token=sh.BOT_TOKEN, slack_signing_secret=sh.SIGNING_SECRET,
                             slack_api_url=fake.base_url, teams_allow_unauthenticated=True)
    services = build_services(settings, clock=clock, agreement=agreement, db=db)
    with LiveServer(create_app(services)) as server:
        yield server, services


def send(server: LiveServer, case: Case) -> httpx.Response:
    url = f"{server.url}{case.path}"
    headers: dict[str, str] = {"Content-Type": case.content_type}
    body = case.body or b""
    if case.kind == "api":
        headers.update(AUTH)
    elif case.kind == "hubspot":
        timestamp = str(int(time.time() * 1000))
        headers.update({"X-HubSpot-Request-Timestamp": timestamp,
                        "X-HubSpot-Signature-v3": hubspot_signature(HUBSPOT_SECRET, case.method, url, body,
                                                                    timestamp)})
    elif case.kind == "slack":
        headers = sh.signed_headers(body, content_type=case.content_type)
    return httpx.request(case.method, url, content=case.body, headers=headers, timeout=30)


def stored_rows(db: Database) -> dict[str, int]:
    """Rows in every table of the schema (the Alembic version table aside)."""
    with db.engine.connect() as connection:
        return {name: connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                for name, table in SQLModel.metadata.tables.items()}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bad_input_is_refused_with_a_4xx_and_nothing_stored(app: tuple[LiveServer, Services], db: Database,
                                                              case: Case) -> None:
    server, _ = app
    response = send(server, case)
    status = response.status_code
    if case.kind == "teams" and status == 200:
        status = response.json()["statusCode"]   # an invoke's own status
    assert status == case.expected, response.text[:500]
    assert not any(stored_rows(db).values()), stored_rows(db)


def test_the_table_covers_every_route_that_takes_input() -> None:
    paths = {c.path.split("?")[0].rsplit("/", 1)[0] if c.path.startswith("/api/v1/leads/") else
             c.path.split("?")[0] for c in CASES}
    assert paths == {"/api/v1/leads", "/api/v1/status", "/api/v1/outcomes", "/webhooks/hubspot",
                     "/slack/events", "/api/messages"}


def test_a_malformed_hubspot_batch_is_logged_by_field_without_its_values(
        app: tuple[LiveServer, Services], caplog: pytest.LogCaptureFixture) -> None:
    server, _ = app
    case = Case("", "POST", "/webhooks/hubspot", hubspot([hubspot_event(), hubspot_event(
        eventId=101, objectId="wanda.privacy@umbrella.example", occurredAt="yesterday")]), 400, "hubspot")
    with caplog.at_level(logging.WARNING, logger="slabot.api"):
        response = send(server, case)
    assert response.status_code == 400
    assert {tuple(e["loc"]) for e in response.json()["detail"]} == {("body", 1, "objectId"),
                                                                   ("body", 1, "occurredAt")}
    [record] = [r for r in caplog.records if r.name == "slabot.api"]
    assert "1.objectId" in record.getMessage() and "1.occurredAt" in record.getMessage()
    assert "wanda" not in record.getMessage() and "yesterday" not in record.getMessage()
