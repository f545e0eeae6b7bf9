"""The digest by e-mail (issue 12 item 4) against a real SMTP server on 127.0.0.1 (aiosmtpd): once per
recipient per local day through the outbox (ticks replayed, a restarted service), multipart with
the chart inline and a plain-text part, the same numbers as the chat digest, STARTTLS with a
certificate the client is told to trust (and refuses when it is not), implicit TLS, credentials,
4xx retried, 5xx parked, no addresses in logs, and what `slabot check` and `slabot serve` refuse."""

from __future__ import annotations

import base64
import datetime as dt
import email
import email.policy
import html
import ipaddress
import logging
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SmtpServerProtocol
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlmodel import col, select

from bot.demo.console import ConsoleTransport
from bot.email.smtp_url import parse_smtp_url
from bot.email.transport import EmailTransport
from bot.http.app import create_app
from bot.services import Services, build_services
from bot.settings import email_problem
from bot.worker.delivery import PERMANENT_ATTEMPTS
from bot.worker.tick import tick
from sla.agreement import Agreement, AgreementError, parse_agreement
from sla.clock import FixedClock, as_utc
from storage.db import Database
from storage.tables import OutboxMessage
from tests.conftest import EXAMPLE_AGREEMENT, free_port, make_settings
from tests.integration.test_engine import lead_in, local, route

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SENDER = "slabot@acme.example"
VP_LINE = '  - {to: [marketing_vp, sales_vp], at: "08:30", days: [mon, tue, wed, thu, fri]}'
#: Who gets the e-mail, and their chat target on the console platform (the same digest by chat).
EMAILS = {"maya@acme.example": "Maya Lin", "sam@acme.example": "Sam Ortiz",
          "priya@acme.example": "Priya Shah", "diego@acme.example": "Diego Alvarez"}


def agreement_text(digest_line: str) -> str:
    text = EXAMPLE_AGREEMENT.read_text(encoding="utf-8")
    assert VP_LINE in text
    return text.replace(VP_LINE, digest_line)


@pytest.fixture(scope="module")
def mail_agreement() -> Agreement:
    return parse_agreement(agreement_text(
        '  - {to: [marketing_vp, sales_vp, managers], at: "08:30", days: [mon, tue, wed, thu, fri], '
        "via: [chat, email]}"))


# --- a local SMTP server -------------------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    tls: bool
    authenticated: bool


@dataclass
class Inbox:
    """aiosmtpd's handler: keeps every message; `replies[address]` answers the next DATA commands to
    that address instead of 250."""

    received: list[Received] = field(default_factory=list)
    replies: dict[str, list[str]] = field(default_factory=dict)
    logins: list[tuple[bytes, bytes]] = field(default_factory=list)

    async def handle_DATA(self, server: SmtpServerProtocol, session: Session, envelope: Envelope) -> str:
        waiting = [reply for to in envelope.rcpt_tos for reply in self.replies.get(to, [])[:1]]
        if waiting:
            self.replies[envelope.rcpt_tos[0]].pop(0)
            return waiting[0]
        content = envelope.original_content or b""
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.received.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), message,
                                      session.ssl is not None, bool(session.authenticated)))
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [r.message for r in self.received if r.rcpt_tos == [address]]


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    handler = Inbox()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


@dataclass
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        """Trusts this certificate only (verification on, host name checked)."""
        return ssl.create_default_context(cafile=str(self.cert))


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1, made here (nothing committed)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=7))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                       serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    return Certificate(folder / "cert.pem", folder / "key.pem")


def mail_services(db: Database, agreement: Agreement, clock: FixedClock, smtp_url: str) -> Services:
    """The service as `slabot serve` builds it: console chat plus e-mail, transports from settings."""
    settings = make_settings(database_url=db.url, console=True, slabot_smtp_url=smtp_url, slabot_smtp_from=SENDER)
    services = build_services(settings, clock=clock, agreement=agreement, db=db)
    create_app(services)
    assert isinstance(services.transports["email"], EmailTransport)
    return services


def email_rows(db: Database) -> list[OutboxMessage]:
    with db.read() as session:
        return list(session.execute(select(OutboxMessage).where(col(OutboxMessage.platform) == "email")
                                    .order_by(col(OutboxMessage.id))).scalars())


def parts(message: EmailMessage) -> dict[str, Any]:
    """The e-mail's structure: its plain text, its HTML, the inline images by Content-ID."""
    assert message.get_content_type() == "multipart/alternative"
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None and html is not None
    images = {str(p["Content-ID"]).strip("<>"): p.get_content() for p in message.walk()
              if p.get_content_type() == "image/png"}
    related = [p for p in message.walk() if p.get_content_type() == "multipart/related"]
    # SMTP carries CRLF line ends; compare text as written.
    return {"plain": plain.get_content().replace("\r\n", "\n"), "html": html.get_content().replace("\r\n", "\n"),
            "images": images, "related": related}


# --- once per recipient per day, the same numbers as chat ----------------------------------------


async def test_one_email_per_recipient_per_local_day_with_the_chat_digests_numbers(
        db: Database, mail_agreement: Agreement, clock: FixedClock, inbox: tuple[Inbox, int]) -> None:
    handler, port = inbox
    services = mail_services(db, mail_agreement, clock, f"smtp://127.0.0.1:{port}")
    for hour in (10, 11):       # numbers worth comparing: two workable leads on Monday
        route(services.ctx, clock, local(2026, 11, 23, hour, 0), lead_in(f"Lead {hour}"))
    assert (await tick(services, now=local(2026, 11, 24, 8, 29))).digests == []      # cards only
    assert handler.received == []
    first = await tick(services, now=local(2026, 11, 24, 8, 31))
    assert {k for k in first.digests if ":email:" in k} == {
        f"digest:{key}:email:2026-11-24" for key in ("marketing_vp", "sales_vp", "manager:smb", "manager:midmarket")}
    await tick(services, now=local(2026, 11, 24, 8, 45))                       # a second tick
    # A restart: new services, new worker, same database; later the same day.
    again = mail_services(db, mail_agreement, clock, f"smtp://127.0.0.1:{port}")
    later = await tick(again, now=local(2026, 11, 24, 14, 0))
    assert later.digests and not [key for key in later.digests if ":email:" in key]   # chat's 09:00 ones only
    assert sorted(r.rcpt_tos[0] for r in handler.received) == sorted(EMAILS)
    assert all(r.mail_from == SENDER and not r.tls and not r.authenticated for r in handler.received)
    assert {row.status for row in email_rows(db)} == {"done"}

    # Chat still gets its digest (via: [chat, email]), and the e-mail carries the same numbers.
    console = services.transports["console"]
    assert isinstance(console, ConsoleTransport)
    chat = {target: payload for kind, target, payload in console.posted if kind == "digest"}
    assert set(chat) == set(EMAILS.values())
    for address, chat_target in EMAILS.items():
        [message] = handler.to(address)
        chat_payload = chat[chat_target]
        assert message["Subject"] == chat_payload["title"]
        assert message["To"] == address and message["From"] == SENDER
        body = parts(message)
        assert body["plain"].startswith(chat_payload["text"])
        if chat_target in ("Maya Lin", "Sam Ortiz"):
            assert "Workable leads this month: 2 of a" in body["plain"]
        shown = html.unescape(body["html"])
        for section in chat_payload["sections"]:
            assert f">{section['heading']}</h2>" in shown
            for line in section["lines"]:
                assert f"<li>{line}</li>" in shown
        assert f'"{mail_agreement.name}"' in body["plain"] and "You get this e-mail because" in body["html"]
        assert "unsubscribe" not in (body["plain"] + body["html"]).lower()

    # Team-scoped for a manager, company-wide for a VP (the digest's own scopes).
    assert "Mid-Market" in handler.to("diego@acme.example")[0]["Subject"]
    assert "the manager of Mid-Market" in parts(handler.to("diego@acme.example")[0])["plain"]
    assert "its Marketing VP" in parts(handler.to("maya@acme.example")[0])["plain"]

    # The next day: one more each.
    await tick(again, now=local(2026, 11, 25, 8, 40))
    assert sorted(r.rcpt_tos[0] for r in handler.received) == sorted(list(EMAILS) * 2)


async def test_the_chart_is_inline_in_the_html_by_content_id(
        db: Database, mail_agreement: Agreement, clock: FixedClock, inbox: tuple[Inbox, int]) -> None:
    handler, port = inbox
    services = mail_services(db, mail_agreement, clock, f"smtp://127.0.0.1:{port}")
    await tick(services, now=local(2026, 11, 24, 8, 31))
    [message] = handler.to("maya@acme.example")
    body = parts(message)
    [(cid, png)] = body["images"].items()
    assert png[:8] == PNG_MAGIC and len(png) > 1000
    assert f'src="cid:{cid}"' in body["html"] and 'alt="Chart: ' in body["html"]
    # The image lives with the HTML in multipart/related, not as an attachment beside the text.
    [related] = body["related"]
    assert [p.get_content_type() for p in related.iter_parts()] == ["text/html", "image/png"]
    assert message["Auto-Submitted"] == "auto-generated"
    console = services.transports["console"]
    assert isinstance(console, ConsoleTransport)
    [chat] = [p for kind, target, p in console.posted if kind == "digest" and target == "Maya Lin"]
    assert png == base64.b64decode(chat["chart_png_b64"])       # the chat digest's own chart


# --- TLS and credentials -------------------------------------------------------------------------


PASSWORD = "p@ss/w:rd %"


def tls_server(handler: Inbox, port: int, certificate: Certificate, *, implicit: bool) -> Controller:
    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        handler.logins.append((auth_data.login, auth_data.password))
        ok = auth_data.login == b"digest@acme" and auth_data.password == PASSWORD.encode()
        return AuthResult(success=ok, handled=False)

    if implicit:
        return Controller(handler, hostname="127.0.0.1", port=port, ssl_context=certificate.server_context(),
                          authenticator=authenticate, auth_require_tls=False)
    return Controller(handler, hostname="127.0.0.1", port=port, tls_context=certificate.server_context(),
                      require_starttls=True, authenticator=authenticate, auth_require_tls=True)


@pytest.mark.parametrize("scheme", ["smtp", "smtps"])
async def test_tls_with_a_trusted_certificate_and_url_encoded_credentials(
        db: Database, mail_agreement: Agreement, clock: FixedClock, certificate: Certificate, scheme: str) -> None:
    handler = Inbox()
    port = free_port()
    controller = tls_server(handler, port, certificate, implicit=scheme == "smtps")
    controller.start()
    try:
        url = f"{scheme}://digest%40acme:p%40ss%2Fw%3Ard%20%25@127.0.0.1:{port}"
        services = mail_services(db, mail_agreement, clock, url)
        # The product trusts the system's CAs; the test tells the client to trust its own certificate.
        services.transports["email"] = EmailTransport.from_url(url, SENDER, ssl_context=certificate.client_context(),
                                                               now=services.ctx.now)
        await tick(services, now=local(2026, 11, 24, 8, 31))
    finally:
        controller.stop()
    assert sorted(r.rcpt_tos[0] for r in handler.received) == sorted(EMAILS)
    assert handler.logins and set(handler.logins) == {(b"digest@acme", PASSWORD.encode())}
    assert all(r.authenticated for r in handler.received)
    if scheme == "smtp":
        assert all(r.tls for r in handler.received)          # STARTTLS before AUTH and DATA


async def test_an_untrusted_certificate_is_refused_and_nothing_is_sent(
        db: Database, mail_agreement: Agreement, clock: FixedClock, certificate: Certificate) -> None:
    handler = Inbox()
    port = free_port()
    controller = tls_server(handler, port, certificate, implicit=False)
    controller.start()
    try:
        services = mail_services(db, mail_agreement, clock, f"smtp://digest%40acme:x@127.0.0.1:{port}")
        report = await tick(services, now=local(2026, 11, 24, 8, 31))
    finally:
        controller.stop()
    assert handler.received == [] and handler.logins == []
    assert report.delivered.retried == len(EMAILS)
    assert all("certificate does not verify" in (row.last_error or "") for row in email_rows(db))


# --- failures ------------------------------------------------------------------------------------


async def test_a_4xx_is_retried_with_backoff_and_sent_once(
        db: Database, mail_agreement: Agreement, clock: FixedClock, inbox: tuple[Inbox, int]) -> None:
    handler, port = inbox
    handler.replies = {"maya@acme.example": ["451 4.3.0 <maya@acme.example> mailbox busy, try again later"]}
    services = mail_services(db, mail_agreement, clock, f"smtp://127.0.0.1:{port}")
    report = await tick(services, now=local(2026, 11, 24, 8, 31))
    assert report.delivered.retried == 1 and len(handler.received) == len(EMAILS) - 1
    [waiting] = [row for row in email_rows(db) if row.status == "pending"]
    assert waiting.attempts == 1 and "SMTP 451 (temporary)" in (waiting.last_error or "")
    assert "@" not in (waiting.last_error or "")
    assert as_utc(waiting.next_attempt_at) > local(2026, 11, 24, 8, 31)
    # Not before its backoff: a tick at the same instant sends nothing new.
    await tick(services, now=local(2026, 11, 24, 8, 31))
    assert len(handler.received) == len(EMAILS) - 1
    await tick(services, now=local(2026, 11, 24, 8, 40))
    assert sorted(r.rcpt_tos[0] for r in handler.received) == sorted(EMAILS)
    assert {row.status for row in email_rows(db)} == {"done"}


async def test_a_5xx_is_parked_as_dead_and_no_address_reaches_the_logs(
        db: Database, mail_agreement: Agreement, clock: FixedClock, inbox: tuple[Inbox, int],
        caplog: pytest.LogCaptureFixture) -> None:
    handler, port = inbox
    handler.replies = {"maya@acme.example": ["550 5.1.1 <maya@acme.example>: no such user"] * PERMANENT_ATTEMPTS}
    services = mail_services(db, mail_agreement, clock, f"smtp://127.0.0.1:{port}")
    caplog.set_level(logging.DEBUG)
    for minute in range(31, 31 + 10 * PERMANENT_ATTEMPTS, 10):
        await tick(services, now=local(2026, 11, 24, 8, minute))
    rows = {row.target: row for row in email_rows(db)}
    dead = [row for row in rows.values() if row.status == "dead"]
    assert len(dead) == 1 and dead[0].attempts == PERMANENT_ATTEMPTS
    assert "SMTP 550 (permanent)" in (dead[0].last_error or "") and "@" not in (dead[0].last_error or "")
    assert len(handler.received) == len(EMAILS) - 1
    ours = "\n".join(record.getMessage() for record in caplog.records if record.name.startswith("slabot"))
    assert "parked as dead" in ours and "SMTP 550" in ours
    assert "acme.example" not in ours


# --- the agreement and the start checks ----------------------------------------------------------


@pytest.mark.parametrize(("line", "words"), [
    ('  - {to: [marketing_vp], at: "08:30", via: [fax]}', "digests[0].via"),
    ('  - {to: [team_channels], at: "08:30", via: [email]}', "team_channels cannot get e-mail"),
    ('  - {to: [marketing_vp], at: "08:30", via: []}', "digests[0].via"),
], ids=["unknown-channel", "team-channels", "empty"])
def test_the_agreement_refuses_e_mail_it_cannot_send(line: str, words: str) -> None:
    with pytest.raises(AgreementError) as raised:
        parse_agreement(agreement_text(line))
    assert any(words in f"{p.path}: {p.message}" for p in raised.value.problems), raised.value.problems


def test_slabot_check_names_a_recipient_without_an_address(tmp_path: Path) -> None:
    text = agreement_text('  - {to: [sales_vp, managers], at: "08:30", via: [chat, email]}')
    text = text.replace("Sam Ortiz, email: sam@acme.example,", "Sam Ortiz,")
    text = text.replace("Diego Alvarez, email: diego@acme.example,", "Diego Alvarez,")
    path = tmp_path / "agreement.yaml"
    path.write_text(text, encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "bot.cli", "check", str(path)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "sends e-mail to sales_vp but people.sales_vp has no email" in result.stderr
    assert "the manager of team midmarket has no email" in result.stderr
    assert "team smb" not in result.stderr
    ok = tmp_path / "ok.yaml"
    ok.write_text(agreement_text('  - {to: [sales_vp], at: "08:30", via: [email]}'), encoding="utf-8")
    assert subprocess.run([sys.executable, "-m", "bot.cli", "check", str(ok)], capture_output=True,
                          text=True, timeout=60).returncode == 0


def test_an_agreement_that_e_mails_needs_an_smtp_server(mail_agreement: Agreement, agreement: Agreement) -> None:
    problem = email_problem(make_settings(), mail_agreement)
    assert problem is not None and "SLABOT_SMTP_URL is not set" in problem
    assert email_problem(make_settings(slabot_smtp_url="smtp://127.0.0.1:2525", slabot_smtp_from=SENDER),
                         mail_agreement) is None
    assert email_problem(make_settings(), agreement) is None          # chat only: nothing needed


def test_serve_refuses_to_start_in_one_line_without_an_smtp_server(tmp_path: Path) -> None:
    from tests.e2e.test_operator import TOKEN, one_line_refusal, slabot

    path = tmp_path / "agreement.yaml"
    path.write_text(agreement_text('  - {to: [sales_vp], at: "08:30", via: [email]}'), encoding="utf-8")
    for command in ("serve", "worker"):
        result = slabot(tmp_path, command, SLABOT_INTAKE_TOKEN=TOKEN, SLABOT_AGREEMENT=str(path))
        one_line_refusal(result, f"slabot {command} will not start", "SLABOT_SMTP_URL is not set")


def test_slabot_digest_send_e_mails_without_any_chat_platform(tmp_path: Path, inbox: tuple[Inbox, int]) -> None:
    from tests.e2e.test_operator import one_line_refusal, slabot

    handler, port = inbox
    path = tmp_path / "agreement.yaml"
    path.write_text(agreement_text('  - {to: [marketing_vp, sales_vp], at: "08:30", via: [email]}'), encoding="utf-8")
    one_line_refusal(slabot(tmp_path, "digest", "--send", SLABOT_AGREEMENT=str(path)), "SLABOT_SMTP_URL is not set")
    env = {"SLABOT_AGREEMENT": str(path), "SLABOT_SMTP_URL": f"smtp://127.0.0.1:{port}", "SLABOT_SMTP_FROM": SENDER}
    first = slabot(tmp_path, "digest", "--send", "--now", "2026-11-24T13:31:00Z", **env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip().endswith("sent to 2 recipient(s)")
    again = slabot(tmp_path, "digest", "--send", "--now", "2026-11-24T19:00:00Z", **env)
    assert again.returncode == 0 and again.stdout.strip().endswith("already sent today"), again.stderr
    assert sorted(r.rcpt_tos[0] for r in handler.received) == ["maya@acme.example", "sam@acme.example"]


def test_smtp_urls() -> None:
    server = parse_smtp_url("smtp://user%40example.com:p%40ss%2Fword@mail.example.com")
    assert (server.host, server.port, server.implicit_tls) == ("mail.example.com", 587, False)
    assert (server.username, server.password) == ("user@example.com", "p@ss/word")
    assert "p@ss" not in repr(server)
    secure = parse_smtp_url("smtps://mail.example.com:2465")
    assert (secure.port, secure.implicit_tls, secure.username) == (2465, True, None)
    for bad, words in [("http://mail.example.com", "must start with smtp://"), ("smtp://", "names no host"),
                       ("smtp://mail.example.com:x", "a port must be a number"),
                       ("smtp://mail.example.com/inbox", "no path")]:
        with pytest.raises(ValueError, match=words):
            parse_smtp_url(bad)
