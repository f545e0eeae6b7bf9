"""A fake Slack Web API server for end-to-end tests and benchmarks.

``FakeSlack`` is a real HTTP server on ``127.0.0.1`` (ephemeral port) running in a background
thread. Point ``slack_sdk``'s ``WebClient`` / ``AsyncWebClient`` at it with
``base_url=fake.base_url``. Requests may be GET (query string) or POST with form-encoded, JSON
or multipart bodies; query-string parameters are merged in (``slack_sdk`` sends some POST
parameters there). Every call is recorded.

Implemented methods: ``auth.test``, ``chat.postMessage``, ``chat.update``, ``chat.delete``,
``chat.postEphemeral``, ``conversations.open``, ``conversations.history``, ``views.open``,
``views.push``, ``views.update``, ``views.publish``, ``users.info``, ``users.lookupByEmail``,
``files.getUploadURLExternal`` (+ the returned upload URL), ``files.completeUploadExternal``.
Any other method answers ``{"ok": false, "error": "unknown_method"}``.

Fault injection: :meth:`FakeSlack.fail_next` (HTTP status, 429 + ``Retry-After``, Slack error
codes, dropped connections), :attr:`FakeSlack.rate_limit_per_channel`,
:attr:`FakeSlack.channel_not_found`, :meth:`FakeSlack.revoke`, :attr:`FakeSlack.latency`.

NOT implemented: request signing / events / interactivity (this fake is the API, not Slack
calling the bot), Socket Mode, scopes and ``missing_scope``, channel membership
(``not_in_channel``), real per-method tier rate limits, threads listing
(``conversations.replies``), ``chat.scheduleMessage``, legacy ``files.upload``, reactions,
pins, ``response_url`` webhooks, pagination anywhere but ``conversations.history``, and
``mrkdwn``/block validation (blocks are stored as sent).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import (
    FakeRequest,
    FakeResponse,
    RecordingServer,
    json_response,
    parse_multipart,
    parse_query,
    serve_forever,
)

__all__ = [
    "BOT_ID",
    "BOT_USER_ID",
    "TEAM_ID",
    "Call",
    "EphemeralMessage",
    "FakeSlack",
    "SlackMessage",
    "UploadedFile",
    "ViewRecord",
]

TEAM_ID = "T0ACME001"
TEAM_NAME = "Acme"
TEAM_URL = "https://acme.slack.com/"
BOT_USER_ID = "UBOT00001"
BOT_ID = "B0BOT0001"
APP_ID = "A0SLABOT01"

# Form values that carry JSON documents and are decoded before storing/recording.
_JSON_FIELDS = frozenset({"blocks", "attachments", "metadata", "view", "files"})
_METHODS_WITH_CHANNEL = frozenset(
    {
        "chat.postMessage",
        "chat.update",
        "chat.delete",
        "chat.postEphemeral",
        "conversations.history",
    }
)

_Reply = tuple[int, dict[str, Any], dict[str, str]]


@dataclass(frozen=True)
class Call:
    """One recorded request to ``/api/<method>`` (or ``"upload"`` for upload-URL requests).

    ``headers`` keys are lower-case. ``status`` is the HTTP status answered (0 = dropped) and
    ``error`` the Slack ``error`` code when ``ok`` was false.
    """

    method: str
    params: dict[str, Any]
    headers: dict[str, str]
    at: float
    http_method: str = "POST"
    status: int = 200
    error: str | None = None


@dataclass
class SlackMessage:
    """A message stored in a channel (current version) or a snapshot of an accepted post."""

    channel: str
    ts: str
    text: str
    blocks: list[Any] | None = None
    attachments: list[Any] | None = None
    metadata: dict[str, Any] | None = None
    thread_ts: str | None = None
    edits: int = 0
    edited_ts: str | None = None
    reply_count: int = 0
    user: str = BOT_USER_ID

    @property
    def event_payload(self) -> dict[str, Any]:
        """``metadata["event_payload"]`` or ``{}``."""
        payload = (self.metadata or {}).get("event_payload")
        return payload if isinstance(payload, dict) else {}

    def to_api(self, *, include_metadata: bool = True) -> dict[str, Any]:
        """The message as Slack's API returns it."""
        out: dict[str, Any] = {
            "type": "message",
            "text": self.text,
            "user": self.user,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "team": TEAM_ID,
            "ts": self.ts,
        }
        if self.blocks is not None:
            out["blocks"] = self.blocks
        if self.attachments is not None:
            out["attachments"] = self.attachments
        if self.thread_ts is not None:
            out["thread_ts"] = self.thread_ts
        if self.reply_count:
            out["thread_ts"] = self.ts
            out["reply_count"] = self.reply_count
        if self.edits:
            out["edited"] = {"user": self.user, "ts": self.edited_ts}
        if include_metadata and self.metadata is not None:
            out["metadata"] = self.metadata
        return out


@dataclass(frozen=True)
class EphemeralMessage:
    """A ``chat.postEphemeral`` that was accepted."""

    channel: str
    user: str
    message_ts: str
    text: str
    blocks: list[Any] | None


@dataclass(frozen=True)
class ViewRecord:
    """A successful ``views.*`` call; ``view`` is the parsed view JSON as sent."""

    method: str
    view_id: str
    view: dict[str, Any]
    trigger_id: str | None
    user_id: str | None


@dataclass
class UploadedFile:
    """A file announced with ``files.getUploadURLExternal``."""

    id: str
    filename: str
    length: int
    content: bytes = b""
    uploaded: bool = False
    completed: bool = False
    title: str | None = None
    channels: list[str] = field(default_factory=list)
    initial_comment: str | None = None
    thread_ts: str | None = None

    @property
    def size(self) -> int:
        """Bytes actually uploaded."""
        return len(self.content)


@dataclass
class _Fault:
    status: int
    remaining: int
    retry_after: int | None
    error: str | None


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1", "yes")


def _ts_key(ts: Any) -> Decimal | None:
    try:
        return Decimal(str(ts))
    except (InvalidOperation, ValueError):
        return None


def _tz_offset(tz: str) -> int:
    try:
        offset = datetime.now(UTC).astimezone(ZoneInfo(tz)).utcoffset()
    except (ZoneInfoNotFoundError, ValueError):  # unknown zone, or no tzdata installed
        return 0
    return int(offset.total_seconds()) if offset is not None else 0


def _dedupe_key(metadata: dict[str, Any] | None) -> tuple[str, ...] | None:
    payload = (metadata or {}).get("event_payload")
    if not isinstance(payload, dict):
        return None
    if payload.get("outbox_id") is not None:
        return ("outbox_id", str(payload["outbox_id"]))
    if payload.get("lead_id") is not None and payload.get("kind") is not None:
        return ("lead_id+kind", str(payload["lead_id"]), str(payload["kind"]))
    return None


class FakeSlack(RecordingServer["Call"]):
    """Fake Slack Web API. See the module docstring for scope.

    Settable by tests at any time: :attr:`users`, :attr:`channel_not_found`,
    :attr:`rate_limit_per_channel`, :attr:`latency`.
    """

    def __init__(self, *, port: int = 0, latency: float = 0.0, ts_start: int | None = None) -> None:
        super().__init__(port=port, latency=latency)
        #: user directory: ``{"U0ANA00001": {"email": ..., "tz": ..., "name": ...}}``
        self.users: dict[str, dict[str, Any]] = {}
        #: channels where chat.* / conversations.history fail with ``channel_not_found``
        self.channel_not_found: set[str] = set()
        #: accepted chat.postMessage per second per channel (None = unlimited)
        self.rate_limit_per_channel: float | None = None
        self._ts_counter = itertools.count(1)
        self._ts_start = int(time.time()) if ts_start is None else ts_start
        self._ids = itertools.count(1)
        self._messages: dict[str, list[SlackMessage]] = defaultdict(list)
        self._by_ts: dict[tuple[str, str], SlackMessage] = {}
        self._posts: list[SlackMessage] = []
        self._ephemerals: list[EphemeralMessage] = []
        self._views: list[ViewRecord] = []
        self._home_views: dict[str, dict[str, Any]] = {}
        self._files: dict[str, UploadedFile] = {}
        self._dms: dict[str, str] = {}
        self._faults: dict[str, list[_Fault]] = defaultdict(list)
        self._revoked: dict[str, str] = {}
        self._last_accepted_post: dict[str, float] = {}
        self._seen_keys: dict[str, set[tuple[str, ...]]] = defaultdict(set)
        self._duplicates: list[tuple[str, str, tuple[str, ...]]] = []
        self._counts: dict[str, int] = defaultdict(int)
        self._per_channel: dict[str, int] = defaultdict(int)
        self._methods: dict[str, Callable[[dict[str, Any]], _Reply]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "conversations.open": self._conversations_open,
            "conversations.history": self._conversations_history,
            "views.open": self._views_open,
            "views.push": self._views_open,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "users.info": self._users_info,
            "users.lookupByEmail": self._users_lookup_by_email,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
        }

    # -- public API -------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/api/`` - pass as ``base_url`` to slack_sdk clients."""
        return f"{self.root_url}/api/"

    def fail_next(
        self,
        method: str,
        status: int = 500,
        times: int = 1,
        retry_after: int | None = None,
        error: str | None = None,
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail.

        ``status=0`` drops the connection without a response; ``status=429`` answers
        ``{"ok": false, "error": "ratelimited"}`` with ``Retry-After`` (``retry_after``, default
        1); ``status=200`` needs ``error`` and answers ``{"ok": false, "error": error}``; any
        other status answers ``{"ok": false, "error": error or "internal_error"}``. Faults for
        the same method queue up in order. ``method="upload"`` targets the upload URL handed
        out by ``files.getUploadURLExternal`` (plain-text body).
        """
        if status == 200 and not error:
            raise ValueError("fail_next(status=200) needs an error code")
        if times < 1:
            raise ValueError("times must be >= 1")
        with self._lock:
            self._faults[method].append(_Fault(status, times, retry_after, error))

    def revoke(self, token: str, error: str = "invalid_auth") -> None:
        """Make every later call with ``token`` fail with ``error``."""
        with self._lock:
            self._revoked[token] = error

    def calls_to(self, method: str) -> list[Call]:
        """Recorded calls of one API method (e.g. ``"chat.postMessage"``)."""
        with self._lock:
            return [c for c in self._calls if c.method == method]

    def posts(self, channel: str | None = None) -> list[SlackMessage]:
        """Accepted chat.postMessage calls as posted (later edits not applied), in order."""
        with self._lock:
            return [replace(p) for p in self._posts if channel is None or p.channel == channel]

    @property
    def messages(self) -> defaultdict[str, list[SlackMessage]]:
        """Snapshot: channel -> current messages (oldest first), with edits applied."""
        with self._lock:
            return defaultdict(
                list, {ch: [replace(m) for m in msgs] for ch, msgs in self._messages.items()}
            )

    def message(self, channel: str, ts: str) -> SlackMessage | None:
        """Snapshot of one stored message, or None."""
        with self._lock:
            found = self._by_ts.get((channel, ts))
            return replace(found) if found is not None else None

    @property
    def ephemerals(self) -> list[EphemeralMessage]:
        with self._lock:
            return list(self._ephemerals)

    @property
    def views(self) -> list[ViewRecord]:
        """Successful views.open / push / update / publish calls, in order."""
        with self._lock:
            return list(self._views)

    @property
    def home_views(self) -> dict[str, dict[str, Any]]:
        """user id -> last view published with views.publish."""
        with self._lock:
            return dict(self._home_views)

    @property
    def files(self) -> dict[str, UploadedFile]:
        """file id -> file (content, channels it was shared to, ...)."""
        with self._lock:
            return {fid: replace(f, channels=list(f.channels)) for fid, f in self._files.items()}

    @property
    def dms(self) -> dict[str, str]:
        """user id -> DM channel id handed out by conversations.open."""
        with self._lock:
            return dict(self._dms)

    @property
    def duplicates(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """(channel, ts, dedupe key) of every accepted post counted in ``duplicate_posts``."""
        with self._lock:
            return list(self._duplicates)

    def stats(self) -> dict[str, Any]:
        """Counters: accepted_posts, rejected_429, rate_limited, injected_failures, updates,
        deletes, ephemerals, views, files_uploaded, calls, per_channel (accepted posts by
        channel) and duplicate_posts (see module docs; tests assert it is 0)."""
        with self._lock:
            return {
                "calls": len(self._calls),
                "accepted_posts": self._counts["accepted_posts"],
                "rejected_429": self._counts["rejected_429"],
                "rate_limited": len(self._rejected),
                "injected_failures": self._counts["injected_failures"],
                "updates": self._counts["updates"],
                "deletes": self._counts["deletes"],
                "ephemerals": len(self._ephemerals),
                "views": len(self._views),
                "files_uploaded": sum(1 for f in self._files.values() if f.completed),
                "per_channel": dict(self._per_channel),
                "duplicate_posts": len(self._duplicates),
            }

    # -- HTTP entry point -----------------------------------------------------------------
    def handle(self, request: FakeRequest) -> FakeResponse:
        path = request.path
        if path == "/_fake/stats":
            return json_response(200, self.stats())
        if path.startswith("/upload/"):
            return self._handle_upload(request, path[len("/upload/") :])
        if not path.startswith("/api/"):
            return json_response(404, {"ok": False, "error": "not_found"})
        method = path[len("/api/") :].strip("/")
        try:
            params = self._params(request)
        except ValueError:  # undecodable JSON body
            params = {"_raw_body": request.body.decode("utf-8", "replace")}
        with self._lock:
            if "_raw_body" in params:
                status, payload, headers = self._err("invalid_json")
            else:
                status, payload, headers = self._process(method, params, request)
            error = None if payload.get("ok", True) else str(payload.get("error"))
            call = Call(
                method=method,
                params=params,
                headers=request.headers,
                at=request.received_at,
                http_method=request.method,
                status=status,
                error=error,
            )
            self._calls.append(call)
            if status == 429:
                self._counts["rejected_429"] += 1
                if payload.get("_rate_limited"):
                    self._rejected.append(call)
            payload.pop("_rate_limited", None)
        if status == 0:
            return FakeResponse(status=0)
        return json_response(status, payload, headers)

    @staticmethod
    def _params(request: FakeRequest) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        ctype = request.content_type
        if ctype == "application/json" and request.body.strip():
            body = json.loads(request.body)
            if isinstance(body, dict):
                params.update(body)
        elif ctype == "application/x-www-form-urlencoded":
            params.update(parse_query(request.body.decode("utf-8", "replace")))
        elif ctype == "multipart/form-data":
            fields, files = parse_multipart(request.headers.get("content-type", ""), request.body)
            params.update(fields)
            params.update({name: data for name, data in files.items()})
        for key in _JSON_FIELDS & params.keys():
            value = params[key]
            if isinstance(value, str) and value.strip()[:1] in ("{", "["):
                try:
                    params[key] = json.loads(value)
                except ValueError:
                    pass
        return params

    def _process(self, method: str, params: dict[str, Any], request: FakeRequest) -> _Reply:
        fault = self._take_fault(method)
        if fault is not None:
            return fault
        auth = request.headers.get("authorization", "")
        token = auth[len("Bearer ") :].strip() if auth.startswith("Bearer ") else ""
        token = token or str(params.get("token") or "")
        if not token:
            return self._err("not_authed")
        if not token.startswith(("xoxb-", "xoxp-")):
            return self._err("invalid_auth")
        if token in self._revoked:
            return self._err(self._revoked[token])
        handler = self._methods.get(method)
        if handler is None:
            return self._err("unknown_method")
        if method in _METHODS_WITH_CHANNEL and str(params.get("channel")) in self.channel_not_found:
            return self._err("channel_not_found")
        return handler(params)

    def _take_fault(self, method: str) -> _Reply | None:
        queue = self._faults.get(method)
        if not queue:
            return None
        fault = queue[0]
        fault.remaining -= 1
        if fault.remaining <= 0:
            queue.pop(0)
        self._counts["injected_failures"] += 1
        if fault.status == 0:
            return (0, {}, {})
        if fault.status == 429:
            retry_after = 1 if fault.retry_after is None else fault.retry_after
            return (429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)})
        headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
        return (fault.status, {"ok": False, "error": fault.error or "internal_error"}, headers)

    @staticmethod
    def _ok(**fields: Any) -> _Reply:
        return (200, {"ok": True, **fields}, {})

    @staticmethod
    def _err(error: str, **fields: Any) -> _Reply:
        return (200, {"ok": False, "error": error, **fields}, {})

    def _next_ts(self) -> str:
        micros = next(self._ts_counter) * 100
        return f"{self._ts_start + micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _next_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):09d}"

    # -- methods ----------------------------------------------------------------------------
    def _auth_test(self, params: dict[str, Any]) -> _Reply:
        return self._ok(
            url=TEAM_URL,
            team=TEAM_NAME,
            user="slabot",
            team_id=TEAM_ID,
            user_id=BOT_USER_ID,
            bot_id=BOT_ID,
            app_id=APP_ID,
            is_enterprise_install=False,
        )

    def _chat_post_message(self, params: dict[str, Any]) -> _Reply:
        channel = str(params.get("channel") or "")
        if not channel:
            return self._err("channel_not_found")
        text = str(params.get("text") or "")
        blocks = params.get("blocks")
        attachments = params.get("attachments")
        if not text and not blocks and not attachments:
            return self._err("no_text")
        now = self.clock()
        rate = self.rate_limit_per_channel
        if rate:
            last = self._last_accepted_post.get(channel)
            if last is not None and now - last < 1.0 / rate:
                return (
                    429,
                    {"ok": False, "error": "ratelimited", "_rate_limited": True},
                    {"Retry-After": "1"},
                )
        metadata = params.get("metadata")
        thread_ts = params.get("thread_ts")
        message = SlackMessage(
            channel=channel,
            ts=self._next_ts(),
            text=text,
            blocks=blocks if isinstance(blocks, list) else None,
            attachments=attachments if isinstance(attachments, list) else None,
            metadata=metadata if isinstance(metadata, dict) else None,
            thread_ts=str(thread_ts) if thread_ts else None,
        )
        self._last_accepted_post[channel] = now
        self._messages[channel].append(message)
        self._by_ts[(channel, message.ts)] = message
        self._posts.append(replace(message))
        self._counts["accepted_posts"] += 1
        self._per_channel[channel] += 1
        if message.thread_ts:
            parent = self._by_ts.get((channel, message.thread_ts))
            if parent is not None:
                parent.reply_count += 1
        key = _dedupe_key(message.metadata)
        if key is not None:
            if key in self._seen_keys[channel]:
                self._duplicates.append((channel, message.ts, key))
            self._seen_keys[channel].add(key)
        return self._ok(channel=channel, ts=message.ts, message=message.to_api())

    def _chat_update(self, params: dict[str, Any]) -> _Reply:
        channel = str(params.get("channel") or "")
        message = self._by_ts.get((channel, str(params.get("ts") or "")))
        if message is None:
            return self._err("message_not_found")
        if "text" in params:
            message.text = str(params["text"] or "")
        if isinstance(params.get("blocks"), list):
            message.blocks = params["blocks"]
        if isinstance(params.get("attachments"), list):
            message.attachments = params["attachments"]
        if isinstance(params.get("metadata"), dict):
            message.metadata = params["metadata"]
        message.edits += 1
        message.edited_ts = self._next_ts()
        self._counts["updates"] += 1
        return self._ok(channel=channel, ts=message.ts, text=message.text, message=message.to_api())

    def _chat_delete(self, params: dict[str, Any]) -> _Reply:
        channel = str(params.get("channel") or "")
        ts = str(params.get("ts") or "")
        message = self._by_ts.pop((channel, ts), None)
        if message is None:
            return self._err("message_not_found")
        self._messages[channel].remove(message)
        self._counts["deletes"] += 1
        return self._ok(channel=channel, ts=ts)

    def _chat_post_ephemeral(self, params: dict[str, Any]) -> _Reply:
        channel = str(params.get("channel") or "")
        user = str(params.get("user") or "")
        if not channel:
            return self._err("channel_not_found")
        if not user:
            return self._err("user_not_found")
        blocks = params.get("blocks")
        text = str(params.get("text") or "")
        if not text and not blocks:
            return self._err("no_text")
        ts = self._next_ts()
        self._ephemerals.append(
            EphemeralMessage(
                channel=channel,
                user=user,
                message_ts=ts,
                text=text,
                blocks=blocks if isinstance(blocks, list) else None,
            )
        )
        return self._ok(message_ts=ts)

    def _conversations_open(self, params: dict[str, Any]) -> _Reply:
        if params.get("channel"):
            return self._ok(no_op=True, already_open=True, channel={"id": str(params["channel"])})
        raw_users = params.get("users")
        users = (
            [str(u) for u in raw_users]
            if isinstance(raw_users, list)
            else [u.strip() for u in str(raw_users or "").split(",") if u.strip()]
        )
        if not users:
            return self._err("users_list_not_supplied")
        if len(users) == 1:
            user = users[0]
            channel_id = "D" + (user[1:] if user.startswith(("U", "W")) else user).zfill(9)
            already_open = user in self._dms
            self._dms[user] = channel_id
        else:
            digest = hashlib.sha1(",".join(sorted(users)).encode()).hexdigest()[:9].upper()
            channel_id = "G" + digest
            already_open = False
        return self._ok(no_op=already_open, already_open=already_open, channel={"id": channel_id})

    def _conversations_history(self, params: dict[str, Any]) -> _Reply:
        channel = str(params.get("channel") or "")
        if not channel:
            return self._err("channel_not_found")
        include_metadata = _truthy(params.get("include_all_metadata"))
        inclusive = _truthy(params.get("inclusive"))
        oldest = _ts_key(params["oldest"]) if params.get("oldest") else None
        latest = _ts_key(params["latest"]) if params.get("latest") else None
        try:
            limit = max(1, min(int(params.get("limit") or 100), 999))
            offset = int(params.get("cursor") or 0)
        except ValueError:
            return self._err("invalid_arguments")
        selected: list[SlackMessage] = []
        for message in reversed(self._messages.get(channel, [])):
            if message.thread_ts and message.thread_ts != message.ts:
                continue  # thread replies are not part of the channel history
            key = Decimal(message.ts)
            if oldest is not None and (key < oldest or (key == oldest and not inclusive)):
                continue
            if latest is not None and (key > latest or (key == latest and not inclusive)):
                continue
            selected.append(message)
        page = selected[offset : offset + limit]
        has_more = offset + limit < len(selected)
        return self._ok(
            messages=[m.to_api(include_metadata=include_metadata) for m in page],
            has_more=has_more,
            pin_count=0,
            response_metadata={"next_cursor": str(offset + limit) if has_more else ""},
        )

    def _view_object(self, view: dict[str, Any], view_id: str) -> dict[str, Any]:
        return {
            "type": "modal",
            "blocks": [],
            "private_metadata": "",
            "callback_id": "",
            "external_id": "",
            "state": {"values": {}},
            "clear_on_close": False,
            "notify_on_close": False,
            "previous_view_id": None,
            **view,
            "id": view_id,
            "team_id": TEAM_ID,
            "app_id": APP_ID,
            "app_installed_team_id": TEAM_ID,
            "bot_id": BOT_ID,
            "root_view_id": view_id,
            "hash": f"{int(time.time())}.{view_id.lower()}",
        }

    def _record_view(self, method: str, params: dict[str, Any], view_id: str) -> _Reply:
        view = params.get("view")
        if not isinstance(view, dict):
            return self._err("invalid_arguments")
        self._views.append(
            ViewRecord(
                method=method,
                view_id=view_id,
                view=view,
                trigger_id=str(params["trigger_id"]) if params.get("trigger_id") else None,
                user_id=str(params["user_id"]) if params.get("user_id") else None,
            )
        )
        return self._ok(view=self._view_object(view, view_id))

    def _views_open(self, params: dict[str, Any]) -> _Reply:
        if not params.get("trigger_id") and not params.get("interactivity_pointer"):
            return self._err("invalid_arguments")
        return self._record_view("views.open", params, self._next_id("V"))

    def _views_update(self, params: dict[str, Any]) -> _Reply:
        if params.get("view_id"):
            view_id = str(params["view_id"])  # unknown ids are accepted (lenient on purpose)
        elif params.get("external_id"):
            view_id = "V" + hashlib.sha1(str(params["external_id"]).encode()).hexdigest()[:9]
        else:
            return self._err("invalid_arguments")
        return self._record_view("views.update", params, view_id)

    def _views_publish(self, params: dict[str, Any]) -> _Reply:
        user_id = str(params.get("user_id") or "")
        if not user_id:
            return self._err("invalid_arguments")
        reply = self._record_view("views.publish", params, self._next_id("V"))
        if reply[1].get("ok"):
            self._home_views[user_id] = params["view"]
        return reply

    def _user_object(self, user_id: str, entry: dict[str, Any]) -> dict[str, Any]:
        name = str(entry.get("name") or user_id.lower())
        real_name = str(entry.get("real_name") or name)
        tz = str(entry.get("tz") or "UTC")
        extra = {k: v for k, v in entry.items() if k not in ("email", "profile")}
        profile = {"real_name": real_name, "display_name": name, **entry.get("profile", {})}
        if entry.get("email"):
            profile["email"] = entry["email"]
        return {
            "id": user_id,
            "team_id": TEAM_ID,
            "name": name,
            "real_name": real_name,
            "deleted": False,
            "is_bot": False,
            "is_admin": False,
            "tz": tz,
            "tz_label": tz,
            "tz_offset": _tz_offset(tz),
            **extra,
            "profile": profile,
        }

    def _users_info(self, params: dict[str, Any]) -> _Reply:
        user_id = str(params.get("user") or "")
        entry = self.users.get(user_id)
        if entry is None:
            return self._err("user_not_found")
        return self._ok(user=self._user_object(user_id, entry))

    def _users_lookup_by_email(self, params: dict[str, Any]) -> _Reply:
        email = str(params.get("email") or "").lower()
        for user_id, entry in self.users.items():
            if email and str(entry.get("email") or "").lower() == email:
                return self._ok(user=self._user_object(user_id, entry))
        return self._err("users_not_found")

    def _files_get_upload_url(self, params: dict[str, Any]) -> _Reply:
        filename = str(params.get("filename") or "")
        try:
            length = int(params.get("length") or 0)
        except ValueError:
            length = 0
        if not filename or length <= 0:
            return self._err("invalid_arguments")
        file_id = self._next_id("F")
        self._files[file_id] = UploadedFile(id=file_id, filename=filename, length=length)
        return self._ok(upload_url=f"{self.root_url}/upload/{file_id}", file_id=file_id)

    def _files_complete_upload(self, params: dict[str, Any]) -> _Reply:
        entries = params.get("files")
        if not isinstance(entries, list) or not entries:
            return self._err("invalid_arguments")
        channels: list[str] = []
        if params.get("channel_id"):
            channels.append(str(params["channel_id"]))
        if params.get("channels"):
            channels.extend(c.strip() for c in str(params["channels"]).split(",") if c.strip())
        for channel in channels:
            if channel in self.channel_not_found:
                return self._err("channel_not_found")
        done: list[UploadedFile] = []
        for entry in entries:
            file = self._files.get(str(entry.get("id"))) if isinstance(entry, dict) else None
            if file is None or not file.uploaded:
                return self._err("file_not_found")
            done.append(file)
        out: list[dict[str, Any]] = []
        for file, entry in zip(done, entries, strict=True):
            file.completed = True
            file.title = str(entry.get("title") or file.filename)
            file.channels.extend(c for c in channels if c not in file.channels)
            file.initial_comment = params.get("initial_comment")
            file.thread_ts = params.get("thread_ts")
            out.append(
                {
                    "id": file.id,
                    "name": file.filename,
                    "title": file.title,
                    "size": file.size,
                    "user": BOT_USER_ID,
                    "channels": [c for c in file.channels if not c.startswith("D")],
                    "ims": [c for c in file.channels if c.startswith("D")],
                }
            )
        return self._ok(files=out)

    def _handle_upload(self, request: FakeRequest, file_id: str) -> FakeResponse:
        content = request.body
        if request.content_type == "multipart/form-data":
            _, parts = parse_multipart(request.headers.get("content-type", ""), request.body)
            content = next(iter(parts.values()), b"")
        with self._lock:
            fault = self._take_fault("upload")
            file = self._files.get(file_id.strip("/"))
            ok = fault is None and request.method in ("POST", "PUT") and file is not None
            if file is not None and ok:
                file.content = content
                file.uploaded = True
            status = fault[0] if fault is not None else 200 if ok else 404
            self._calls.append(
                Call(
                    method="upload",
                    params={"file_id": file_id, "size": len(content)},
                    headers=request.headers,
                    at=request.received_at,
                    http_method=request.method,
                    status=status,
                )
            )
        if status == 0:
            return FakeResponse(status=0)
        body = f"OK - {len(content)}" if ok else "Not Found" if status == 404 else "Error"
        return FakeResponse(status=status, body=body.encode(), content_type="text/plain")


def main(argv: list[str] | None = None) -> None:
    """Run the fake standalone: ``python -m tests.fakes.slack_api --port 0``.

    Prints the base URL; ``GET <root>/_fake/stats`` returns :meth:`FakeSlack.stats` as JSON.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rate-limit-per-channel", type=float, default=None)
    args = parser.parse_args(argv)
    with FakeSlack(port=args.port) as fake:
        fake.rate_limit_per_channel = args.rate_limit_per_channel
        serve_forever(fake.base_url)


if __name__ == "__main__":
    main()
