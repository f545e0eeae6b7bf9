"""POST /webhooks/hubspot: v3 signatures (official vectors), freshness, retries, mapping to handoffs."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from sqlmodel import select

from bot.http.api import hubspot_signature
from bot.http.app import create_app
from bot.services import Services, build_services
from storage.db import Database
from storage.tables import Lead
from tests.conftest import FIXTURES, LiveServer, make_settings

HUBSPOT = FIXTURES / "webhooks" / "hubspot"
SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"


def vectors() -> list[dict[str, Any]]:
    data = json.loads((HUBSPOT / "signature_vectors.json").read_text())
    return [v for v in data["vectors"] if v["version"] == "v3"]


@pytest.mark.parametrize("vector", vectors(), ids=lambda v: v["http_uri"])
def test_signature_matches_the_reference_vectors(vector: dict[str, Any]) -> None:
    signature = hubspot_signature(vector["client_secret"], vector["http_method"], vector["http_uri"],
                                  vector["request_body"].encode(), vector["x_hubspot_request_timestamp"])
    assert signature == vector["x_hubspot_signature_v3"]


@pytest.fixture
def hub(db: Database, agreement: Any, clock: Any) -> Any:
    services = build_services(make_settings(database_url=db.url, hubspot_client_secret=SECRET), clock=clock,
                              agreement=agreement, db=db)
    with LiveServer(create_app(services)) as server:
        yield server, services


def post(server: LiveServer, body: bytes, *, timestamp: int | None = None, secret: str = SECRET,
         tamper: bool = False) -> httpx.Response:
    ts = str(timestamp if timestamp is not None else int(time.time() * 1000))
    url = f"{server.url}/webhooks/hubspot"
    signature = hubspot_signature(secret, "POST", url, body, ts)
    sent = body + b" " if tamper else body
    return httpx.post(url, content=sent, headers={"X-HubSpot-Signature-v3": signature,
                                                   "X-HubSpot-Request-Timestamp": ts,
                                                   "Content-Type": "application/json"})


def leads(services: Services) -> list[Lead]:
    with services.ctx.db.read() as session:
        return list(session.execute(select(Lead)).scalars())


def test_signed_contact_events_become_handoffs_once(hub: Any) -> None:
    server, services = hub
    body = (HUBSPOT / "contact_propertyChange_batch.composed.json").read_bytes()
    first = post(server, body)
    assert first.status_code == 200, first.text
    events = json.loads(body)
    handoffs = [e for e in events if e["subscriptionType"] == "contact.creation" or (
        e.get("propertyName") == "lifecyclestage"
        and e.get("propertyValue") in ("marketingqualifiedlead", "salesqualifiedlead"))]
    assert first.json() == {"accepted": len(handoffs), "events": len(events)}
    assert sorted(lead.external_id or "" for lead in leads(services)) == sorted(
        f"hubspot-contact-{e['objectId']}" for e in handoffs)
    retry = post(server, body)   # HubSpot retries: the same eventIds change nothing
    assert retry.status_code == 200 and retry.json()["accepted"] == 0
    assert len(leads(services)) == len(handoffs)


@pytest.mark.parametrize("case", ["tampered", "stale", "future", "wrong_secret", "missing"])
def test_bad_requests_are_401_and_store_nothing(hub: Any, case: str) -> None:
    server, services = hub
    body = (HUBSPOT / "contact_creation_batch.docs_v1_example.json").read_bytes()
    now = int(time.time() * 1000)
    if case == "missing":
        response = httpx.post(f"{server.url}/webhooks/hubspot", content=body)
    else:
        response = post(server, body, tamper=case == "tampered", secret="other" if case == "wrong_secret" else SECRET,
                        timestamp={"stale": now - 6 * 60_000, "future": now + 6 * 60_000}.get(case))
    assert response.status_code == 401
    assert leads(services) == []


def test_disabled_without_a_secret(live: LiveServer) -> None:
    assert httpx.post(f"{live.url}/webhooks/hubspot", content=b"[]").status_code == 404

