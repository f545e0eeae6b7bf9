"""A fake HubSpot CRM API (``https://api.hubapi.com``) for end-to-end tests.

``FakeHubSpot`` is a real HTTP server on ``127.0.0.1`` (ephemeral port) in a background thread;
point ``HUBSPOT_API_URL`` at :attr:`FakeHubSpot.root_url`. Every call is recorded.

Implemented (shapes from HubSpot's API reference):

* ``POST /crm/v3/objects/{contacts|deals}/batch/read`` with ``{"properties": [...], "inputs":
  [{"id": ...}]}``: ``200`` with ``results`` (``id``, the requested ``properties``, null when
  unset, plus ``hs_object_id``, ``createdate``, ``lastmodifieddate``; ``createdAt``,
  ``updatedAt``, ``archived``); ids it does not have make it a ``207`` with an
  ``OBJECT_NOT_FOUND`` error naming them. More than 100 inputs is a ``400``.
* ``POST /crm/v4/associations/deals/contacts/batch/read`` with ``{"inputs": [{"id": ...}]}``:
  ``results`` of ``{"from": {"id"}, "to": [{"toObjectId", "associationTypes"}]}``.

Auth: ``Authorization: Bearer <token>`` must match :attr:`FakeHubSpot.token`, else ``401``.
Faults: :meth:`fail_next` (a status, optionally with ``Retry-After``, for the next N calls),
:attr:`down` (every call a 503), :attr:`limit_per_window` (a rolling-window rate limit answered
with HubSpot's ``TEN_SECONDLY_ROLLING`` 429; refused calls are in :attr:`rejected`).

NOT implemented: ``idProperty``, ``propertiesWithHistory``, archived records, paging of
associations, association labels beyond the default deal-to-contact type, the daily limit,
any other endpoint (``404``).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from . import FakeRequest, FakeResponse, RecordingServer, json_response

__all__ = ["Call", "FakeHubSpot"]

_OBJECTS = re.compile(r"^/crm/v3/objects/(contacts|deals)/batch/read$")
_ASSOCIATIONS = re.compile(r"^/crm/v4/associations/deals/contacts/batch/read$")
_STAMP = "2026-11-20T14:00:00.000Z"


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    body: Any
    authorization: str
    status: int


@dataclass
class _Fault:
    status: int
    retry_after: float | None
    remaining: int


class FakeHubSpot(RecordingServer[Call]):
    def __init__(self, *, token: str = "pat-na1-test-token", port: int = 0) -> None:
        super().__init__(port=port)
        self.token = token
        self.contacts: dict[str, dict[str, str]] = {}
        self.deals: dict[str, dict[str, str]] = {}
        #: deal id -> associated contact ids
        self.deal_contacts: dict[str, list[str]] = {}
        self.down = False
        self.limit_per_window: int | None = None
        self.window_seconds = 10.0
        self._faults: deque[_Fault] = deque()
        self._times: deque[float] = deque()
        self._fault_lock = threading.Lock()

    def fail_next(self, status: int, *, retry_after: float | None = None, times: int = 1) -> None:
        with self._fault_lock:
            self._faults.append(_Fault(status, retry_after, times))

    def calls_to(self, path_part: str) -> list[Call]:
        return [c for c in self.calls if path_part in c.path]

    def _record(self, request: FakeRequest, body: Any, response: FakeResponse, *,
                rejected: bool = False) -> FakeResponse:
        call = Call(request.method, request.path, body, request.headers.get("authorization", ""), response.status)
        with self._lock:
            self._calls.append(call)
            if rejected:
                self._rejected.append(call)
        return response

    def handle(self, request: FakeRequest) -> FakeResponse:
        try:
            body = json.loads(request.body or b"null")
        except ValueError:
            body = None
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return self._record(request, body, json_response(401, {
                "status": "error", "category": "INVALID_AUTHENTICATION",
                "message": "Authentication credentials not found."}))
        if self.down:
            return self._record(request, body, json_response(503, {"status": "error", "message": "unavailable"}))
        with self._fault_lock:
            fault = self._faults[0] if self._faults else None
            if fault is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.popleft()
        if fault is not None:
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
            payload = _RATE_LIMITED if fault.status == 429 else {"status": "error", "message": "injected"}
            return self._record(request, body, json_response(fault.status, payload, headers),
                                rejected=fault.status == 429)
        if self.limit_per_window is not None:
            now = time.monotonic()
            with self._fault_lock:
                while self._times and self._times[0] <= now - self.window_seconds:
                    self._times.popleft()
                over = len(self._times) >= self.limit_per_window
                if not over:
                    self._times.append(now)
            if over:
                return self._record(request, body, json_response(429, _RATE_LIMITED), rejected=True)
        if request.method != "POST":
            return self._record(request, body, json_response(405, {"status": "error"}))
        objects = _OBJECTS.match(request.path)
        if objects:
            return self._record(request, body, self._batch_read(objects.group(1), body))
        if _ASSOCIATIONS.match(request.path):
            return self._record(request, body, self._associations(body))
        return self._record(request, body, json_response(404, {"status": "error", "message": "not found"}))

    def _inputs(self, body: Any) -> list[str] | None:
        if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
            return None
        return [str(i.get("id")) for i in body["inputs"] if isinstance(i, dict)]

    def _batch_read(self, object_type: str, body: Any) -> FakeResponse:
        ids = self._inputs(body)
        if ids is None or len(ids) > 100:
            return json_response(400, {"status": "error", "category": "VALIDATION_ERROR",
                                       "message": "inputs must hold 1 to 100 ids"})
        store = self.contacts if object_type == "contacts" else self.deals
        wanted = [str(p) for p in body.get("properties") or []]
        results, missing = [], []
        for object_id in ids:
            record = store.get(object_id)
            if record is None:
                missing.append(object_id)
                continue
            props: dict[str, Any] = {p: record.get(p) for p in wanted}
            props.update(hs_object_id=object_id, createdate=_STAMP, lastmodifieddate=_STAMP)
            results.append({"id": object_id, "properties": props, "createdAt": _STAMP,
                            "updatedAt": _STAMP, "archived": False})
        payload: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": _STAMP,
                                   "completedAt": _STAMP}
        if missing:
            kind = "CONTACT" if object_type == "contacts" else "DEAL"
            payload["numErrors"] = 1
            payload["errors"] = [{"status": "error", "category": "OBJECT_NOT_FOUND",
                                  "message": f"Could not get some {kind} objects, they may be deleted or "
                                             "not exist. Check that ids are valid.",
                                  "context": {"ids": missing}}]
        return json_response(207 if missing else 200, payload)

    def _associations(self, body: Any) -> FakeResponse:
        ids = self._inputs(body)
        if ids is None or len(ids) > 1000:
            return json_response(400, {"status": "error", "category": "VALIDATION_ERROR"})
        results = [{"from": {"id": deal},
                    "to": [{"toObjectId": int(c) if c.isdigit() else c,
                            "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 3, "label": None}]}
                           for c in self.deal_contacts[deal]]}
                   for deal in ids if self.deal_contacts.get(deal)]
        return json_response(200, {"status": "COMPLETE", "results": results, "startedAt": _STAMP,
                                   "completedAt": _STAMP})


_RATE_LIMITED = {"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
                 "errorType": "RATE_LIMIT", "correlationId": "00000000-0000-0000-0000-000000000000",
                 "policyName": "TEN_SECONDLY_ROLLING"}
