"""The desk's session cookie and CSRF checks.

The cookie holds who is signed in (a desk key such as `rep:ana`), a per-session CSRF token and
the last time it was used, as base64 JSON with an HMAC-SHA256 signature made with
`SLABOT_SECRET_KEY`. It is HttpOnly, SameSite=Lax, Secure when the public URL is https, and lapses
after 12 hours without a request (each request renews it). Every form POST must carry the
session's CSRF token and come from the desk's own origin (Origin, else Referer).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request, Response

COOKIE = "slabot_desk"
#: A session lapses after this long without a request.
IDLE_SECONDS = 12 * 3600


@dataclass
class DeskConfig:
    """How the desk runs in this app: its signing key, whether it is the demo (no sign-in, a person
    switcher), and the public URL (for Secure cookies and the origin check)."""

    secret: bytes | None
    public_url: str | None = None
    demo: bool = False
    #: Time source for the idle expiry (tests inject one); seconds since the epoch.
    clock: Any = field(default=time.time)
    #: How often an open overview fetches its numbers again.
    refresh_seconds: float = 30.0

    @property
    def secure(self) -> bool:
        return bool(self.public_url and self.public_url.lower().startswith("https://"))


@dataclass
class DeskSession:
    person: str
    csrf: str
    flash: str | None = None


def _sign(secret: bytes, body: bytes) -> str:
    return base64.urlsafe_b64encode(hmac.new(secret, body, hashlib.sha256).digest()).decode().rstrip("=")


def read(config: DeskConfig, request: Request) -> DeskSession | None:
    raw = request.cookies.get(COOKIE)
    if not raw or config.secret is None or "." not in raw:
        return None
    body_text, _, signature = raw.rpartition(".")
    if not hmac.compare_digest(_sign(config.secret, body_text.encode()), signature):
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(body_text + "=" * (-len(body_text) % 4)))
        person, csrf, seen = str(data["p"]), str(data["c"]), float(data["t"])
    except (ValueError, KeyError, TypeError):
        return None
    if config.clock() - seen > IDLE_SECONDS:
        return None
    flash = data.get("f")
    return DeskSession(person=person, csrf=csrf, flash=str(flash) if flash else None)


def write(config: DeskConfig, response: Response, session: DeskSession) -> None:
    """Set (or renew) the cookie; renewing restarts the idle expiry."""
    assert config.secret is not None
    data: dict[str, Any] = {"p": session.person, "c": session.csrf, "t": int(config.clock())}
    if session.flash:
        data["f"] = session.flash
    body = base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")
    response.set_cookie(COOKIE, f"{body}.{_sign(config.secret, body.encode())}", max_age=IDLE_SECONDS,
                        path="/desk", httponly=True, samesite="lax", secure=config.secure)


def start(config: DeskConfig, response: Response, person: str) -> DeskSession:
    session = DeskSession(person=person, csrf=secrets.token_urlsafe(24))
    write(config, response, session)
    return session


def end(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/desk")


def expected_origin(config: DeskConfig, request: Request) -> str:
    if config.public_url:
        parts = urlsplit(config.public_url)
        return f"{parts.scheme}://{parts.netloc}".lower()
    return f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}".lower()


def same_origin(config: DeskConfig, request: Request) -> bool:
    """The POST came from the desk's own pages: its Origin (else its Referer) is the desk's origin."""
    expected = expected_origin(config, request)
    origin = request.headers.get("origin")
    if origin and origin != "null":
        return origin.lower() == expected
    referer = request.headers.get("referer")
    if referer:
        parts = urlsplit(referer)
        return f"{parts.scheme}://{parts.netloc}".lower() == expected
    return False


def csrf_ok(session: DeskSession | None, token: str | None) -> bool:
    return session is not None and bool(token) and hmac.compare_digest(session.csrf, str(token))
