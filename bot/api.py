"""The HTTP API: lead and outcome intake, lead lookup, status, health, and the HubSpot webhook."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from bot.services import Services
from commands.leads import Handoff, handoff, lead_summary, record_outcome
from sla.lead import LeadIn
from storage.tables import InboundReceipt, Lead, LeadEvent

router = APIRouter()


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


ServicesDep = Annotated[Services, Depends(services)]


def require_token(request: Request, svc: ServicesDep) -> None:
    expected = svc.settings.slabot_intake_token
    if expected is None:
        raise HTTPException(401, "intake is disabled until SLABOT_INTAKE_TOKEN is set",
                            headers={"WWW-Authenticate": "Bearer"})
    given = request.headers.get("authorization", "")
    scheme, _, token = given.partition(" ")
    # Constant-time compare, so response timing says nothing about how much of a guess was right.
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), expected.get_secret_value().encode()):
        raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})


Authorized = Depends(require_token)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed `limit` (never buffered whole)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"body over {limit // 1024} KiB")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"body over {limit // 1024} KiB")
        chunks.append(chunk)
    return b"".join(chunks)


def _json_body(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HTTPException(422, [{"loc": ["body"], "msg": f"invalid JSON: {exc}", "type": "json_invalid"}]) \
            from None


def _field_errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [{"loc": ["body", *err["loc"]], "msg": err["msg"].removeprefix("Value error, "), "type": err["type"]}
            for err in exc.errors(include_url=False, include_context=False, include_input=False)]


@router.post("/api/v1/leads", dependencies=[Authorized])
async def create_lead(request: Request, svc: ServicesDep,
                      idempotency_key: Annotated[str | None, Header(max_length=255)] = None) -> JSONResponse:
    raw = await read_body(request, svc.settings.max_body_bytes)
    try:
        lead_in = LeadIn.model_validate(_json_body(raw))
    except ValidationError as exc:
        raise HTTPException(422, _field_errors(exc)) from None
    result = await svc.intake.submit(Handoff(lead_in, idempotency_key))
    if not result.duplicate:
        svc.wake_worker()
    return JSONResponse(result.body(), status_code=200 if result.duplicate else 201)


class OutcomeIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    external_id: str = Field(min_length=1, max_length=200)
    type: str
    amount: float | None = Field(default=None, ge=0)
    at: datetime | None = None
    crm_url: str | None = Field(default=None, max_length=500)

    @field_validator("type")
    @classmethod
    def _type(cls, value: str) -> str:
        if value not in ("opportunity_created", "won", "lost"):
            raise ValueError("must be one of opportunity_created, won, lost")
        return value

    @field_validator("at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must include a time zone")
        return value.astimezone(UTC) if value else None


@router.post("/api/v1/outcomes", dependencies=[Authorized])
async def create_outcome(request: Request, svc: ServicesDep) -> JSONResponse:
    raw = await read_body(request, svc.settings.max_body_bytes)
    try:
        outcome = OutcomeIn.model_validate(_json_body(raw))
    except ValidationError as exc:
        raise HTTPException(422, _field_errors(exc)) from None
    from sla.lifecycle import Refused

    try:
        lead = await run_in_threadpool(record_outcome, svc.ctx, external_id=outcome.external_id,
                                       type=outcome.type, amount=outcome.amount, at=outcome.at,
                                       crm_url=outcome.crm_url)
    except Refused as refused:
        raise HTTPException(409, refused.reason) from None
    if lead is None:
        raise HTTPException(404, f"no lead with external_id {outcome.external_id!r}")
    svc.wake_worker()
    return JSONResponse(lead_summary(lead))


def _lead_detail(svc: Services, lead_id: int) -> dict[str, Any] | None:
    with svc.ctx.db.read() as session:
        lead = session.get(Lead, lead_id)
        if lead is None:
            return None
        events = session.execute(select(LeadEvent).where(col(LeadEvent.lead_id) == lead_id)
                                 .order_by(col(LeadEvent.id))).scalars().all()
        body = lead.model_dump(mode="json", exclude={"payload", "idempotency_key"})
        body.update(lead_summary(lead))
        body["lead"] = lead.payload
        body["events"] = [e.model_dump(mode="json", exclude={"lead_id"}) for e in events]
        return body


@router.get("/api/v1/leads/{lead_id}", dependencies=[Authorized])
def get_lead(lead_id: int, svc: ServicesDep) -> dict[str, Any]:
    body = _lead_detail(svc, lead_id)
    if body is None:
        raise HTTPException(404, f"no lead {lead_id}")
    return body


@router.get("/api/v1/status", dependencies=[Authorized])
def get_status(svc: ServicesDep, scope: str = "all", as_of: datetime | None = None) -> dict[str, Any]:
    if as_of is not None and as_of.tzinfo is None:
        raise HTTPException(422, [{"loc": ["query", "as_of"], "msg": "must include a time zone",
                                   "type": "value_error"}])
    try:
        return svc.status(scope=scope, as_of=as_of)
    except ValueError as exc:
        raise HTTPException(422, [{"loc": ["query", "scope"], "msg": str(exc), "type": "value_error"}]) \
            from None


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(svc: ServicesDep) -> JSONResponse:
    try:
        current = svc.ctx.db.is_current()
    except Exception as exc:  # noqa: BLE001 - any database failure means "not ready"
        return JSONResponse({"status": "unavailable", "database": type(exc).__name__}, status_code=503)
    if not current:
        return JSONResponse({"status": "unavailable", "database": "migrations pending: run slabot db upgrade"},
                            status_code=503)
    return JSONResponse({"status": "ok"})


@router.get("/metrics")
def metrics(svc: ServicesDep) -> Response:
    body, content_type = svc.telemetry.render()
    return Response(body, media_type=content_type)


# --- HubSpot -------------------------------------------------------------------------------

HUBSPOT_MAX_AGE_MS = 5 * 60 * 1000
#: Lifecycle stages at which HubSpot hands a contact to Sales.
HUBSPOT_HANDOFF_STAGES = {"marketingqualifiedlead", "salesqualifiedlead"}


def hubspot_signature(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    message = method.encode() + uri.encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def hubspot_handoff(event: dict[str, Any]) -> LeadIn | None:
    """A contact event -> a handoff, or None for events that do not hand a lead to Sales.

    HubSpot's events carry ids, not the contact's fields, so the lead is qualified on what the
    event says; fetching the full contact needs a HubSpot API token and is not done here.
    """
    kind = event.get("subscriptionType")
    if kind == "contact.creation" or (
            kind == "contact.propertyChange" and event.get("propertyName") == "lifecyclestage"
            and str(event.get("propertyValue", "")).lower() in HUBSPOT_HANDOFF_STAGES):
        object_id = event.get("objectId")
        if object_id is None:
            return None
        occurred = event.get("occurredAt")
        return LeadIn(external_id=f"hubspot-contact-{object_id}", source="hubspot",
                      received_at=datetime.fromtimestamp(occurred / 1000, UTC) if occurred else None)
    return None


@router.post("/webhooks/hubspot")
async def hubspot_webhook(request: Request, svc: ServicesDep) -> JSONResponse:
    secret = svc.settings.hubspot_client_secret
    if secret is None:
        raise HTTPException(404, "HubSpot webhooks are not enabled (set HUBSPOT_CLIENT_SECRET)")
    raw = await read_body(request, svc.settings.max_body_bytes)
    timestamp = request.headers.get("x-hubspot-request-timestamp", "")
    signature = request.headers.get("x-hubspot-signature-v3", "")
    now_ms = time.time() * 1000   # signatures are checked against the real clock, never a demo clock
    if not timestamp.isdigit() or abs(now_ms - int(timestamp)) > HUBSPOT_MAX_AGE_MS:
        raise HTTPException(401, "stale or missing X-HubSpot-Request-Timestamp")
    expected = hubspot_signature(secret.get_secret_value(), request.method, svc.public_url(request),
                                 raw, timestamp)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise HTTPException(401, "bad X-HubSpot-Signature-v3")
    events = _json_body(raw)
    if not isinstance(events, list):
        raise HTTPException(422, [{"loc": ["body"], "msg": "expected a list of events", "type": "list_type"}])
    accepted = await run_in_threadpool(_hubspot_events, svc, events)
    return JSONResponse({"accepted": accepted, "events": len(events)})


def _hubspot_events(svc: Services, events: list[dict[str, Any]]) -> int:
    accepted = 0
    for event in events:
        event_id = str(event.get("eventId", ""))
        try:
            with svc.ctx.db.write() as session:
                session.add(InboundReceipt(source="hubspot", key=event_id, received_at=svc.ctx.now()))
        except IntegrityError:
            continue   # a retry of an event we already handled
        lead_in = hubspot_handoff(event)
        if lead_in is not None:
            result = handoff(svc.ctx, lead_in, actor="hubspot")
            accepted += 0 if result.duplicate else 1
    if accepted:
        svc.wake_worker()
    return accepted


def install(app: FastAPI) -> None:
    app.include_router(router)
