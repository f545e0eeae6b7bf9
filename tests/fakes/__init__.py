"""In-process fake HTTP services for slabot tests and benchmarks.

Fakes (import them from their modules):

* ``tests.fakes.slack_api.FakeSlack`` - the Slack Web API (``https://slack.com/api/``).
* ``tests.fakes.bot_connector.FakeBotConnector`` - the Bot Framework connector service that
  Teams activities name as ``serviceUrl``.
* ``tests.fakes.hubspot_api.FakeHubSpot`` - HubSpot's CRM API (contact and deal batch reads,
  deal-to-contact associations), with injectable 429s and outages.

This package module holds only the machinery both fakes share: a quiet, keep-alive capable
``ThreadingHTTPServer`` on ``127.0.0.1`` (ephemeral port by default) that runs in a background
daemon thread and hands every request to a ``handle`` method, plus small body-parsing helpers.

It does NOT implement TLS, HTTP/2, ``Expect: 100-continue`` or request pipelining beyond what
``http.server`` does, and it is not meant to be exposed beyond loopback.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Generic, Self, TypeVar
from urllib.parse import parse_qsl, urlsplit

__all__ = [
    "BackgroundHTTPServer",
    "FakeRequest",
    "FakeResponse",
    "RecordingServer",
    "json_response",
    "parse_multipart",
    "parse_query",
    "serve_forever",
]


@dataclass(frozen=True)
class FakeRequest:
    """One HTTP request as seen by a fake (headers lower-cased, body fully read)."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    received_at: float

    @property
    def path(self) -> str:
        """The raw (still percent-encoded) path, without the query string."""
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, str]:
        """Query-string parameters (last value wins)."""
        return parse_query(urlsplit(self.target).query)

    @property
    def content_type(self) -> str:
        """The media type of the body, lower-cased, without parameters."""
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()


@dataclass
class FakeResponse:
    """What a fake answers. ``status == 0`` means: close the socket without any response."""

    status: int
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> FakeResponse:
    """A JSON response with the given status."""
    return FakeResponse(
        status=status,
        body=json.dumps(payload, separators=(",", ":")).encode(),
        headers=dict(headers or {}),
    )


def parse_query(query: str) -> dict[str, str]:
    """Decode an ``application/x-www-form-urlencoded`` string (last value wins)."""
    return dict(parse_qsl(query, keep_blank_values=True))


def parse_multipart(
    content_type_header: str, body: bytes
) -> tuple[dict[str, str], dict[str, bytes]]:
    """Split a ``multipart/form-data`` body into (text fields, file parts by field name)."""
    raw = b"Content-Type: " + content_type_header.encode("latin-1") + b"\r\n\r\n" + body
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    fields: dict[str, str] = {}
    files: dict[str, bytes] = {}
    if not message.is_multipart():
        return fields, files
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if part.get_filename() is not None:
            files[name] = data
        else:
            fields[name] = data.decode(part.get_content_charset() or "utf-8", "replace")
    return fields, files


class _QuietThreadingServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], owner: BackgroundHTTPServer) -> None:
        self.owner = owner
        self.open_connections: set[socket.socket] = set()
        self.connections_opened = 0
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # resets, broken pipes, sockets closed by stop()
            return
        self.owner._record_server_error(traceback.format_exc())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _QuietThreadingServer
    timeout = 120  # idle keep-alive connections give up eventually
    disable_nagle_algorithm = True  # small responses must not wait for delayed ACKs
    wbufsize = 64 * 1024  # headers + body leave in one send() when flushed

    def log_message(self, format: str, *args: Any) -> None:
        return

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.open_connections.add(self.connection)
            self.server.connections_opened += 1

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.open_connections.discard(self.connection)
        super().finish()

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)  # CRLF after each chunk
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self) -> None:
        received_at = self.server.owner.clock()
        body = self._read_body()
        request = FakeRequest(
            method=self.command,
            target=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            received_at=received_at,
        )
        owner = self.server.owner
        try:
            response = owner.handle(request)
        except Exception:  # noqa: BLE001 - a bug in the fake must surface as a 500, not a hang
            owner._record_server_error(traceback.format_exc())
            response = json_response(500, {"ok": False, "error": "fake_internal_error"})
        if owner.latency > 0:
            time.sleep(owner.latency)
        if response.status == 0:
            self.close_connection = True
            return
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)
        self.wfile.flush()


class ManualClock:
    """A monotonic clock that moves only when told (`advance`), for a fake's `clock`."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class BackgroundHTTPServer:
    """Base class: an HTTP server on 127.0.0.1 served from a daemon thread.

    Subclasses implement :meth:`handle`. Use as a context manager (``with Fake() as fake:``)
    or call :meth:`start` / :meth:`stop`.
    """

    def __init__(self, *, port: int = 0, latency: float = 0.0) -> None:
        self.latency: float = latency
        #: The fake's clock for request times and rate limits: a test of a rate limit sets a manual one
        #: (tests.fakes.ManualClock), so "too fast" and "a window later" do not depend on the machine's load.
        self.clock: Callable[[], float] = time.monotonic
        self._requested_port = port
        self._httpd: _QuietThreadingServer | None = None
        self._thread: threading.Thread | None = None
        self._errors_lock = threading.Lock()
        self._server_errors: list[str] = []

    @property
    def connections(self) -> tuple[int, int]:
        """(TCP connections accepted so far, connections open now)."""
        httpd = self._httpd
        if httpd is None:
            return 0, 0
        with httpd.connections_lock:
            return httpd.connections_opened, len(httpd.open_connections)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> Self:
        """Bind and start serving; returns ``self``."""
        if self._httpd is not None:
            raise RuntimeError(f"{type(self).__name__} is already running")
        httpd = _QuietThreadingServer(("127.0.0.1", self._requested_port), self)
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=f"{type(self).__name__}-{httpd.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and cut every open (keep-alive) connection. Idempotent."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        httpd.shutdown()
        with httpd.connections_lock:
            connections = list(httpd.open_connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound TCP port (only while running)."""
        if self._httpd is None:
            raise RuntimeError(f"{type(self).__name__} is not running")
        return int(self._httpd.server_address[1])

    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def server_errors(self) -> list[str]:
        """Tracebacks of exceptions raised inside the fake itself (should stay empty)."""
        with self._errors_lock:
            return list(self._server_errors)

    def _record_server_error(self, text: str) -> None:
        with self._errors_lock:
            self._server_errors.append(text)

    def handle(self, request: FakeRequest) -> FakeResponse:
        """Answer one request. Runs on a server thread; must be thread-safe."""
        raise NotImplementedError


CallT = TypeVar("CallT")


class RecordingServer(BackgroundHTTPServer, Generic[CallT]):
    """A fake that records every call, and the calls its rate limit refused, under one lock."""

    def __init__(self, *, port: int = 0, latency: float = 0.0) -> None:
        super().__init__(port=port, latency=latency)
        self._lock = threading.RLock()
        self._calls: list[CallT] = []
        self._rejected: list[CallT] = []

    @property
    def calls(self) -> list[CallT]:
        """Every request so far, in processing order."""
        with self._lock:
            return list(self._calls)

    @property
    def rejected(self) -> list[CallT]:
        """Calls refused by the fake's rate limit."""
        with self._lock:
            return list(self._rejected)

    def reset_calls(self) -> None:
        """Forget recorded calls and rate-limit rejections (what the fake stored stays)."""
        with self._lock:
            self._calls.clear()
            self._rejected.clear()


def serve_forever(url: str) -> None:
    """Standalone mode: print the fake's URL for the caller, then serve until Ctrl-C or SIGTERM."""
    print(url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
