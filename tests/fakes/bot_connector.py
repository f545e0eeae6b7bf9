"""A fake Bot Framework connector service (the ``serviceUrl`` of Teams activities).

``FakeBotConnector`` is a real HTTP server on ``127.0.0.1`` (ephemeral port) running in a
background thread. Put :attr:`FakeBotConnector.service_url` (``http://127.0.0.1:PORT/amer/``)
into incoming activities as ``serviceUrl`` and the Microsoft 365 Agents SDK connector client
(which appends ``v3/...``) will talk to it. Every call is recorded.

Implemented (any path prefix before ``/v3/`` is accepted; conversation, activity and member
ids are percent-decoded):

* ``POST v3/conversations`` - create a conversation (a new channel thread when
  ``channelData.channel.id`` is given, else a 1:1 ``a:...`` conversation from ``members``).
* ``GET v3/conversations`` - list conversations the fake has seen.
* ``POST v3/conversations/{id}/activities`` and ``.../activities/{replyToId}`` - send / reply.
* ``POST v3/conversations/{id}/activities/history`` - accepted and recorded only.
* ``PUT v3/conversations/{id}/activities/{activityId}`` - update (404 if unknown).
* ``DELETE v3/conversations/{id}/activities/{activityId}`` - delete (404 if unknown).
* ``GET v3/conversations/{id}/members``, ``.../members/{userId}``, ``.../pagedmembers``,
  ``.../activities/{activityId}/members`` - from the :attr:`FakeBotConnector.members`
  directory (the same roster for every conversation).

Fault injection: :meth:`FakeBotConnector.fail_next`,
:attr:`FakeBotConnector.rate_limit_per_conversation` (sliding window of
:attr:`FakeBotConnector.rate_limit_window` seconds, default 1),
:attr:`FakeBotConnector.latency`, :attr:`FakeBotConnector.require_auth`.

NOT implemented: token validation (the ``Authorization`` header is only recorded, or merely
required to be present when ``require_auth`` is set), attachments upload/views,
``v3/teams/...`` (team details, channel lists), meeting APIs, per-conversation rosters,
conversation existence checks for sends (any conversation id is accepted), real Teams
throttling tiers, and validation of Adaptive Cards or activity schemas.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import time
from collections import defaultdict, deque
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote

from . import FakeRequest, FakeResponse, RecordingServer, json_response, serve_forever

__all__ = ["ActivityUpdate", "Call", "FakeBotConnector", "SentActivity"]

FAULT_KINDS = frozenset({"send", "update", "create", "members"})
_ERROR_CODES = {
    400: "BadArgument",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    412: "PreconditionFailed",
    429: "TooManyRequests",
    500: "ServiceError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}

_Reply = tuple[int, Any, dict[str, str]]


@dataclass(frozen=True)
class Call:
    """One recorded request. ``path`` is percent-decoded; ``headers`` keys are lower-case.

    ``kind`` is the operation (``send``, ``reply``, ``update``, ``delete``, ``create``,
    ``list``, ``history``, ``members`` or None for unknown routes); ``status`` the HTTP
    status answered (0 = connection dropped).
    """

    method: str
    path: str
    body: Any
    headers: dict[str, str]
    at: float
    kind: str | None = None
    conversation_id: str | None = None
    status: int = 200

    @property
    def has_authorization(self) -> bool:
        """Whether the request carried an ``Authorization`` header."""
        return "authorization" in self.headers


@dataclass
class SentActivity:
    """An activity the bot sent (current version, with edits applied)."""

    id: str
    conversation_id: str
    type: str
    text: str | None
    attachments: list[Any]
    reply_to_id: str | None
    body: dict[str, Any]
    via: str  # "create" | "send" | "reply"
    at: float
    edits: int = 0

    @property
    def channel_id(self) -> str:
        """The conversation id without a ``;messageid=...`` thread suffix."""
        return self.conversation_id.split(";", 1)[0]

    @property
    def attachment_contents(self) -> list[Any]:
        """``content`` of every attachment (e.g. Adaptive Card JSON)."""
        return [a.get("content") for a in self.attachments if isinstance(a, dict)]


@dataclass(frozen=True)
class ActivityUpdate:
    """A successful ``PUT .../activities/{activityId}``."""

    conversation_id: str
    activity_id: str
    body: dict[str, Any]
    at: float


@dataclass
class _Fault:
    status: int
    remaining: int
    retry_after: int | None


def _error_body(status: int, message: str) -> dict[str, Any]:
    return {"error": {"code": _ERROR_CODES.get(status, "ServiceError"), "message": message}}


class FakeBotConnector(RecordingServer["Call"]):
    """Fake Bot Framework connector. See the module docstring for scope.

    Settable by tests at any time: :attr:`members`, :attr:`rate_limit_per_conversation`,
    :attr:`rate_limit_window`, :attr:`require_auth`, :attr:`latency`.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        latency: float = 0.0,
        region: str = "amer",
        require_auth: bool = False,
    ) -> None:
        super().__init__(port=port, latency=latency)
        self.region = region.strip("/")
        #: member directory: ``{"29:ana": {"id": "29:ana", "name": ..., "aadObjectId": ...}}``
        self.members: dict[str, dict[str, Any]] = {}
        #: max accepted send/reply/update per conversation per sliding window (None = off)
        self.rate_limit_per_conversation: float | None = None
        #: length of that sliding window in seconds (tests may shrink it to stay fast)
        self.rate_limit_window: float = 1.0
        #: answer 401 to requests without an Authorization header
        self.require_auth = require_auth
        self._ids = itertools.count(int(time.time() * 1000))
        self._conversations: dict[str, list[SentActivity]] = {}
        self._by_id: dict[tuple[str, str], SentActivity] = {}
        self._all: list[SentActivity] = []
        self._updates: list[ActivityUpdate] = []
        self._created: list[dict[str, Any]] = []
        self._history: list[tuple[str, Any]] = []
        self._faults: dict[str, list[_Fault]] = defaultdict(list)
        self._windows: dict[str, deque[float]] = defaultdict(deque)
        self._counts: dict[str, int] = defaultdict(int)

    # -- public API -------------------------------------------------------------------------
    @property
    def service_url(self) -> str:
        """``http://127.0.0.1:PORT/amer/`` - use as the activities' ``serviceUrl``."""
        return f"{self.root_url}/{self.region}/"

    def fail_next(
        self, kind: str, status: int, times: int = 1, retry_after: int | None = None
    ) -> None:
        """Make the next ``times`` operations of ``kind`` fail with HTTP ``status``.

        ``kind``: ``send`` (send, reply, history), ``update`` (PUT and DELETE), ``create``,
        ``members`` (members, member, pagedmembers). ``status=0`` drops the connection
        without a response. ``Retry-After`` is sent when ``retry_after`` is given.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {sorted(FAULT_KINDS)}, not {kind!r}")
        if times < 1:
            raise ValueError("times must be >= 1")
        with self._lock:
            self._faults[kind].append(_Fault(status, times, retry_after))

    def calls_of(self, kind: str) -> list[Call]:
        """Recorded calls of one operation kind (``send``, ``reply``, ``update``, ...)."""
        with self._lock:
            return [c for c in self._calls if c.kind == kind]

    def activities(self, conversation_id: str | None = None) -> list[SentActivity]:
        """Sent activities (current versions, including the first activity of created
        conversations), in send order; optionally of one exact conversation id."""
        with self._lock:
            return [
                replace(a)
                for a in self._all
                if conversation_id is None or a.conversation_id == conversation_id
            ]

    def activity(self, conversation_id: str, activity_id: str) -> SentActivity | None:
        """Snapshot of one activity, or None."""
        with self._lock:
            found = self._lookup(conversation_id, activity_id)
            return replace(found) if found is not None else None

    def updates(self) -> list[ActivityUpdate]:
        """Successful activity updates, in order."""
        with self._lock:
            return list(self._updates)

    @property
    def conversations(self) -> dict[str, list[SentActivity]]:
        """Snapshot: conversation id -> its current activities (oldest first)."""
        with self._lock:
            return {cid: [replace(a) for a in acts] for cid, acts in self._conversations.items()}

    @property
    def created_conversations(self) -> list[dict[str, Any]]:
        """Bodies of successful ``POST v3/conversations`` calls, plus the ``id`` assigned."""
        with self._lock:
            return [dict(c) for c in self._created]

    def stats(self) -> dict[str, Any]:
        """Counters: accepted (new activities: sends + replies + creates with an activity),
        accepted_sends, accepted_replies, accepted_creates, accepted_updates, deletes,
        rejected_429, rate_limited, injected_failures, calls, calls_with_auth,
        per_conversation and per_channel (new activities by id / by id without
        ``;messageid=``)."""
        with self._lock:
            per_conversation: dict[str, int] = defaultdict(int)
            per_channel: dict[str, int] = defaultdict(int)
            for activity in self._all:
                per_conversation[activity.conversation_id] += 1
                per_channel[activity.channel_id] += 1
            return {
                "calls": len(self._calls),
                "calls_with_auth": sum(1 for c in self._calls if c.has_authorization),
                "accepted": self._counts["send"] + self._counts["reply"] + self._counts["create"],
                "accepted_sends": self._counts["send"],
                "accepted_replies": self._counts["reply"],
                "accepted_creates": self._counts["create"],
                "accepted_updates": self._counts["update"],
                "deletes": self._counts["delete"],
                "rejected_429": self._counts["rejected_429"],
                "rate_limited": len(self._rejected),
                "injected_failures": self._counts["injected_failures"],
                "per_conversation": dict(per_conversation),
                "per_channel": dict(per_channel),
            }

    # -- HTTP entry point -----------------------------------------------------------------
    def handle(self, request: FakeRequest) -> FakeResponse:
        raw_path = request.path
        if raw_path == "/_fake/stats":
            return json_response(200, self.stats())
        kind, conversation_id, rest = self._route(request.method, raw_path)
        body: Any = None
        if request.body.strip():
            try:
                body = json.loads(request.body)
            except ValueError:
                body = request.body.decode("utf-8", "replace")
        with self._lock:
            status, payload, headers = self._process(request, kind, conversation_id, rest, body)
            call = Call(
                method=request.method,
                path=unquote(raw_path),
                body=body,
                headers=request.headers,
                at=request.received_at,
                kind=kind,
                conversation_id=conversation_id,
                status=status,
            )
            self._calls.append(call)
            if status == 429:
                self._counts["rejected_429"] += 1
                if isinstance(payload, dict) and payload.pop("_rate_limited", False):
                    self._rejected.append(call)
        if status == 0:
            return FakeResponse(status=0)
        return json_response(status, payload, headers)

    @staticmethod
    def _route(method: str, raw_path: str) -> tuple[str | None, str | None, list[str]]:
        """(kind, decoded conversation id, decoded remaining segments)."""
        index = raw_path.find("/v3/")
        if index < 0:
            return None, None, []
        segments = [unquote(s) for s in raw_path[index + 4 :].rstrip("/").split("/")]
        if not segments or segments[0] != "conversations":
            return None, None, []
        if len(segments) == 1:
            return {"POST": "create", "GET": "list"}.get(method), None, []
        conversation_id, rest = segments[1], segments[2:]
        kind: str | None = None
        if rest == ["activities"] and method == "POST":
            kind = "send"
        elif rest == ["activities", "history"] and method == "POST":
            kind = "history"
        elif len(rest) == 2 and rest[0] == "activities":
            kind = {"POST": "reply", "PUT": "update", "DELETE": "delete"}.get(method)
        elif method == "GET" and (
            rest in (["members"], ["pagedmembers"])
            or (len(rest) == 2 and rest[0] == "members")
            or (len(rest) == 3 and rest[0] == "activities" and rest[2] == "members")
        ):
            kind = "members"
        return kind, conversation_id, rest

    def _process(
        self,
        request: FakeRequest,
        kind: str | None,
        conversation_id: str | None,
        rest: list[str],
        body: Any,
    ) -> _Reply:
        if kind is None:
            return (404, _error_body(404, f"No route for {request.method} {request.path}"), {})
        fault_kind = {"reply": "send", "history": "send", "delete": "update"}.get(kind, kind)
        fault = self._take_fault(fault_kind)
        if fault is not None:
            return fault
        if self.require_auth and "authorization" not in request.headers:
            return (401, {"message": "Authorization has been denied for this request."}, {})
        if kind in ("send", "reply", "create", "update") and not isinstance(body, dict):
            return (400, _error_body(400, "Activity body must be a JSON object"), {})
        if kind in ("send", "reply", "update") and conversation_id is not None:
            limited = self._rate_limit(conversation_id, request.received_at)
            if limited is not None:
                return limited
        if kind == "create":
            return self._create(body, request.received_at)
        if kind == "list":
            conversations = [{"id": cid, "members": []} for cid in self._conversations]
            return (200, {"conversations": conversations}, {})
        assert conversation_id is not None
        if kind == "send":
            return self._store_new(conversation_id, body, None, "send", request.received_at)
        if kind == "reply":
            return self._store_new(conversation_id, body, rest[1], "reply", request.received_at)
        if kind == "update":
            return self._update(conversation_id, rest[1], body, request.received_at)
        if kind == "delete":
            return self._delete(conversation_id, rest[1])
        if kind == "history":
            self._history.append((conversation_id, body))
            return (200, {"id": str(next(self._ids))}, {})
        return self._members(rest, request.query)

    def _take_fault(self, kind: str) -> _Reply | None:
        queue = self._faults.get(kind)
        if not queue:
            return None
        fault = queue[0]
        fault.remaining -= 1
        if fault.remaining <= 0:
            queue.pop(0)
        self._counts["injected_failures"] += 1
        if fault.status == 0:
            return (0, None, {})
        headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
        return (fault.status, _error_body(fault.status, f"Injected {kind} failure"), headers)

    def _rate_limit(self, conversation_id: str, now: float) -> _Reply | None:
        rate = self.rate_limit_per_conversation
        if not rate:
            return None
        span = self.rate_limit_window
        window = self._windows[conversation_id]
        while window and now - window[0] >= span:
            window.popleft()
        if len(window) >= max(1, int(rate * span)):
            retry_after = max(1, math.ceil(window[0] + span - now))
            body = _error_body(429, "Too many requests for this conversation")
            body["_rate_limited"] = True
            return (429, body, {"Retry-After": str(retry_after)})
        window.append(now)
        return None

    def _lookup(self, conversation_id: str, activity_id: str) -> SentActivity | None:
        found = self._by_id.get((conversation_id, activity_id))
        if found is not None:
            return found
        # Lenient: the root post of a thread may be addressed via the bare channel id.
        channel = conversation_id.split(";", 1)[0]
        for activity in self._all:
            if activity.id == activity_id and activity.channel_id == channel:
                return activity
        return None

    def _store_new(
        self,
        conversation_id: str,
        body: dict[str, Any],
        reply_to_id: str | None,
        via: str,
        at: float,
        activity_id: str | None = None,
    ) -> _Reply:
        new_id = activity_id or str(next(self._ids))
        attachments = body.get("attachments")
        activity = SentActivity(
            id=new_id,
            conversation_id=conversation_id,
            type=str(body.get("type") or "message"),
            text=body.get("text"),
            attachments=attachments if isinstance(attachments, list) else [],
            reply_to_id=reply_to_id or body.get("replyToId"),
            body=body,
            via=via,
            at=at,
        )
        self._conversations.setdefault(conversation_id, []).append(activity)
        self._by_id[(conversation_id, new_id)] = activity
        self._all.append(activity)
        self._counts[via] += 1
        return (201, {"id": new_id}, {})

    def _create(self, body: dict[str, Any], at: float) -> _Reply:
        channel_data = body.get("channelData") or {}
        channel = channel_data.get("channel") if isinstance(channel_data, dict) else None
        channel_id = channel.get("id") if isinstance(channel, dict) else None
        new_id = str(next(self._ids))
        if channel_id:
            conversation_id = f"{channel_id};messageid={new_id}"
        else:
            members = body.get("members") or []
            ids = sorted(str(m.get("id")) for m in members if isinstance(m, dict))
            if not ids:
                return (400, _error_body(400, "Need channelData.channel.id or members"), {})
            digest = hashlib.sha1(",".join(ids).encode()).hexdigest()
            conversation_id = f"a:1{digest}"
        self._conversations.setdefault(conversation_id, [])
        self._created.append({**body, "id": conversation_id})
        response: dict[str, Any] = {"id": conversation_id}
        activity = body.get("activity")
        if isinstance(activity, dict):
            self._store_new(conversation_id, activity, None, "create", at, activity_id=new_id)
            response["activityId"] = new_id
        return (201, response, {})

    def _update(
        self, conversation_id: str, activity_id: str, body: dict[str, Any], at: float
    ) -> _Reply:
        activity = self._lookup(conversation_id, activity_id)
        if activity is None:
            return (404, _error_body(404, f"Activity {activity_id} not found"), {})
        attachments = body.get("attachments")
        activity.type = str(body.get("type") or activity.type)
        activity.text = body.get("text")
        activity.attachments = attachments if isinstance(attachments, list) else []
        activity.body = body
        activity.edits += 1
        self._updates.append(ActivityUpdate(conversation_id, activity_id, body, at))
        self._counts["update"] += 1
        return (200, {"id": activity_id}, {})

    def _delete(self, conversation_id: str, activity_id: str) -> _Reply:
        activity = self._lookup(conversation_id, activity_id)
        if activity is None:
            return (404, _error_body(404, f"Activity {activity_id} not found"), {})
        self._all.remove(activity)
        self._conversations[activity.conversation_id].remove(activity)
        del self._by_id[(activity.conversation_id, activity.id)]
        self._counts["delete"] += 1
        return (200, {}, {})

    def _members(self, rest: list[str], query: dict[str, str]) -> _Reply:
        roster = list(self.members.values())
        if rest[0] == "members" and len(rest) == 2:
            member = self.members.get(rest[1])
            if member is None:
                return (404, _error_body(404, f"Member {rest[1]} not found"), {})
            return (200, member, {})
        if rest[0] == "pagedmembers":
            try:
                page_size = max(1, int(query.get("pageSize") or 200))
                offset = int(query.get("continuationToken") or 0)
            except ValueError:
                return (400, _error_body(400, "Bad pageSize or continuationToken"), {})
            page: dict[str, Any] = {"members": roster[offset : offset + page_size]}
            if offset + page_size < len(roster):
                page["continuationToken"] = str(offset + page_size)
            return (200, page, {})
        return (200, roster, {})


def main(argv: list[str] | None = None) -> None:
    """Run the fake standalone: ``python -m tests.fakes.bot_connector --port 0``.

    Prints the service URL; ``GET <root>/_fake/stats`` returns the stats as JSON.
    """
    parser = argparse.ArgumentParser(description="Fake Bot Framework connector service")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rate-limit-per-conversation", type=float, default=None)
    args = parser.parse_args(argv)
    with FakeBotConnector(port=args.port) as fake:
        fake.rate_limit_per_conversation = args.rate_limit_per_conversation
        serve_forever(fake.service_url)


if __name__ == "__main__":
    main()
