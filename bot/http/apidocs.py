"""What /docs and /openapi.json say about the HTTP API, and the docs pages' own files.

The intake handlers read their bodies by hand (401 before the body is read, 413 while it streams,
field errors in the API's own shape), so FastAPI cannot see their request bodies: `json_body()`
documents them, and `install()` adds those models to the schema's components. The response
models here describe what the handlers answer; the handlers build the bodies themselves.

Swagger UI and ReDoc are served from the fastapi-offline package's files under /docs/static, so
/docs works with no internet access and asks no CDN for anything.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.security import HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from storage.metrics import Status

STATIC_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"
STATIC_URL = "/docs/static"

DESCRIPTION = """\
Lead and outcome intake, lead lookup and the SLA numbers of slabot.

Intake, lookup and status need the bearer token the service was started with
(`SLABOT_INTAKE_TOKEN`): press **Authorize** and paste it. Bodies over 256 KiB are refused with
413 before they are read whole; a body that fails validation is refused with 422 and the field
errors, and nothing is stored.
"""

#: The bearer token of the intake routes, as OpenAPI and the Authorize button of /docs see it.
#: `bot.http.api.require_token` checks it; this scheme never refuses anything itself.
bearer = HTTPBearer(auto_error=False, scheme_name="IntakeToken",
                    description="The value of SLABOT_INTAKE_TOKEN (`Authorization: Bearer <token>`).")

#: Request models documented with `json_body()`, added to the schema's components.
_REQUEST_MODELS: dict[str, type[BaseModel]] = {}


def json_body(model: type[BaseModel], description: str, *, many: bool = False) -> dict[str, Any]:
    """`openapi_extra` for a route that reads a JSON body of `model` (a list of them with `many`)."""
    _REQUEST_MODELS[model.__name__] = model
    schema: dict[str, Any] = {"$ref": f"#/components/schemas/{model.__name__}"}
    if many:
        schema = {"type": "array", "items": schema}
    return {"requestBody": {"required": True, "description": description,
                            "content": {"application/json": {"schema": schema}}}}


# --- response bodies -----------------------------------------------------------------------

class LeadSummary(BaseModel):
    """A lead as intake answers it."""

    id: int
    status: str = Field(description="The lead's state: received, nurture, routed, claimed, working, connected, "
                                    "qualified, disqualified, recycled, won or lost.")
    workable: bool = Field(description="Whether the agreement makes it a lead for Sales (else nurture).")
    score: int
    tier: str | None = Field(description="The agreement's tier; null for a nurture lead.")
    value: float = Field(description="What the lead is worth, in the agreement's currency.")
    team: str | None = Field(description="The team it was routed to; null for a nurture lead.")
    rep: str | None = Field(description="The rep who owns it now.")
    first_touch_due: datetime | None = Field(description="When the first touch is due (UTC, business time "
                                                         "counted); null when it is not routed.")

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": 41, "status": "routed", "workable": True, "score": 50, "tier": "hot", "value": 2400.0,
        "team": "midmarket", "rep": "eve", "first_touch_due": "2026-11-24T15:15:00Z"}]})


class DuplicateLead(LeadSummary):
    """The lead an earlier handoff with the same external_id or Idempotency-Key created."""

    duplicate: Literal[True] = True


class Problem(BaseModel):
    """An error with one reason."""

    detail: str = Field(examples=["missing or wrong bearer token"])


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="Where: `body` and the field path, or `query` and the parameter.",
                                 examples=[["body", "email"]])
    msg: str = Field(examples=["not an e-mail address"])
    type: str = Field(examples=["value_error"])


class FieldErrors(BaseModel):
    """The body or the query was refused: one entry per problem; nothing was stored."""

    detail: list[FieldError]


class LeadEvent(BaseModel):
    id: int
    at: datetime
    actor: str
    type: str = Field(description="received, routed, claim, log_call, nudge, escalation, reassigned, ...")
    data: dict[str, Any]


class LeadDetail(LeadSummary):
    """A lead with its state, owner, due times, the body Marketing sent and its event history
    (other stored fields of the lead are included too)."""

    model_config = ConfigDict(extra="allow")
    state: str
    owner: str | None
    external_id: str | None
    sla_due: datetime | None = Field(description="When the current SLA step is due (UTC).")
    lead: dict[str, Any] = Field(description="The handoff body as it was received.")
    events: list[LeadEvent]


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ok", "unavailable"]
    database: str | None = Field(default=None, description="Why the service is not ready (only with 503).")


class HubSpotAccepted(BaseModel):
    accepted: int = Field(description="New leads handed off by this batch.")
    events: int = Field(description="Events in the batch.")
    outcomes: int | None = Field(default=None, description="Deal outcomes recorded (with HUBSPOT_ACCESS_TOKEN).")
    unknown_contacts: int | None = Field(default=None, description="Events about contacts that HubSpot no longer "
                                         "has or that are no lead here (with HUBSPOT_ACCESS_TOKEN).")


_ERRORS: dict[int, tuple[type[BaseModel], str]] = {
    400: (FieldErrors, "A signed batch that is malformed: nothing was stored (HubSpot does not retry a 400)."),
    401: (Problem, "No bearer token, or the wrong one; or intake is disabled because SLABOT_INTAKE_TOKEN "
                   "is not set."),
    404: (Problem, "Not found."),
    409: (Problem, "Refused because of what is already stored."),
    413: (Problem, "The body is over 256 KiB: refused before it is read whole."),
    422: (FieldErrors, "Invalid JSON or a field that fails validation: the field errors; nothing was stored."),
    503: (Problem, "A dependency did not answer in time: nothing was stored; send it again later."),
}


def errors(*codes: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """The `responses` entries of these error codes; `descriptions` (`e404="..."`) overrides one."""
    return {code: {"model": _ERRORS[code][0], "description": descriptions.get(f"e{code}", _ERRORS[code][1])}
            for code in codes}


#: The body of `GET /api/v1/status` (docs/status.md): the typed model storage.metrics produces.
STATUS_MODEL = Status
#: The whole answer for the example agreement's example lead, an hour after its hand-off (the same
#: JSON as docs/status.md's example; tests/test_docs.py checks both against the real computation).
STATUS_EXAMPLE: dict[str, Any] = json.loads(Path(__file__).with_name("status_example.json").read_text("utf-8"))


# --- the docs pages --------------------------------------------------------------------------

def install(app: FastAPI) -> None:
    """Serve /docs (Swagger UI) and /redoc from files in this process, and complete /openapi.json.
    The app must be made with `docs_url=None, redoc_url=None` (FastAPI's own pages use a CDN)."""
    app.description = DESCRIPTION
    app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="docs-static")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}", title=f"{app.title} API",
            swagger_js_url=f"{root}{STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_URL}/favicon.png",
            oauth2_redirect_url=None,
            # No online validator badge: it would send the schema to validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None})

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(openapi_url=f"{root}{openapi_url}", title=f"{app.title} API",
                              redoc_js_url=f"{root}{STATIC_URL}/redoc.standalone.js",
                              redoc_favicon_url=f"{root}{STATIC_URL}/favicon.png", with_google_fonts=False)

    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for name, model in _REQUEST_MODELS.items():
                body = model.model_json_schema(ref_template="#/components/schemas/{model}")
                for key, value in {**body.pop("$defs", {}), name: body}.items():
                    if components.setdefault(key, value) != value:
                        raise RuntimeError(f"two different OpenAPI schemas are named {key}")
            # FastAPI drops every null from the schema it generates, examples included: put the
            # status example back whole, so /docs shows `"speed_to_lead_p50": null` and the rest.
            status = schema.get("paths", {}).get("/api/v1/status", {}).get("get")
            if status is not None:
                status["responses"]["200"]["content"]["application/json"]["example"] = STATUS_EXAMPLE
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]
