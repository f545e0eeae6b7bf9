"""The HTTP API: lead and outcome intake, lead lookup, status, health, and the HubSpot webhook."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from datetime import UTC, datetime
from typing import Annotated, Any, NoReturn

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot import hubspot
from bot.http import apidocs
from bot.http.apidocs import errors, json_body
from bot.services import Services
from commands.actions import record_outcome
from commands.intake import Handoff, handoff_many, lead_summary
from sla.lead import LeadIn, plain_text, sane_instant
from storage import leads as lead_store

router = APIRouter()
log = logging.getLogger("slabot.api")
#: An identifier-like string: bounded, no control or text-direction characters.
PlainId = Annotated[str, Field(max_length=200), AfterValidator(plain_text)]


async def services(request: Request) -> Services:
    # async: FastAPI runs a plain `def` dependency in its thread pool, a thread hop per request for nothing.
    return request.app.state.services  # type: ignore[no-any-return]


ServicesDep = Annotated[Services, Depends(services)]


async def require_token(request: Request, svc: ServicesDep,
                        _documented: Annotated[HTTPAuthorizationCredentials | None, Security(apidocs.bearer)]) -> None:
    # `_documented` only puts the bearer scheme in OpenAPI (the Authorize button); the check is here.
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


#: No body this API takes nests deeper than a few levels; a deeper one is refused before it is walked.
MAX_JSON_DEPTH = 32


def _json_depth_over(value: Any, limit: int) -> bool:
    """Whether `value` nests lists/objects deeper than `limit` (iterative: no recursion to exhaust)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


class JSONRefused(ValueError):
    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


def load_json(raw: bytes | str) -> Any:
    """Parse a request body, refusing invalid JSON and JSON nested deeper than MAX_JSON_DEPTH."""
    too_deep = JSONRefused(f"JSON nested deeper than {MAX_JSON_DEPTH} levels", "json_too_deep")
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise JSONRefused(f"invalid JSON: {exc}", "json_invalid") from None
    except RecursionError:   # the parser gave up nesting (about 1,000 levels)
        raise too_deep from None
    if _json_depth_over(body, MAX_JSON_DEPTH):
        raise too_deep
    return body


def _json_body(raw: bytes, *, status: int = 422) -> Any:
    try:
        return load_json(raw)
    except JSONRefused as exc:
        raise HTTPException(status, [{"loc": ["body"], "msg": str(exc), "type": exc.kind}]) from None


def _field_errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [{"loc": ["body", *err["loc"]], "msg": err["msg"].removeprefix("Value error, "), "type": err["type"]}
            for err in exc.errors(include_url=False, include_context=False, include_input=False)]


@router.post("/api/v1/leads", dependencies=[Authorized], status_code=201, response_model=apidocs.LeadSummary,
             summary="Hand off a lead", response_description="A new lead: how it was qualified and where it went.",
             responses={200: {"model": apidocs.DuplicateLead,
                              "description": "Seen before (same external_id or Idempotency-Key): the lead "
                                             "as stored, with `duplicate: true`; nothing new is stored."},
                        **errors(401, 409, 413, 422, e409="The same Idempotency-Key came with another body.")},
             openapi_extra=json_body(LeadIn, "The lead as Marketing sends it: `email` or `external_id` is "
                                             "required; fields beyond these are ignored."))
async def create_lead(request: Request, svc: ServicesDep,
                      idempotency_key: Annotated[str | None, Header(max_length=255)] = None) -> JSONResponse:
    raw = await read_body(request, svc.settings.max_body_bytes)
    try:
        lead_in = LeadIn.model_validate(_json_body(raw))
    except ValidationError as exc:
        raise HTTPException(422, _field_errors(exc)) from None
    result = await svc.intake.submit(Handoff(lead_in, idempotency_key))
    if result.conflict is not None:
        raise HTTPException(409, result.conflict)
    if result.updated:
        svc.wake_worker()   # the card shows the new facts
    if not result.duplicate:
        svc.wake_worker()
    return JSONResponse(result.body(), status_code=200 if result.duplicate else 201)


class OutcomeIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    external_id: Annotated[str, Field(min_length=1, max_length=200), AfterValidator(plain_text)]
    type: str = Field(json_schema_extra={"enum": ["opportunity_created", "won", "lost"]})
    amount: float | None = Field(default=None, ge=0, le=1e15, allow_inf_nan=False)
    at: Annotated[datetime, AfterValidator(sane_instant)] | None = None
    crm_url: Annotated[str, Field(max_length=500), AfterValidator(plain_text)] | None = None

    @field_validator("type")
    @classmethod
    def _type(cls, value: str) -> str:
        if value not in ("opportunity_created", "won", "lost"):
            raise ValueError("must be one of opportunity_created, won, lost")
        return value



@router.post("/api/v1/outcomes", dependencies=[Authorized], response_model=apidocs.LeadSummary,
             summary="Record a closed-loop outcome from the CRM", response_description="The lead after the outcome.",
             responses=errors(401, 404, 409, 413, 422, e404="No lead with that external_id.",
                              e409="The lead's state does not allow this outcome."),
             openapi_extra=json_body(OutcomeIn, "What became of a lead in the CRM."))
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
        lead = lead_store.get_lead(session, lead_id=lead_id)
        if lead is None:
            return None
        events = lead_store.events_of(session, lead_id=lead_id)
        body = lead.model_dump(mode="json", exclude={"payload", "idempotency_key"})
        body.update(lead_summary(lead))
        body["lead"] = lead.payload
        body["events"] = [e.model_dump(mode="json", exclude={"lead_id"}) for e in events]
        return body


@router.get("/api/v1/leads/{lead_id}", dependencies=[Authorized], response_model=None, summary="Look up a lead",
            responses={200: {"model": apidocs.LeadDetail, "description": "The lead and its history."},
                       **errors(401, 404, e404="No lead with that id.")})
def get_lead(lead_id: int, svc: ServicesDep) -> dict[str, Any]:
    # An id no database integer can hold names no lead (and would overflow the driver).
    body = _lead_detail(svc, lead_id) if 0 < lead_id < 2**63 else None
    if body is None:
        raise HTTPException(404, f"no lead {lead_id}")
    return body


@router.get("/api/v1/status", dependencies=[Authorized], response_model=apidocs.STATUS_MODEL,
            summary="The SLA numbers",
            responses={200: {"description": "The numbers behind `/sla status` and the digest, as of `as_of`: "
                                            "fractions are 0..1, durations business minutes, money in the "
                                            "agreement's currency. These keys at least; more may follow.",
                             "content": {"application/json": {"example": apidocs.STATUS_EXAMPLE}}},
                       **errors(401, 422, e422="An unknown scope, or an as_of without a time zone.")})
def get_status(svc: ServicesDep, scope: str = "all", as_of: datetime | None = None) -> Response:
    if as_of is not None:
        try:
            as_of = sane_instant(as_of)
        except ValueError as exc:
            raise HTTPException(422, [{"loc": ["query", "as_of"], "msg": str(exc), "type": "value_error"}]) \
                from None
    try:
        numbers = svc.status(scope=scope, as_of=as_of)
    except ValueError as exc:
        raise HTTPException(422, [{"loc": ["query", "scope"], "msg": str(exc), "type": "value_error"}]) \
            from None
    # The model is already validated: serialized once, in pydantic's core (response_model documents it).
    return Response(numbers.model_dump_json(), media_type="application/json")


@router.get("/healthz", response_model=apidocs.Health, summary="Liveness", response_description="The process answers.")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", response_model=apidocs.Readiness, summary="Readiness",
            response_description="The database is reachable and migrated.",
            responses={503: {"model": apidocs.Readiness,
                             "description": "The database is unreachable or migrations are pending."}})
def readyz(svc: ServicesDep) -> JSONResponse:
    try:
        current = svc.ctx.db.is_current()
    except Exception as exc:  # noqa: BLE001 - any database failure means "not ready"
        return JSONResponse({"status": "unavailable", "database": type(exc).__name__}, status_code=503)
    if not current:
        return JSONResponse({"status": "unavailable", "database": "migrations pending: run slabot db upgrade"},
                            status_code=503)
    return JSONResponse({"status": "ok"})


@router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics",
            response_description="Counters and latency histograms in the Prometheus text format.")
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


#: HubSpot's epoch-millisecond times, bounded like every other instant (1970 to 2100).
_HUBSPOT_MS = Field(default=None, ge=0, lt=4_102_444_800_000)


class HubSpotEvent(BaseModel):
    """The fields of a HubSpot webhook event slabot reads; a batch with one malformed event is a 400."""

    model_config = ConfigDict(extra="ignore", strict=True)
    eventId: Annotated[int, Field(ge=0, lt=2**63)] | PlainId | None = None
    subscriptionType: PlainId
    objectId: Annotated[int, Field(ge=0, lt=2**63)] | None = None
    occurredAt: Annotated[int | None, _HUBSPOT_MS] = None
    propertyName: PlainId | None = None
    propertyValue: Annotated[str, Field(max_length=10_000)] | int | float | bool | None = None


def hubspot_event_key(event: dict[str, Any]) -> str:
    """The receipt key of an event: its eventId; for an event without one, a hash of the event
    (retries differ only in `attemptNumber`, so it is left out): stable across retries, distinct
    for distinct events."""
    if event.get("eventId") is not None:
        return str(event["eventId"])
    canonical = json.dumps({k: v for k, v in event.items() if k != "attemptNumber"}, sort_keys=True,
                           separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def hubspot_handoff(event: dict[str, Any] | HubSpotEvent) -> LeadIn | None:
    """A contact event -> a handoff, or None for events that do not hand a lead to Sales.

    HubSpot's events carry ids, not the contact's fields, so the lead is qualified on what the
    event says; fetching the full contact needs a HubSpot API token and is not done here.
    """
    parsed = event if isinstance(event, HubSpotEvent) else HubSpotEvent.model_validate(event)
    kind = parsed.subscriptionType
    if kind == "contact.creation" or (
            kind == "contact.propertyChange" and parsed.propertyName == "lifecyclestage"
            and str(parsed.propertyValue or "").lower() in HUBSPOT_HANDOFF_STAGES):
        if parsed.objectId is None:
            return None
        occurred = parsed.occurredAt
        return LeadIn(external_id=f"hubspot-contact-{parsed.objectId}", source="hubspot",
                      received_at=datetime.fromtimestamp(occurred / 1000, UTC) if occurred else None)
    return None


@router.post("/webhooks/hubspot", response_model=apidocs.HubSpotAccepted, summary="HubSpot contact events",
             response_description="The batch was handled; leads seen before are not counted again.",
             responses=errors(400, 401, 404, 413, 503, e401="A stale timestamp or a bad X-HubSpot-Signature-v3.",
                              e404="HubSpot webhooks are off (HUBSPOT_CLIENT_SECRET is not set).",
                              e503="HUBSPOT_ACCESS_TOKEN is set and HubSpot's API did not answer in time: "
                                   "nothing was stored, and HubSpot sends the batch again."),
             openapi_extra=json_body(HubSpotEvent, "A batch of v3-signed HubSpot webhook events.", many=True))
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
    # Signed but malformed: a 400, which HubSpot does not retry (a retry would be just as malformed).
    events = _json_body(raw, status=400)
    handoffs = _hubspot_handoffs(events)
    sync = hubspot.sync_for(request.app, svc)
    if sync is not None:   # HUBSPOT_ACCESS_TOKEN: contacts enriched, deals become outcomes (bot/hubspot.py)
        try:
            return JSONResponse(await sync.deliver(events, handoffs))
        except hubspot.HubSpotUnavailable as exc:
            # Nothing of the batch was stored: the 503 makes HubSpot send it again later.
            log.warning("HubSpot batch not taken, HubSpot will retry it: %s", exc.reason)
            return JSONResponse({"detail": f"HubSpot's API is unavailable ({exc.reason}); send again later"},
                                status_code=503, headers={"Retry-After": str(max(1, round(exc.retry_after)))})
    results = await run_in_threadpool(handoff_many, svc.ctx, handoffs) if handoffs else []
    accepted = sum(not r.duplicate for r in results)
    if accepted:
        svc.wake_worker()
    return JSONResponse({"accepted": accepted, "events": len(events)})


def _hubspot_handoffs(events: Any) -> list[Handoff]:
    """The handoffs of a batch, each carrying its event's receipt (stored with the lead, in the
    same transaction); a batch with a malformed event is refused whole, with nothing stored."""
    if not isinstance(events, list):
        _hubspot_malformed([{"loc": ["body"], "msg": "expected a list of events", "type": "list_type"}])
    handoffs = []
    for index, event in enumerate(events):
        try:
            parsed = HubSpotEvent.model_validate(event)
            lead_in = hubspot_handoff(parsed)
        except ValidationError as exc:
            _hubspot_malformed([{**err, "loc": ["body", index, *err["loc"][1:]]} for err in _field_errors(exc)])
        if lead_in is not None:
            handoffs.append(Handoff(lead_in, actor="hubspot", receipt=("hubspot", hubspot_event_key(event))))
    return handoffs


def _hubspot_malformed(errors: list[dict[str, Any]]) -> NoReturn:
    # Field names and error kinds only: never the values (a contact's data).
    log.warning("refused a signed HubSpot batch as malformed: %s",
                "; ".join(f"{'.'.join(map(str, e['loc'][1:])) or 'body'}: {e['type']}" for e in errors))
    raise HTTPException(400, errors)


def install(app: FastAPI) -> None:
    app.include_router(router)
    apidocs.install(app)
