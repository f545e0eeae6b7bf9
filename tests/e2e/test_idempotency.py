"""Repeated handoffs over real HTTP: what a sender learns when it sends the same lead again.

- The same Idempotency-Key with the same body is the same request again: 200, `"duplicate": true`.
- The same Idempotency-Key with a different body is a 409 naming the key: the sender reused a key,
  and its data was not taken (before, it got a 200 with the first lead and never knew).
- The same `external_id` with a different body is the CRM sending the lead's record again: the
  lead's facts are updated (200, `"updated": [fields]`), its score, tier and owner stay.
- HubSpot: the event's receipt is stored with the lead it creates, so a retry after a failure
  creates the lead; events without an eventId are told apart by a hash of the event.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

import commands.intake
from bot.http.api import hubspot_signature
from bot.http.app import create_app
from bot.services import Services, build_services
from sla.agreement import Agreement
from sla.clock import FixedClock
from storage.db import Database
from storage.tables import InboundReceipt, Lead, LeadEvent, OutboxMessage
from tests.conftest import EXAMPLE_LEAD, INTAKE_TOKEN, LiveServer, make_settings

AUTH = {"Authorization": f"Bearer {INTAKE_TOKEN}"}
SECRET = "hubspot-secret-for-idempotency"


def lead(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(EXAMPLE_LEAD.read_text())
    body.update(changes)
    return body


@pytest.fixture
def app(any_db: Database, agreement: Agreement, clock: FixedClock) -> Iterator[tuple[LiveServer, Services]]:
    """On SQLite, and again on PostgreSQL (the receipt's ON CONFLICT and the savepoints differ)."""
    settings = make_settings(database_url=any_db.url, console=True, hubspot_client_secret=SECRET)
    services = build_services(settings, clock=clock, agreement=agreement, db=any_db)
    with LiveServer(create_app(services)) as server:
        yield server, services


def post(server: LiveServer, body: dict[str, Any], key: str | None = None) -> httpx.Response:
    headers = {**AUTH, **({"Idempotency-Key": key} if key else {})}
    return httpx.post(f"{server.url}/api/v1/leads", json=body, headers=headers)


def leads(services: Services) -> list[Lead]:
    with services.ctx.db.read() as session:
        return list(session.execute(select(Lead).order_by(col(Lead.id))).scalars())


def events(services: Services, lead_id: int) -> list[LeadEvent]:
    with services.ctx.db.read() as session:
        return list(session.execute(select(LeadEvent).where(col(LeadEvent.lead_id) == lead_id)
                                    .order_by(col(LeadEvent.id))).scalars())


def test_same_key_same_body_is_the_first_lead_again(app: tuple[LiveServer, Services]) -> None:
    server, services = app
    body = lead(external_id=None)
    first, again = post(server, body, "form-7f3a"), post(server, body, "form-7f3a")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == {**first.json(), "duplicate": True}
    assert len(leads(services)) == 1


def test_same_key_different_body_is_409_naming_the_key_and_changes_nothing(
        app: tuple[LiveServer, Services]) -> None:
    server, services = app
    first = post(server, lead(external_id=None), "form-7f3a")
    other = post(server, lead(external_id=None, email="someone.else@initech.example", company="Initech"),
                 "form-7f3a")
    assert first.status_code == 201
    assert other.status_code == 409, other.text
    detail = other.json()["detail"]
    assert "form-7f3a" in detail and "different body" in detail
    [stored] = leads(services)
    assert (stored.email, stored.company) == ("jane.doe@globex.example", "Globex")
    assert [e.type for e in events(services, first.json()["id"])] == ["received", "routed"]
    # The same key and the first body still answer as a duplicate: the refusal changed nothing.
    assert post(server, lead(external_id=None), "form-7f3a").status_code == 200


def test_same_key_on_a_lead_with_an_external_id_is_judged_by_the_key(app: tuple[LiveServer, Services]) -> None:
    server, services = app
    assert post(server, lead(), "req-1").status_code == 201
    assert post(server, lead(), "req-1").status_code == 200
    assert post(server, lead(title="CEO"), "req-1").status_code == 409
    assert leads(services)[0].title == "VP Operations"


def test_repeated_external_id_with_new_facts_updates_the_lead(app: tuple[LiveServer, Services]) -> None:
    server, services = app
    first = post(server, lead())
    assert first.status_code == 201
    lead_id = first.json()["id"]
    update = post(server, lead(title="COO", company="Globex Corp", page_visits=40,
                               received_at="2026-11-21T09:00:00Z"))
    assert update.status_code == 200, update.text
    body = update.json()
    # The answer says what changed; the lead keeps its score, tier, team, owner and deadline.
    assert body == {**first.json(), "duplicate": True, "updated": ["company", "page_visits", "title"]}
    [stored] = leads(services)
    assert (stored.title, stored.company, stored.payload["page_visits"]) == ("COO", "Globex Corp", 40)
    assert stored.payload["received_at"] == "2026-11-20T14:05:30Z"   # when it first came is history
    assert stored.version == 2
    history = events(services, lead_id)
    assert [e.type for e in history] == ["received", "routed", "updated"]
    assert history[-1].data == {"fields": ["company", "page_visits", "title"]} and history[-1].actor == "api"
    with services.ctx.db.read() as session:
        cards = session.execute(select(OutboxMessage).where(col(OutboxMessage.kind) == "card")
                                .order_by(col(OutboxMessage.id))).scalars().all()
    assert [c.payload["version"] for c in cards] == [1, 2]   # the card is rendered again with the new facts
    detail = httpx.get(f"{server.url}/api/v1/leads/{lead_id}", headers=AUTH).json()
    assert detail["company"] == "Globex Corp" and detail["lead"]["title"] == "COO"
    # Sending the updated record again is a plain duplicate: nothing more changes.
    again = post(server, lead(title="COO", company="Globex Corp", page_visits=40))
    assert again.status_code == 200 and "updated" not in again.json()
    assert len(events(services, lead_id)) == 3


def test_repeated_external_id_with_the_same_facts_is_a_plain_duplicate(app: tuple[LiveServer, Services]) -> None:
    server, services = app
    first = post(server, lead())
    again = post(server, lead(received_at="2026-11-22T10:00:00Z", unknown_crm_field="ignored"))
    assert again.status_code == 200 and again.json() == {**first.json(), "duplicate": True}
    assert leads(services)[0].version == 1


# --- HubSpot ------------------------------------------------------------------------------------


def hubspot_post(server: LiveServer, events: list[dict[str, Any]]) -> httpx.Response:
    body = json.dumps(events).encode()
    url = f"{server.url}/webhooks/hubspot"
    timestamp = str(int(time.time() * 1000))
    return httpx.post(url, content=body, headers={
        "Content-Type": "application/json", "X-HubSpot-Request-Timestamp": timestamp,
        "X-HubSpot-Signature-v3": hubspot_signature(SECRET, "POST", url, body, timestamp)})


def contact_created(object_id: int, event_id: int | None, attempt: int = 0) -> dict[str, Any]:
    event = {"subscriptionId": 7, "portalId": 62515, "occurredAt": 1764000000000, "attemptNumber": attempt,
             "subscriptionType": "contact.creation", "objectId": object_id, "changeFlag": "CREATED"}
    if event_id is not None:
        event["eventId"] = event_id
    return event


def test_hubspot_retry_after_a_failure_creates_the_lead(app: tuple[LiveServer, Services],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    server, services = app
    real = commands.intake.qualify  # type: ignore[attr-defined]
    failures = [RuntimeError("the database went away mid-handoff")]

    def qualify(agreement: Any, lead_in: Any) -> Any:
        if failures:
            raise failures.pop()
        return real(agreement, lead_in)

    monkeypatch.setattr(commands.intake, "qualify", qualify)
    first = hubspot_post(server, [contact_created(501, 9001)])
    assert first.status_code == 500
    with services.ctx.db.read() as session:
        assert session.execute(select(InboundReceipt)).scalars().all() == []   # rolled back with the lead
    retry = hubspot_post(server, [contact_created(501, 9001, attempt=1)])
    assert retry.status_code == 200 and retry.json() == {"accepted": 1, "events": 1}
    assert [x.external_id for x in leads(services)] == ["hubspot-contact-501"]
    again = hubspot_post(server, [contact_created(501, 9001, attempt=2)])
    assert again.json() == {"accepted": 0, "events": 1}
    assert len(leads(services)) == 1


def test_hubspot_events_without_an_event_id_are_told_apart(app: tuple[LiveServer, Services]) -> None:
    server, services = app
    first = hubspot_post(server, [contact_created(601, None), contact_created(602, None)])
    assert first.json() == {"accepted": 2, "events": 2}
    # HubSpot's retry differs only in attemptNumber: the same key, nothing new.
    retry = hubspot_post(server, [contact_created(601, None, attempt=1), contact_created(602, None, attempt=1)])
    assert retry.json() == {"accepted": 0, "events": 2}
    assert sorted(x.external_id or "" for x in leads(services)) == ["hubspot-contact-601", "hubspot-contact-602"]
    with services.ctx.db.read() as session:
        keys = [r.key for r in session.execute(select(InboundReceipt)).scalars()]
    assert len(keys) == 2 and all(k.startswith("sha256:") for k in keys)
