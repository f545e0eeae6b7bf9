"""`SLABOT_SMTP_URL` read into its parts: `smtp://[user:password@]host[:port]` (STARTTLS when the
server offers it, port 587 unless given) or `smtps://...` (TLS from the first byte, port 465).
User and password are URL-decoded (a password with `@` or `/` is written `%40`, `%2F`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

__all__ = ["SmtpServer", "parse_smtp_url"]

DEFAULT_PORTS = {"smtp": 587, "smtps": 465}


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    #: smtps: TLS from the start; smtp: STARTTLS when the server offers it.
    implicit_tls: bool
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def parse_smtp_url(url: str) -> SmtpServer:
    """The server named by `url`; ValueError with a plain sentence (never the password) if it is not one."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise ValueError("SLABOT_SMTP_URL is not a URL like smtp://user:password@host:587 "
                         "(a port must be a number)") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError("SLABOT_SMTP_URL must start with smtp:// (STARTTLS when offered) or smtps:// "
                         "(implicit TLS)")
    if not parts.hostname:
        raise ValueError("SLABOT_SMTP_URL names no host: smtp://[user:password@]host[:port]")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("SLABOT_SMTP_URL takes no path or query: smtp://[user:password@]host[:port]")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if password is not None and not username:
        raise ValueError("SLABOT_SMTP_URL has a password but no user name")
    return SmtpServer(host=parts.hostname, port=port or DEFAULT_PORTS[scheme], implicit_tls=scheme == "smtps",
                      username=username, password=password)
