"""The API documents itself: /openapi.json has the real bodies, status codes and bearer security,
and /docs loads only files the app serves itself (it works with no internet access)."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import jsonschema  # type: ignore[import-untyped]
import pytest
from fastapi import FastAPI

from bot.http.app import create_app
from bot.services import Services
from sla.lead import LeadIn
from tests.conftest import EXAMPLE_LEAD, INTAKE_TOKEN, LiveServer


@pytest.fixture
def schema(services: Services) -> dict[str, Any]:
    return create_app(services).openapi()


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        prefix = "#/components/schemas/"
        assert node["$ref"].startswith(prefix), node
        node = schema["components"]["schemas"][node["$ref"].removeprefix(prefix)]
    return node


def json_schema(schema: dict[str, Any], response_or_body: dict[str, Any]) -> dict[str, Any]:
    return resolve(schema, response_or_body["content"]["application/json"]["schema"])


def test_lead_intake_documents_its_body_answers_and_bearer_token(schema: dict[str, Any]) -> None:
    operation = schema["paths"]["/api/v1/leads"]["post"]

    body = json_schema(schema, operation["requestBody"])
    assert operation["requestBody"]["required"] is True
    assert set(body["properties"]) == set(LeadIn.model_fields)
    assert body["properties"]["employees"]["anyOf"][0]["minimum"] == 0
    activities = body["properties"]["activities"]
    assert resolve(schema, activities["items"])["required"] == ["type"]

    responses = operation["responses"]
    assert {"201", "200", "401", "413", "422"} <= set(responses)
    created = json_schema(schema, responses["201"])
    assert set(created["required"]) == {"id", "status", "workable", "score", "tier", "value", "team", "rep",
                                        "first_touch_due"}
    duplicate = json_schema(schema, responses["200"])
    assert duplicate["properties"]["duplicate"]["const"] is True
    for code in ("401", "413"):
        assert json_schema(schema, responses[code])["properties"]["detail"]["type"] == "string"
    field_errors = json_schema(schema, responses["422"])["properties"]["detail"]
    assert set(resolve(schema, field_errors["items"])["properties"]) == {"loc", "msg", "type"}

    (scheme_name,) = operation["security"][0]
    assert schema["components"]["securitySchemes"][scheme_name] == {
        "type": "http", "scheme": "bearer", "description": schema["components"]["securitySchemes"][
            scheme_name]["description"]}
    assert "SLABOT_INTAKE_TOKEN" in schema["components"]["securitySchemes"][scheme_name]["description"]


def test_every_intake_and_status_route_needs_the_token_and_health_does_not(schema: dict[str, Any]) -> None:
    paths = schema["paths"]
    for path, method in [("/api/v1/leads", "post"), ("/api/v1/outcomes", "post"),
                         ("/api/v1/leads/{lead_id}", "get"), ("/api/v1/status", "get")]:
        operation = paths[path][method]
        assert operation.get("security"), path
        assert "401" in operation["responses"], path
    for path in ("/healthz", "/readyz", "/metrics", "/webhooks/hubspot"):
        assert "security" not in paths[path][next(iter(paths[path]))], path


def test_other_routes_document_their_bodies(schema: dict[str, Any]) -> None:
    paths = schema["paths"]
    outcome = paths["/api/v1/outcomes"]["post"]
    outcome_body = json_schema(schema, outcome["requestBody"])
    assert outcome_body["properties"]["type"]["enum"] == ["opportunity_created", "won", "lost"]
    assert {"200", "401", "404", "413", "422"} <= set(outcome["responses"])
    detail = json_schema(schema, paths["/api/v1/leads/{lead_id}"]["get"]["responses"]["200"])
    assert {"state", "owner", "events", "lead"} <= set(detail["properties"])
    status = paths["/api/v1/status"]["get"]["responses"]["200"]
    assert "marketing" in status["content"]["application/json"]["example"] and status["description"]
    hubspot = paths["/webhooks/hubspot"]["post"]
    assert hubspot["requestBody"]["content"]["application/json"]["schema"]["type"] == "array"
    assert json_schema(schema, paths["/readyz"]["get"]["responses"]["503"])["properties"]["database"]
    assert json_schema(schema, paths["/healthz"]["get"]["responses"]["200"])["properties"]["status"]


def test_status_schema_documents_the_json_the_route_sends(schema: dict[str, Any], live: LiveServer) -> None:
    """/openapi.json describes GET /api/v1/status with the typed model's fields, and the JSON the
    route sends over HTTP validates against it, with no key the schema does not name."""
    auth = {"Authorization": f"Bearer {INTAKE_TOKEN}"}
    status = json_schema(schema, schema["paths"]["/api/v1/status"]["get"]["responses"]["200"])
    marketing = resolve(schema, status["properties"]["marketing"])
    sales = resolve(schema, status["properties"]["sales"])
    assert {"period", "marketing", "sales", "closed_loop", "capacity", "experiments", "as_of",
            "scope"} <= set(status["required"])
    assert {"workable", "goal", "pace", "projected", "value", "value_goal", "nurture", "mix",
            "per_rep"} <= set(marketing["required"])
    assert marketing["properties"]["workable"]["type"] == "integer"
    assert {"cohort", "worked_pct", "within_sla_pct", "speed_to_lead_p50", "speed_to_lead_p90",
            "attempts_per_lead", "connect_rate", "opportunity_rate", "pipeline_value", "open_breaches",
            "per_rep"} <= set(sales["required"])
    assert status["additionalProperties"] is False and marketing["additionalProperties"] is False

    # One routed lead, so the per-rep entries, the mix and a closed-loop segment are not empty.
    assert httpx.post(f"{live.url}/api/v1/leads", json=json.loads(EXAMPLE_LEAD.read_text()),
                      headers=auth).status_code == 201
    response = httpx.get(f"{live.url}/api/v1/status", headers=auth)
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    body = response.json()
    jsonschema.validate(body, {**status, "components": schema["components"]},
                        cls=jsonschema.Draft202012Validator)
    assert body["marketing"]["workable"] == 1 and body["closed_loop"]["segments"]
    assert set(body) == set(status["properties"])
    assert set(body["marketing"]) == set(marketing["properties"])
    assert set(body["sales"]) == set(sales["properties"])


def test_every_reference_in_the_schema_resolves(schema: dict[str, Any]) -> None:
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    assert refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.removeprefix("#/components/schemas/") in schema["components"]["schemas"], ref


def page_assets(html: str) -> list[str]:
    """Every URL the page loads: src=, href=, and the OpenAPI document (Swagger UI's `url:`,
    ReDoc's spec-url=)."""
    return re.findall(r'(?:src|href|spec-url)="([^"]+)"', html) + re.findall(r"\burl: '([^']+)'", html)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_what_the_app_serves(live: LiveServer, page: str) -> None:
    response = httpx.get(f"{live.url}{page}")
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]
    assert not re.search(r"https?://", response.text), "the page names an outside URL"
    assets = page_assets(response.text)
    assert any(a.endswith(".js") for a in assets) and any("openapi.json" in a for a in assets)
    for asset in assets:
        url = urljoin(f"{live.url}{page}", asset)
        assert urlsplit(url).netloc == f"127.0.0.1:{live.port}", asset
        loaded = httpx.get(url)
        assert loaded.status_code == 200, asset
        assert loaded.content, asset
    if page == "/docs":
        assert any(a.endswith("/swagger-ui-bundle.js") for a in assets)
        assert any(a.endswith("/swagger-ui.css") for a in assets)


def test_docs_turn_off_the_online_validator(live: LiveServer) -> None:
    """Swagger UI would otherwise send the schema to validator.swagger.io for its badge."""
    page = httpx.get(f"{live.url}/docs").text
    assert '"validatorUrl": null' in page


def test_served_swagger_ui_reads_openapi_3_1(live: LiveServer) -> None:
    """FastAPI writes OpenAPI 3.1, which Swagger UI renders only from version 5 on (4.x shows
    "Unable to render this definition")."""
    document = httpx.get(f"{live.url}/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    bundle = httpx.get(f"{live.url}/docs/static/swagger-ui-bundle.js").text
    version = re.search(r'PACKAGE_VERSION:"(\d+)\.(\d+)\.(\d+)"', bundle)
    assert version is not None and int(version.group(1)) >= 5, "Swagger UI older than 5"


def test_no_fastapi_default_docs_route_is_left(services: Services) -> None:
    app: FastAPI = create_app(services)
    docs_routes = [getattr(r, "path", "") for r in app.routes if getattr(r, "path", "") in ("/docs", "/redoc")]
    assert sorted(docs_routes) == ["/docs", "/redoc"]   # ours, once each
