"""Lead intake through real HTTP: the contract's status codes, bodies, idempotency and storage."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlmodel import select

from bot.http.app import create_app
from bot.services import Services, build_services
from storage.tables import Lead, LeadEvent, OutboxMessage
from tests.conftest import EXAMPLE_LEAD, INTAKE_TOKEN, LiveServer, make_settings

AUTH = {"Authorization": f"Bearer {INTAKE_TOKEN}"}


def example() -> dict[str, Any]:
    body: dict[str, Any] = json.loads(EXAMPLE_LEAD.read_text())
    return body


def lead(**changes: Any) -> dict[str, Any]:
    body = example()
    body.update(changes)
    return body


def count(services: Services, table: type) -> int:
    with services.ctx.db.read() as session:
        return len(session.execute(select(table)).scalars().all())


def test_new_workable_lead_is_routed_with_deadline(live: LiveServer, services: Services) -> None:
    response = httpx.post(f"{live.url}/api/v1/leads", json=example(), headers=AUTH)
    assert response.status_code == 201
    body = response.json()
    # Score 50 (+30 demo, +10 pricing, +10 visits) -> hot tier; 2400 employees -> midmarket; first rep eve.
    assert body == {"id": body["id"], "status": "routed", "workable": True, "score": 50, "tier": "hot",
                    "value": 2400.0, "team": "midmarket", "rep": "eve",
                    # T0 is Tue 10:00 New York; hot = 15 business minutes.
                    "first_touch_due": "2026-11-24T15:15:00Z"}
    with services.ctx.db.read() as session:
        stored = session.get(Lead, body["id"])
        assert stored is not None and stored.owner == "eve" and stored.is_open
        kinds = [e.type for e in session.execute(select(LeadEvent)).scalars()]
        assert kinds == ["received", "routed"]
        outbox = session.execute(select(OutboxMessage)).scalars().all()
        # The card is queued in the same transaction, for the console platform of the test settings.
        assert [(o.kind, o.target) for o in outbox] == []  # no chat platform configured in `services`


def test_card_is_queued_in_the_same_transaction(db: Any, agreement: Any, clock: Any) -> None:
    services = build_services(make_settings(database_url=db.url, console=True), clock=clock,
                              agreement=agreement, db=db)
    with LiveServer(create_app(services)) as server:
        response = httpx.post(f"{server.url}/api/v1/leads", json=example(), headers=AUTH)
    assert response.status_code == 201
    with services.ctx.db.read() as session:
        rows = session.execute(select(OutboxMessage)).scalars().all()
    assert [(r.kind, r.platform, r.target, r.lead_id) for r in rows] == [
        ("card", "console", "#midmarket", response.json()["id"])]


def test_duplicate_external_id_returns_200_and_stores_nothing_new(live: LiveServer, services: Services) -> None:
    first = httpx.post(f"{live.url}/api/v1/leads", json=example(), headers=AUTH)
    again = httpx.post(f"{live.url}/api/v1/leads", json=example(), headers=AUTH)
    assert first.status_code == 201 and again.status_code == 200
    assert again.json() == {**first.json(), "duplicate": True}
    assert count(services, Lead) == 1


def test_idempotency_key_dedupes_leads_without_external_id(live: LiveServer, services: Services) -> None:
    body = lead(external_id=None)
    headers = {**AUTH, "Idempotency-Key": "form-submit-7f3a"}
    first = httpx.post(f"{live.url}/api/v1/leads", json=body, headers=headers)
    again = httpx.post(f"{live.url}/api/v1/leads", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"] and again.json()["duplicate"] is True
    assert count(services, Lead) == 1


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic dGVzdA==", f"bearer{INTAKE_TOKEN}"])
def test_bad_or_missing_token_is_401(live: LiveServer, services: Services, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = httpx.post(f"{live.url}/api/v1/leads", json=example(), headers=headers)
    assert response.status_code == 401
    assert count(services, Lead) == 0


def test_intake_refuses_everything_until_a_token_is_set(db: Any, agreement: Any, clock: Any) -> None:
    services = build_services(make_settings(database_url=db.url, slabot_intake_token=None), clock=clock,
                              agreement=agreement, db=db)
    with LiveServer(create_app(services)) as server:
        response = httpx.post(f"{server.url}/api/v1/leads", json=example(), headers=AUTH)
    assert response.status_code == 401
    assert "SLABOT_INTAKE_TOKEN" in response.json()["detail"]


def test_body_over_256_kib_is_413(live: LiveServer, services: Services) -> None:
    body = lead(company="x" * 100, notes="y" * (257 * 1024))
    response = httpx.post(f"{live.url}/api/v1/leads", json=body, headers=AUTH)
    assert response.status_code == 413
    assert count(services, Lead) == 0


@pytest.mark.parametrize(("change", "field"), [
    ({"email": None, "external_id": None}, None),
    ({"email": "not-an-email"}, "email"),
    ({"employees": -5}, "employees"),
    ({"crm_url": "javascript:alert(1)"}, "crm_url"),
    ({"received_at": "2026-11-20T14:05:30"}, "received_at"),
    ({"activities": "demo"}, "activities"),
])
def test_invalid_lead_is_422_with_field_errors_and_nothing_stored(
        live: LiveServer, services: Services, change: dict[str, Any], field: str | None) -> None:
    response = httpx.post(f"{live.url}/api/v1/leads", json=lead(**change), headers=AUTH)
    assert response.status_code == 422
    errors = response.json()["detail"]
    if field:
        assert any(e["loc"][:2] == ["body", field] for e in errors), errors
    else:
        assert "email or external_id" in errors[0]["msg"]
    assert count(services, Lead) == 0 and count(services, OutboxMessage) == 0


def test_malformed_json_is_422(live: LiveServer) -> None:
    response = httpx.post(f"{live.url}/api/v1/leads", content=b"{not json", headers=AUTH)
    assert response.status_code == 422


def test_not_workable_lead_goes_to_nurture_and_is_never_posted(live: LiveServer, services: Services) -> None:
    body = lead(external_id="list-1", source="list_purchase")
    response = httpx.post(f"{live.url}/api/v1/leads", json=body, headers=AUTH)
    assert response.status_code == 201
    assert response.json() | {"id": 0} == {"id": 0, "status": "nurture", "workable": False, "score": 50,
                                           "tier": None, "value": 0.0, "team": None, "rep": None,
                                           "first_touch_due": None}
    assert count(services, OutboxMessage) == 0


def test_round_robin_spreads_leads_in_agreement_order(live: LiveServer) -> None:
    reps = []
    for i in range(4):
        body = lead(external_id=f"smb-{i}", employees=50)
        reps.append(httpx.post(f"{live.url}/api/v1/leads", json=body, headers=AUTH).json()["rep"])
    assert reps == ["ana", "ben", "cho", "ana"]


def test_lead_detail_has_state_owner_deadlines_and_history(live: LiveServer) -> None:
    created = httpx.post(f"{live.url}/api/v1/leads", json=example(), headers=AUTH).json()
    response = httpx.get(f"{live.url}/api/v1/leads/{created['id']}", headers=AUTH)
    assert response.status_code == 200
    detail = response.json()
    assert detail["state"] == "routed" and detail["owner"] == "eve"
    assert detail["first_touch_due"] == "2026-11-24T15:15:00Z"
    assert [e["type"] for e in detail["events"]] == ["received", "routed"]
    assert detail["lead"]["email"] == "jane.doe@globex.example"
    assert httpx.get(f"{live.url}/api/v1/leads/999", headers=AUTH).status_code == 404
    assert httpx.get(f"{live.url}/api/v1/leads/{created['id']}").status_code == 401


def test_outcomes_move_the_lead_and_unknown_leads_are_404(live: LiveServer) -> None:
    httpx.post(f"{live.url}/api/v1/leads", json=example(), headers=AUTH)
    outcome = {"external_id": "hubspot-contact-90210", "type": "opportunity_created", "amount": 24000,
               "at": "2026-11-27T16:00:00Z"}
    response = httpx.post(f"{live.url}/api/v1/outcomes", json=outcome, headers=AUTH)
    assert response.status_code == 200 and response.json()["status"] == "qualified"
    won = httpx.post(f"{live.url}/api/v1/outcomes", json={**outcome, "type": "won"}, headers=AUTH)
    assert won.json()["status"] == "won"
    missing = httpx.post(f"{live.url}/api/v1/outcomes", json={**outcome, "external_id": "nope"}, headers=AUTH)
    assert missing.status_code == 404
    bad = httpx.post(f"{live.url}/api/v1/outcomes", json={**outcome, "type": "maybe"}, headers=AUTH)
    assert bad.status_code == 422


def test_health_and_readiness(live: LiveServer) -> None:
    assert httpx.get(f"{live.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{live.url}/readyz").status_code == 200
    metrics = httpx.get(f"{live.url}/metrics")
    assert metrics.status_code == 200 and "slabot_http_requests_total" in metrics.text


def test_readiness_fails_before_migrations(tmp_path: Any, agreement: Any, clock: Any) -> None:
    from storage.db import Database

    db = Database(f"sqlite:///{tmp_path / 'empty.db'}")
    services = build_services(make_settings(database_url=db.url), clock=clock, agreement=agreement, db=db)
    with LiveServer(create_app(services)) as server:
        response = httpx.get(f"{server.url}/readyz")
    assert response.status_code == 503 and "migrations" in response.json()["database"]


def test_intake_contract_on_both_databases(any_db: Any, agreement: Any, clock: Any) -> None:
    """The same requests give the same answers on SQLite and PostgreSQL, including after a restart."""
    settings = make_settings(database_url=any_db.url)
    with LiveServer(create_app(build_services(settings, clock=clock, agreement=agreement, db=any_db))) as server:
        first = httpx.post(f"{server.url}/api/v1/leads", json=example(), headers=AUTH)
        smb = [httpx.post(f"{server.url}/api/v1/leads", json=lead(external_id=f"pg-{i}", employees=30),
                          headers=AUTH).json()["rep"] for i in range(2)]
        bad = httpx.post(f"{server.url}/api/v1/leads", json=lead(email="nope", external_id="x"), headers=AUTH)
    assert first.status_code == 201 and first.json()["first_touch_due"] == "2026-11-24T15:15:00Z"
    assert smb == ["ana", "ben"] and bad.status_code == 422
    from storage.db import Database

    restarted = build_services(settings, clock=clock, agreement=agreement, db=Database(any_db.url))
    with LiveServer(create_app(restarted)) as server:
        again = httpx.post(f"{server.url}/api/v1/leads", json=example(), headers=AUTH)
        third = httpx.post(f"{server.url}/api/v1/leads", json=lead(external_id="pg-2", employees=30), headers=AUTH)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert third.json()["rep"] == "cho"   # the round-robin cursor survived the restart
    assert count(restarted, Lead) == 4


def test_one_failing_handoff_fails_only_its_own_request(live: LiveServer, services: Services,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    import commands.intake

    real = commands.intake.qualify  # type: ignore[attr-defined]

    def qualify(agreement: Any, lead_in: Any) -> Any:
        if lead_in.external_id == "poison":
            raise RuntimeError("a bug hit by one lead")
        return real(agreement, lead_in)

    monkeypatch.setattr(commands.intake, "qualify", qualify)

    async def fire() -> dict[str, int]:
        async with httpx.AsyncClient(base_url=live.url, headers=AUTH) as http:
            ids = [f"ok-{i}" for i in range(10)] + ["poison"]
            responses = await asyncio.gather(*(http.post("/api/v1/leads", json=lead(external_id=i)) for i in ids))
        return {i: r.status_code for i, r in zip(ids, responses, strict=True)}

    codes = asyncio.run(fire())
    assert codes.pop("poison") == 500
    assert set(codes.values()) == {201}
    assert count(services, Lead) == 10
