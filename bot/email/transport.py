"""The outbox's e-mail transport: delivers `digest` rows of platform "email" over SMTP.

smtplib (the standard library) in a worker thread rather than an async client library: a digest
is one message per recipient per day, so a thread per send costs nothing, and the standard library
already does STARTTLS, implicit TLS and AUTH with no new runtime dependency.

Failures map onto the outbox's retry rules (bot.worker.delivery): a 4xx reply or a connection problem
is retried with backoff; a 5xx reply (recipient or sender refused, authentication failed) and a
certificate that does not verify are permanent, so the row is parked as dead after a few tries.
Error texts never carry an address (servers quote them in their replies). SMTP cannot tell
whether an earlier attempt got through, so after a crash between the server's "250" and the
outbox's bookkeeping the digest may be sent again, with the same Message-ID.
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import anyio

from bot.email.render import digest_email
from bot.email.smtp_url import SmtpServer, parse_smtp_url
from bot.presentation.cards import Card
from bot.worker.delivery import Posted, TransportError

__all__ = ["EmailTransport"]

log = logging.getLogger("slabot.email")

PLATFORM = "email"
#: Seconds to wait for the SMTP server at each step.
TIMEOUT_S = 30.0
_ADDRESS = re.compile(r"[^\s<>()\[\]\"',;:]+@[^\s<>()\[\]\"',;:]+")


def _scrub(text: str) -> str:
    """A server's reply without the addresses it quotes, short."""
    return _ADDRESS.sub("[address]", " ".join(text.split()))[:200]


def _reply(code: int, text: bytes | str) -> TransportError:
    words = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    permanent = 500 <= code < 600
    return TransportError(f"SMTP {code} ({'permanent' if permanent else 'temporary'}): {_scrub(words)}",
                          permanent=permanent)


class EmailTransport:
    """One SMTP server, as bot.worker.delivery's Transport. `ssl_context` defaults to the system's trusted
    certificates with verification on; tests inject one that trusts their own certificate."""

    platform = PLATFORM

    def __init__(self, server: SmtpServer, sender: str, *, ssl_context: ssl.SSLContext | None = None,
                 timeout: float = TIMEOUT_S, now: Any = None) -> None:
        self.server = server
        self.sender = sender
        self.ssl_context = ssl_context or ssl.create_default_context()
        self.timeout = timeout
        self._now = now or (lambda: datetime.now(UTC))

    @classmethod
    def from_url(cls, url: str, sender: str, **kwargs: Any) -> EmailTransport:
        return cls(parse_smtp_url(url), sender, **kwargs)

    def min_interval(self, kind: str) -> float:
        return 0.0          # one lane per address, one digest a day: no pacing needed

    async def post_card(self, channel: str, card: Card, *, outbox_id: int) -> Posted:
        raise TransportError("lead cards are not sent by e-mail", permanent=True)

    async def update_card(self, ref: Posted, card: Card) -> None:
        raise TransportError("lead cards are not sent by e-mail", permanent=True)

    async def find_posted(self, channel: str, *, outbox_id: int, since: datetime) -> Posted | None:
        return None         # SMTP cannot tell whether an earlier attempt was delivered

    async def send_message(self, kind: str, target: str, payload: dict[str, Any], *,
                           outbox_id: int) -> Posted | None:
        if kind != "digest":
            raise TransportError(f"{kind} messages are not sent by e-mail", permanent=True)
        message = digest_email(payload, sender=self.sender, recipient=target, outbox_id=outbox_id,
                               now=self._now())
        await anyio.to_thread.run_sync(self._send, message, target)
        log.info("e-mail digest sent (outbox %s)", outbox_id)
        return Posted(channel=PLATFORM, message_id=str(message["Message-ID"]))

    def _send(self, message: EmailMessage, recipient: str) -> None:
        try:
            self._transact(message, recipient)
        except TransportError:
            raise
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = min(exc.recipients.values(), key=lambda reply: reply[0])
            raise _reply(code, text) from None
        except smtplib.SMTPResponseException as exc:    # sender refused, data refused, auth failed, 421
            raise _reply(exc.smtp_code, exc.smtp_error) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise TransportError(f"the SMTP server does not support this: {_scrub(str(exc))}",
                                 permanent=True) from None
        except ssl.SSLCertVerificationError as exc:
            raise TransportError(f"the SMTP server's certificate does not verify: {exc.verify_message}",
                                 permanent=True) from None
        except (smtplib.SMTPException, OSError) as exc:  # disconnected, refused, timed out, TLS hiccup
            raise TransportError(f"cannot reach the SMTP server: {type(exc).__name__}: "
                                 f"{_scrub(str(exc))}") from None

    def _transact(self, message: EmailMessage, recipient: str) -> None:
        server = self.server
        smtp: smtplib.SMTP
        if server.implicit_tls:
            smtp = smtplib.SMTP_SSL(server.host, server.port, timeout=self.timeout, context=self.ssl_context)
        else:
            smtp = smtplib.SMTP(server.host, server.port, timeout=self.timeout)
        with smtp:
            smtp.ehlo()
            if not server.implicit_tls:
                if smtp.has_extn("starttls"):
                    smtp.starttls(context=self.ssl_context)
                    smtp.ehlo()
                elif server.username:
                    raise TransportError("the SMTP server offers no STARTTLS: the credentials are not sent "
                                         "in clear text (use smtps:// or a server with STARTTLS)",
                                         permanent=True)
            if server.username:
                smtp.login(server.username, server.password or "")
            smtp.send_message(message, from_addr=self.sender, to_addrs=[recipient])
