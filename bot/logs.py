"""Logging as `slabot serve` and `slabot worker` configure it: human lines or JSON lines, no personal data.

One handler on the root logger, so slabot's loggers, uvicorn's and the libraries' all come out the
same way. `SLABOT_LOG_FORMAT=json` gives one JSON object per line with `time` (UTC, ISO 8601),
`level`, `logger`, `event` (the message), the ids passed as `extra=` and `exception` when there is
one. Anything else (a terminal, `SLABOT_LOG_FORMAT=text`) gives one readable line per record.

Personal data (lead e-mails, names, phone numbers) must never reach a log. Log calls pass ids, not
people; two guards catch what slips through:
- only the `extra` keys in `ALLOWED_EXTRA` are kept (an `extra={"email": ...}` is dropped);
- e-mail addresses in messages and exception texts are replaced by `<e-mail>`.
Libraries that log request bodies or SQL parameters when they are told to debug (slack_sdk,
SQLAlchemy, httpx) stay at WARNING whatever `SLABOT_LOG_LEVEL` says.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import IO, Any

__all__ = ["ALLOWED_EXTRA", "JsonFormatter", "TextFormatter", "configure_logging", "uvicorn_log_config"]

#: The `extra=` keys a log record may carry: ids and counts, never people.
ALLOWED_EXTRA = frozenset({
    "lead_id", "outbox_id", "team", "platform", "worker_id", "job", "kind", "step", "state", "status",
    "count", "attempts", "tier", "version", "agreement", "duration_ms", "method", "path", "status_code",
    "request_id", "event_id", "scope",
})
#: Libraries kept at WARNING or above: at DEBUG they log request bodies and statement parameters.
QUIET_LIBRARIES = ("sqlalchemy", "slack_sdk", "slack_bolt", "httpx", "httpcore", "urllib3", "aiohttp",
                   "msal", "microsoft_agents", "apscheduler", "asyncio", "alembic", "multipart",
                   "PIL", "websockets")
#: Attributes every LogRecord has: whatever else is on a record came from `extra=`.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None))) | {
    "message", "asctime", "taskName"}
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMATS = ("text", "json")


def scrub(text: str) -> str:
    """`text` with every e-mail address replaced."""
    return _EMAIL.sub("<e-mail>", text)


def extras(record: logging.LogRecord) -> dict[str, Any]:
    """The allowed `extra=` values of a record."""
    return {key: value for key, value in vars(record).items()
            if key in ALLOWED_EXTRA and key not in _RECORD_FIELDS}


class PersonalDataFilter(logging.Filter):
    """Drops `extra` keys that are not on the allow-list and scrubs e-mail addresses from the
    message, so neither formatter nor any other handler can print them."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key in [k for k in vars(record) if k not in _RECORD_FIELDS and k not in ALLOWED_EXTRA]:
            delattr(record, key)
        try:
            message = record.getMessage()
        except (TypeError, ValueError, KeyError):   # a broken format string: logging reports it itself
            return True
        record.msg, record.args = scrub(message), None
        return True


def _exception_text(formatter: logging.Formatter, record: logging.LogRecord) -> str | None:
    if record.exc_info and record.exc_info[0] is not None:
        return scrub(formatter.formatException(record.exc_info))
    if record.exc_text:
        return scrub(record.exc_text)
    return None


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event, the allowed ids, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
                    .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "event": scrub(record.getMessage()),
        }
        entry.update(extras(record))
        exception = _exception_text(self, record)
        if exception:
            entry["exception"] = exception
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`2026-11-24 15:00:00Z INFO slabot.tick: message [lead_id=12]` and the traceback, if any."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        ids = " ".join(f"{key}={value}" for key, value in extras(record).items())
        line = f"{when} {record.levelname:<7} {record.name}: {scrub(record.getMessage())}"
        if ids:
            line += f" [{ids}]"
        exception = _exception_text(self, record)
        return f"{line}\n{exception}" if exception else line


def _handler(fmt: str, stream: IO[str]) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(PersonalDataFilter())
    handler.set_name("slabot")
    return handler


def configure_logging(*, level: str = "INFO", fmt: str = "text", stream: IO[str] | None = None) -> None:
    """Route every logger through one handler on the root logger (idempotent: a second call
    replaces the handler). `fmt` is "text" or "json"; `level` a level name for slabot's loggers."""
    level = level.upper()
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "slabot"]:
        root.removeHandler(old)
    root.addHandler(_handler(fmt, stream or sys.stderr))
    numeric = logging.getLevelName(level)
    root.setLevel(numeric)
    logging.getLogger("slabot").setLevel(numeric)
    quiet = max(numeric, logging.WARNING)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(quiet)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
        uvicorn_logger.setLevel(max(numeric, logging.INFO))
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").setLevel(quiet)


def uvicorn_log_config(*, level: str = "INFO") -> dict[str, Any]:
    """uvicorn's `log_config`: its loggers get no handler of their own and propagate to the root
    handler `configure_logging` installed (in each worker process too: the app factory calls it)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {name: {"handlers": [], "propagate": True, "level": max(level.upper(), "INFO", key=LEVELS.index)}
                    for name in ("uvicorn", "uvicorn.error", "uvicorn.access")},
    }


def version() -> str:
    """The installed slabot's version."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        return package_version("slabot")
    except PackageNotFoundError:   # run from a checkout that was never installed
        return "0+unknown"


def safe_database_url(url: str) -> str:
    """The database URL without its password (and without a query string, which may carry one)."""
    import sqlalchemy as sa

    try:
        parsed = sa.engine.make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        return "<not a database URL>"
    # URL.set() ignores None, so the password goes with _replace (URL is a named tuple).
    return str(parsed._replace(password=None).set(query={}).render_as_string(hide_password=False))


def chat_platforms(settings: Any) -> str:
    """Which chat platforms are on, in words."""
    on: list[str] = []
    if settings.slack_enabled:
        if settings.slack_app_token and settings.slack_signing_secret:
            on.append("Slack (Socket Mode, and HTTP events at /slack/events)")
        elif settings.slack_app_token:
            on.append("Slack (Socket Mode)")
        else:
            on.append("Slack (HTTP events at /slack/events)")
    if settings.teams_enabled:
        on.append("Teams (without authentication: local tests only)" if settings.teams_allow_unauthenticated
                  else "Teams (/api/messages)")
    if settings.console:
        on.append("console")
    if not on:
        return ("none: cards, nudges and digests wait until Slack (SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET) "
                "or Teams (TEAMS_APP_ID, TEAMS_APP_PASSWORD) is configured")
    return ", ".join(on)


def startup_summary(settings: Any, agreement: Any, *, command: str, scheduler: bool) -> list[str]:
    """What `serve` and `worker` log as they start: what this process will do, and with what."""
    from bot.worker.scheduler import TICK_SECONDS

    token = settings.slabot_intake_token
    return [
        f"slabot {version()} {command} starting",
        f"agreement: {agreement.name}, version {agreement.version} ({settings.slabot_agreement})",
        f"database: {safe_database_url(settings.database_url)}",
        f"chat platforms: {chat_platforms(settings)}",
        f"public URL: {settings.slabot_public_url or 'not set (URLs as each request addressed them)'}",
        (f"scheduler: on (outbox delivery, nudges and digests; a tick every {TICK_SECONDS} s)" if scheduler
         else "scheduler: off (run `slabot worker` for outbox delivery, nudges and digests)"),
        ("intake token: set" if token is not None and token.get_secret_value()
         else "intake token: not set (POST /api/v1/leads and /api/v1/outcomes refuse every request)"),
    ]


def log_startup_summary(settings: Any, agreement: Any, *, command: str, scheduler: bool) -> None:
    start = logging.getLogger("slabot.start")
    for line in startup_summary(settings, agreement, command=command, scheduler=scheduler):
        start.info("%s", line)
