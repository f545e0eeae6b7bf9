"""What an operator sees: refusals at start, the start-up summary, JSON logs without personal data,
one-line errors, no work done without a chat platform, no digests in the night, CSV headers."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlmodel import col, select

from bot.http.app import create_app
from bot.logs import configure_logging, safe_database_url
from bot.services import build_services
from bot.settings import start_problems
from commands.context import Context
from commands.digest import queue_due_digests
from commands.intake import Handoff, handoff_many
from commands.sweep import sweep
from sla.agreement import Agreement
from sla.clock import FixedClock
from sla.lead import LeadIn
from storage.db import Database
from storage.tables import JobRun, Lead, LeadEvent, OutboxMessage
from tests.conftest import EXAMPLE_AGREEMENT, EXAMPLE_LEAD, free_port, make_settings
from tests.fakes.slack_api import FakeSlack
from tests.integration.test_engine import local

TOKEN = "an-intake-token-that-is-long-enough-0123456789"
#: Every variable that switches something on: cleared so the developer's environment never leaks in.
CLEARED = ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "SLACK_API_URL", "TEAMS_APP_ID",
           "TEAMS_APP_PASSWORD", "TEAMS_TENANT_ID", "TEAMS_ALLOW_UNAUTHENTICATED", "SLABOT_INTAKE_TOKEN",
           "SLABOT_LOG_FORMAT", "SLABOT_LOG_LEVEL", "SLABOT_PUBLIC_URL", "CONSOLE", "HUBSPOT_CLIENT_SECRET")


def environment(tmp_path: Path, **env: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in CLEARED}
    return {**base, "DATABASE_URL": f"sqlite:///{tmp_path / 'op.db'}", "SLABOT_AGREEMENT": str(EXAMPLE_AGREEMENT),
            **env}


def slabot(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], capture_output=True, text=True,
                          env=environment(tmp_path, **env), timeout=120, cwd=tmp_path)


def one_line_refusal(result: subprocess.CompletedProcess[str], *words: str) -> str:
    """The CLI's contract for a mistake: exit 2, exactly one line on stderr, no traceback."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("Error: "), lines[0]
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


class Served:
    """`slabot serve` or `worker` in its own process; stderr lines are collected as they come."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            try:
                line = self._queue.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"{text!r} never logged:\n" + "\n".join(self.lines)) from None
            if line is None:
                raise AssertionError(f"exited before {text!r}:\n" + "\n".join(self.lines))
            self.lines.append(line)

    def stop(self) -> list[str]:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)
        while (line := self._queue.get(timeout=10)) is not None:
            self.lines.append(line)
        return self.lines


@contextmanager
def running(tmp_path: Path, *args: str, ready: str, **env: str) -> Iterator[Served]:
    process = subprocess.Popen([sys.executable, "-m", "bot.cli", *args], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, env=environment(tmp_path, **env), cwd=tmp_path)
    served = Served(process)
    try:
        served.wait_for(ready)
        yield served
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


# --- refusals at start ---------------------------------------------------------------------------

REFUSED = [
    ({"SLACK_BOT_TOKEN": "xoxb-1"}, "SLACK_SIGNING_SECRET is not"),
    ({"SLACK_SIGNING_SECRET": "s3cret"}, "SLACK_BOT_TOKEN is not"),
    ({"SLACK_APP_TOKEN": "xapp-1"}, "SLACK_BOT_TOKEN is not"),
    ({"TEAMS_APP_ID": "00000000-0000-0000-0000-000000000001"}, "TEAMS_APP_PASSWORD is not"),
    ({"TEAMS_APP_PASSWORD": "pw"}, "TEAMS_APP_ID is not"),
]


@pytest.mark.parametrize(("env", "words"), REFUSED, ids=["bot-token", "signing-secret", "app-token",
                                                         "teams-id", "teams-password"])
def test_half_a_set_of_credentials_is_refused_at_start(tmp_path: Path, env: dict[str, str], words: str) -> None:
    for command in ("serve", "worker"):
        result = slabot(tmp_path, command, SLABOT_INTAKE_TOKEN=TOKEN, **env)
        one_line_refusal(result, f"slabot {command} will not start", words)
    assert not (tmp_path / "op.db").exists()      # refused before anything was created


def test_a_short_intake_token_is_refused_with_how_to_make_one(tmp_path: Path) -> None:
    for command in ("serve", "worker"):
        line = one_line_refusal(slabot(tmp_path, command, SLABOT_INTAKE_TOKEN="short-token"),
                                "SLABOT_INTAKE_TOKEN is shorter than 32 characters")
        assert 'python3 -c "import secrets; print(secrets.token_urlsafe(32))"' in line


def test_socket_mode_needs_no_signing_secret_and_serves_no_unsigned_http_route() -> None:
    settings = make_settings(slabot_intake_token=TOKEN, slack_bot_token="xoxb-1", slack_app_token="xapp-1")
    assert start_problems(settings) == [] and settings.slack_enabled
    app = create_app(build_services(settings, db=Database("sqlite://")))


    async def statuses() -> tuple[int, int]:
        # No lifespan: the Socket Mode connection is not started.
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://slabot") as client:
            return ((await client.post("/slack/events", content=b"{}")).status_code,
                    (await client.get("/healthz")).status_code)

    assert asyncio.run(statuses()) == (404, 200)
    assert start_problems(make_settings(slabot_intake_token=TOKEN, slack_bot_token="xoxb-1")) != []
    assert start_problems(make_settings(slabot_intake_token=TOKEN)) == []     # no chat platform is allowed


def test_log_settings_accept_any_case() -> None:
    settings = make_settings(slabot_log_level=" debug", slabot_log_format="JSON")
    assert (settings.slabot_log_level, settings.slabot_log_format) == ("DEBUG", "json")


# --- the start-up summary and JSON logs ----------------------------------------------------------

SUMMARY_DONE = "intake token:"


def test_serve_logs_what_it_runs_with(tmp_path: Path) -> None:
    port = free_port()
    with running(tmp_path, "serve", "--port", str(port), "--no-scheduler", ready="Uvicorn running on",
                 SLABOT_INTAKE_TOKEN=TOKEN, SLACK_BOT_TOKEN="xoxb-1", SLACK_SIGNING_SECRET="s3cret",
                 SLACK_API_URL="http://127.0.0.1:9/api/", SLABOT_PUBLIC_URL="https://slabot.example.com") as served:
        text = "\n".join(served.stop())
    assert "slabot 0.1.0 serve starting" in text
    assert "agreement: Acme FY27 Sales & Marketing SLA, version " in text
    assert f"database: sqlite:///{tmp_path / 'op.db'}" in text
    assert "chat platforms: Slack (HTTP events at /slack/events)" in text and "Teams" not in text
    assert "public URL: https://slabot.example.com" in text
    assert "scheduler: off" in text and "intake token: set" in text
    assert "xoxb-1" not in text and "s3cret" not in text and TOKEN not in text


def test_worker_summary_says_when_no_platform_is_on(tmp_path: Path) -> None:
    with running(tmp_path, "worker", ready=" running: outbox delivery") as served:
        text = "\n".join(served.stop())
    assert "slabot 0.1.0 worker starting" in text
    assert "chat platforms: none: cards, nudges and digests wait until Slack" in text
    assert "scheduler: on" in text and "public URL: not set" in text
    assert "intake token: not set" in text


def test_the_summary_never_shows_a_database_password() -> None:
    assert safe_database_url("postgresql://slabot:hunter2@db.internal:5432/slabot?password=x") == \
        "postgresql://slabot@db.internal:5432/slabot"


def test_json_logs_after_a_real_handoff_carry_ids_and_no_personal_data(tmp_path: Path) -> None:
    body = json.loads(EXAMPLE_LEAD.read_text())
    port = free_port()
    with FakeSlack() as fake, running(
            tmp_path, "serve", "--port", str(port), ready="Uvicorn running on",
            SLABOT_INTAKE_TOKEN=TOKEN, SLACK_BOT_TOKEN="xoxb-1", SLACK_SIGNING_SECRET="s3cret",
            SLACK_API_URL=fake.base_url, SLABOT_LOG_FORMAT="json", SLABOT_LOG_LEVEL="DEBUG") as served:
        response = httpx.post(f"http://127.0.0.1:{port}/api/v1/leads", json=body,
                              headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        assert response.status_code == 201, response.text
        deadline = time.monotonic() + 60
        while not fake.calls_to("chat.postMessage"):          # the worker posted the card
            assert time.monotonic() < deadline, "the card was never posted"
            time.sleep(0.05)
        lines = served.stop()
    assert "Globex" in json.dumps(fake.calls_to("chat.postMessage")[0].params)   # the card did carry the lead
    entries = [json.loads(line) for line in lines if line.strip()]          # every line is one JSON object
    assert entries and all({"time", "level", "logger", "event"} <= set(e) for e in entries)
    assert all(e["time"].endswith("Z") for e in entries)
    loggers = {e["logger"] for e in entries}
    assert "slabot.start" in loggers and "uvicorn.error" in loggers
    text = "\n".join(lines).lower()
    for personal in (body["email"], body["first_name"], body["last_name"], body["phone"], "jane.doe"):
        assert personal.lower() not in text, personal


def test_the_log_guard_drops_unknown_extras_and_e_mail_addresses() -> None:
    out = io.StringIO()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    # configure_logging sets levels and propagation on library and uvicorn loggers too: put every
    # logger back afterwards, or later tests that capture DEBUG records (caplog) see nothing.
    loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)]
    saved = [(lg, lg.level, lg.propagate, list(lg.handlers)) for lg in loggers]
    try:
        configure_logging(level="INFO", fmt="json", stream=out)
        log = logging.getLogger("slabot.test")
        log.info("lead %s handed off by %s", 7, "jane.doe@globex.example",
                 extra={"lead_id": 7, "team": "smb", "email": "jane.doe@globex.example", "full_name": "Jane Doe"})
        try:
            raise ValueError("bad address jane.doe@globex.example")
        except ValueError:
            log.exception("failed", extra={"outbox_id": 3})
    finally:
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
        root.setLevel(level)
        for lg, lg_level, propagate, lg_handlers in saved:
            lg.setLevel(lg_level)
            lg.propagate = propagate
            lg.handlers[:] = lg_handlers
        for name in set(logging.root.manager.loggerDict) - {lg.name for lg in loggers}:
            logging.getLogger(name).setLevel(logging.NOTSET)   # created by configure_logging
        logging.captureWarnings(False)
    first, second = (json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{"))
    assert first["event"] == "lead 7 handed off by <e-mail>"
    assert first["lead_id"] == 7 and first["team"] == "smb" and "email" not in first and "full_name" not in first
    assert second["outbox_id"] == 3 and "ValueError: bad address <e-mail>" in second["exception"]
    assert "jane.doe" not in out.getvalue() and "Jane Doe" not in out.getvalue()


# --- one-line errors -----------------------------------------------------------------------------


def test_version(tmp_path: Path) -> None:
    result = slabot(tmp_path, "--version")
    assert result.returncode == 0 and result.stdout.strip() == "slabot 0.1.0"


def test_unreachable_postgresql(tmp_path: Path) -> None:
    one_line_refusal(slabot(tmp_path, "tick", DATABASE_URL="postgresql+psycopg://x:pw@127.0.0.1:1/db"),
                     "cannot use the database postgresql+psycopg://x@127.0.0.1:1/db", "check DATABASE_URL")


def test_a_database_url_that_is_a_file_name(tmp_path: Path) -> None:
    one_line_refusal(slabot(tmp_path, "db", "upgrade", DATABASE_URL="slabot.db"),
                     "DATABASE_URL is not a database URL", "sqlite:///./slabot.db")
    debug = slabot(tmp_path, "--debug", "db", "upgrade", DATABASE_URL="slabot.db")
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "ArgumentError" in debug.stderr


def test_manifest_urls_and_app_ids(tmp_path: Path) -> None:
    one_line_refusal(slabot(tmp_path, "manifest", "slack", "--url", "slabot.example.com"),
                     "https://slabot.example.com")
    one_line_refusal(slabot(tmp_path, "manifest", "teams", "--app-id", "not-a-guid", "--url", "https://x.example"),
                     "not a Microsoft App ID", "GUID")
    good = slabot(tmp_path, "manifest", "slack", "--url", "https://slabot.example.com")
    assert good.returncode == 0 and "https://slabot.example.com/slack/events" in good.stdout


def test_a_port_already_in_use(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        one_line_refusal(slabot(tmp_path, "serve", "--port", str(port), SLABOT_INTAKE_TOKEN=TOKEN),
                         f"port {port} on 127.0.0.1 is already in use", "--port")


def test_an_agreement_file_that_does_not_exist(tmp_path: Path) -> None:
    for args in (("tick",), ("check",)):
        one_line_refusal(slabot(tmp_path, *args, SLABOT_AGREEMENT=str(tmp_path / "nope.yaml")),
                         "nope.yaml does not exist", "SLABOT_AGREEMENT")


def test_usage_mistakes_are_one_line_too(tmp_path: Path) -> None:
    one_line_refusal(slabot(tmp_path, "tick", "--now", "yesterday"), "ISO 8601", "slabot tick --help")
    one_line_refusal(slabot(tmp_path, "serve", "--workers", "0"), "--workers")
    one_line_refusal(slabot(tmp_path, "tick", SLABOT_LOG_LEVEL="loud"), "SLABOT_LOG_LEVEL")


def test_csv_that_is_not_utf8_or_has_a_huge_field(tmp_path: Path) -> None:
    latin = tmp_path / "latin1.csv"
    latin.write_bytes("email,company\nann@a.example,Caf\xe9 M\xfcller\n".encode("latin-1"))
    one_line_refusal(slabot(tmp_path, "import", str(latin)), "not UTF-8", "UTF-8")
    huge = tmp_path / "huge.csv"
    huge.write_text("email,company\nann@a.example," + "x" * (129 * 1024) + "\n")
    one_line_refusal(slabot(tmp_path, "import", str(huge)), "line 2", "128 KiB")
    assert _leads(tmp_path) == []


def _leads(tmp_path: Path) -> list[Lead]:
    db = Database(f"sqlite:///{tmp_path / 'op.db'}")
    with db.read() as session:
        return list(session.execute(select(Lead)).scalars())


# --- CSV headers ---------------------------------------------------------------------------------


def test_csv_headers_match_in_any_case_and_unused_columns_are_named(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_text("External_ID, Email ,First_Name,LAST_NAME, Company ,Employees,Source,Stage,Activities,"
                    "Page_Visits,BANT_Need, bant_budget,Favourite Colour,name\n"
                    "x-1,ann@a.example,Ann,Lee,Acme,50,demo_request,solution_research,"
                    "demo_requested;pricing_page_viewed,3,yes,true,blue,Ann Lee\n")
    result = slabot(tmp_path, "import", str(path))
    assert "accepted 1 (1 workable, 0 nurture), duplicate 0, rejected 0" in result.stdout, result.stderr
    warning = next(line for line in result.stderr.splitlines() if line.startswith("warning:"))
    assert "'Favourite Colour'" in warning and "'name'" in warning and "Company" not in warning
    (lead,) = _leads(tmp_path)
    assert (lead.company, lead.external_id, lead.employees) == ("Acme", "x-1", 50)


def test_import_help_lists_the_columns(tmp_path: Path) -> None:
    result = slabot(tmp_path, "import", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for column in ("external_id", "email", "first_name", "company", "employees", "source", "activities",
                   "page_visits", "bant_need", "bant_authority", "any case"):
        assert column in text, column


# --- without a chat platform ---------------------------------------------------------------------


def test_without_a_platform_nothing_is_reassigned_or_recorded_as_sent(
        db: Database, agreement: Agreement, clock: FixedClock, caplog: pytest.LogCaptureFixture) -> None:
    ctx = Context(db=db, agreement=agreement, clock=clock, platforms=())
    clock.set(local(2026, 11, 24, 10, 0))
    lead_in = LeadIn.model_validate({**json.loads(EXAMPLE_LEAD.read_text()), "received_at": None})
    (result,) = handoff_many(ctx, [Handoff(lead_in, actor="test")])
    owner = result.lead.owner
    assert owner is not None and result.lead.workable
    with caplog.at_level(logging.WARNING, logger="slabot.engine"):
        # Long past the claim timeout and every step of the ladder, twice.
        for at in (local(2026, 11, 24, 15, 0), local(2026, 11, 25, 11, 0)):
            report = sweep(ctx, now=at)
            assert report.no_platform == 1 and report.reassigned == 0 and report.nudges == 0
            assert report.claim_timeouts == 0 and report.notifications == 0
            assert any("waiting: no chat platform is configured" in line for line in report.lines())
    assert sum("no chat platform" in r.getMessage() for r in caplog.records) == 1      # said once, not per tick
    with db.read() as session:
        stored = session.get(Lead, result.lead.id)
        assert stored is not None and stored.owner == owner and stored.owner_seq == result.lead.owner_seq
        assert session.execute(select(OutboxMessage)).scalars().all() == []
        kinds = [e.type for e in session.execute(select(LeadEvent).where(col(LeadEvent.lead_id) == stored.id))
                 .scalars()]
        assert kinds == ["received", "routed"]
    # Once a platform is on, the card nobody saw is posted and its owner gets a fresh window
    # (not an instant escalation for a window they never had); then the ladder runs as usual.
    on = Context(db=db, agreement=agreement, clock=clock, platforms=("console",))
    turned_on = local(2026, 11, 25, 11, 0)
    report = sweep(on, now=turned_on)
    assert (report.shown_late, report.nudges, report.reassigned, report.claim_timeouts) == (1, 0, 0, 0)
    assert any("posted now" in line for line in report.lines())
    with db.read() as session:
        stored = session.get(Lead, result.lead.id)
        assert stored is not None and stored.owner == owner and stored.owner_since == turned_on
        assert stored.sla_due == result.lead.sla_due                    # the agreement's deadline stays
        assert stored.first_touch_due is not None and stored.first_touch_due > turned_on
        rows = session.execute(select(OutboxMessage).order_by(col(OutboxMessage.id))).scalars().all()
        assert [(r.kind, r.platform) for r in rows] == [("card", "console"), ("dm", "console")]
    assert sweep(on, now=turned_on).due == 0                           # nothing more until the new window
    assert sweep(on, now=turned_on + timedelta(days=2)).nudges >= 1    # then the ladder, as for anyone


def test_digest_send_without_a_platform_says_so_and_records_nothing(tmp_path: Path) -> None:
    result = slabot(tmp_path, "digest", "--now", "2026-11-24T15:00:00Z", "--send")
    one_line_refusal(result, "no chat platform is configured", "SLACK_BOT_TOKEN")
    assert "daily SLA digest" in result.stdout        # the digest itself is still printed
    db = Database(f"sqlite:///{tmp_path / 'op.db'}")
    with db.read() as session:
        assert session.execute(select(JobRun)).scalars().all() == []
        assert session.execute(select(OutboxMessage)).scalars().all() == []


def test_tick_without_a_platform_reassigns_nothing(tmp_path: Path) -> None:
    path = tmp_path / "one.csv"
    path.write_text("email,company,employees,source,stage,activities,page_visits,bant_need,bant_budget\n"
                    "ann@a.example,Acme,50,demo_request,solution_research,demo_requested;pricing_page_viewed,3,"
                    "yes,true\n")
    assert "1 workable" in slabot(tmp_path, "import", str(path)).stdout
    (before,) = _leads(tmp_path)
    later = (datetime.now(UTC) + timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%SZ")   # past every deadline
    result = slabot(tmp_path, "tick", "--now", later)
    assert result.returncode == 0, result.stderr
    assert "0 reassigned" in result.stdout and "1 lead(s) due are waiting: no chat platform" in result.stdout
    (after,) = _leads(tmp_path)
    assert (after.owner, after.owner_seq) == (before.owner, before.owner_seq)


# --- digests: no catch-up on a first start, none in the night ------------------------------------

VP_KEYS = {"digest:marketing_vp:console:2026-11-24", "digest:sales_vp:console:2026-11-24"}


@pytest.fixture
def any_ctx(any_db: Database, agreement: Agreement, clock: FixedClock) -> Context:
    """A console context on SQLite, and again on PostgreSQL when one is configured."""
    return Context(db=any_db, agreement=agreement, clock=clock, platforms=("console",))


def test_a_first_start_in_the_night_sends_no_digest(any_ctx: Context) -> None:
    ctx = any_ctx
    assert queue_due_digests(ctx, now=local(2026, 11, 24, 23, 8)) == []      # first-ever start, 23:08
    assert queue_due_digests(ctx, now=local(2026, 11, 24, 23, 30)) == []
    # The next morning's digests go out on time.
    assert len(queue_due_digests(ctx, now=local(2026, 11, 25, 8, 30))) == 2


def test_a_first_start_sends_what_is_due_now_not_what_was_missed(any_ctx: Context) -> None:
    ctx = any_ctx
    # Started at 09:05: the 09:00 team-channel digests are due now; the 08:30 VP digests were missed
    # before the service ever ran and are not caught up.
    queued = queue_due_digests(ctx, now=local(2026, 11, 24, 9, 5))
    assert sorted(queued) == ["digest:team:midmarket:console:2026-11-24", "digest:team:smb:console:2026-11-24"]
    assert queue_due_digests(ctx, now=local(2026, 11, 24, 14, 0)) == []


def test_a_catch_up_after_downtime_waits_for_business_hours(any_ctx: Context) -> None:
    ctx = any_ctx
    assert queue_due_digests(ctx, now=local(2026, 11, 24, 8, 0)) == []       # running before the slots
    # Down from 08:00 to 08:50: the 08:30 digest is late and business hours open at 09:00.
    assert queue_due_digests(ctx, now=local(2026, 11, 24, 8, 50)) == []
    assert set(queue_due_digests(ctx, now=local(2026, 11, 24, 9, 0))) >= VP_KEYS
    # Running Tuesday, down Wednesday until 21:00: nothing in the evening, Thursday as scheduled.
    assert queue_due_digests(ctx, now=local(2026, 11, 25, 21, 0)) == []
    assert len(queue_due_digests(ctx, now=local(2026, 11, 26, 8, 30) + timedelta(seconds=30))) == 2


def test_tick_as_a_first_start_at_night_queues_no_digest(tmp_path: Path) -> None:
    result = slabot(tmp_path, "tick", "--now", "2026-11-25T04:08:00Z", CONSOLE="1")   # 23:08 in New York
    assert result.returncode == 0, result.stderr
    assert "digests: 0 queued" in result.stdout
    morning = slabot(tmp_path, "tick", "--now", "2026-11-25T13:30:00Z", CONSOLE="1")  # 08:30 the next day
    assert "digests: 2 queued" in morning.stdout, morning.stdout


def test_a_dot_env_file_in_the_working_directory_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"SLABOT_INTAKE_TOKEN={TOKEN}\nSLACK_BOT_TOKEN=xoxb-from-dot-env\n")
    one_line_refusal(slabot(tmp_path, "worker"), "SLACK_BOT_TOKEN is set but SLACK_SIGNING_SECRET is not")
    # The environment wins over the file: a short token from the environment is refused.
    one_line_refusal(slabot(tmp_path, "worker", SLABOT_INTAKE_TOKEN="short", SLACK_SIGNING_SECRET="s3cret"),
                     "SLABOT_INTAKE_TOKEN is shorter than 32 characters")
