"""The `slabot` command line (contract: serve, worker, check, demo, tick, digest, import, db, manifest)."""

from __future__ import annotations

import asyncio
import csv
import errno
import gc
import itertools
import json
import os
import socket
import sys
from collections import Counter
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import ValidationError

from sla.agreement import AgreementError, load_agreement

T = TypeVar("T")

#: Largest CSV field `slabot import` reads (Python's csv default): a bigger one is not a lead.
CSV_FIELD_LIMIT = 128 * 1024


class Refusal(click.ClickException):
    """A mistake the operator can fix: one line saying what to do, exit 2, no traceback."""

    exit_code = 2


def _first_line(text: object) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else ""


def explain(exc: BaseException) -> str | None:
    """One line for an error an operator can fix, or None when it is not one of those (a bug)."""
    import sqlalchemy.exc as sa_exc

    from bot.logs import safe_database_url
    from bot.settings import Settings

    def configured_url() -> str:
        try:
            return str(Settings().database_url)
        except ValidationError:
            return ""

    if isinstance(exc, sa_exc.ArgumentError | sa_exc.NoSuchModuleError) or (
            isinstance(exc, ModuleNotFoundError) and exc.name in ("MySQLdb", "pymysql", "cx_Oracle", "pyodbc")):
        return ("DATABASE_URL is not a database URL slabot can use: write sqlite:///./slabot.db (a file) "
                "or postgresql://USER:PASSWORD@HOST/DATABASE")
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        reason = _first_line(getattr(exc, "orig", None) or exc)
        return (f"cannot use the database {safe_database_url(configured_url())}: {reason}; check DATABASE_URL "
                "and that the database server is running and reachable")
    if isinstance(exc, sa_exc.ProgrammingError):
        return (f"the database answered an error ({_first_line(getattr(exc, 'orig', None) or exc)}): "
                "run `slabot db upgrade`, and check DATABASE_URL points at slabot's database")
    return None


class SlabotGroup(click.Group):
    """Every mistake ends in one line (`Error: ...`) and exit 2; `--debug` shows the traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            if ctx.params.get("debug"):
                raise
            message = explain(exc)
            if message is not None:
                raise Refusal(message) from None
            raise click.ClickException(f"{type(exc).__name__}: {_first_line(exc)[:300]} (run `slabot --debug "
                                       f"{' '.join(sys.argv[1:])}` to see where)") from None

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            result = super().main(args, prog_name or "slabot", complete_var, False, **extra)
        except click.UsageError as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":      # `slabot`, `slabot db`: the help itself
                exc.show()
                sys.exit(exc.exit_code)
            # One line: the problem, then where help is (click would print the usage first).
            where = exc.ctx.command_path if exc.ctx is not None else "slabot"
            click.echo(f"Error: {exc.format_message()} (see `{where} --help`)", err=True)
            sys.exit(2)
        except click.ClickException as exc:
            click.echo(f"Error: {_first_line(exc.format_message()) if exc.exit_code == 2 else exc.format_message()}",
                       err=True)
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


def _settings() -> Any:
    from bot.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        raise Refusal("; ".join(
            f"{'.'.join(map(str, e['loc'])).upper() or 'settings'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors())) from None


def _agreement_file(path: str) -> None:
    if not Path(path).is_file():
        raise Refusal(f"the agreement file {path} does not exist: set SLABOT_AGREEMENT to your agreement's path "
                      "(start from examples/agreement.yaml and check it with `slabot check FILE`)")


def _agreement_refusal(path: str, exc: AgreementError) -> Refusal:
    problems = [problem.render(path) for problem in exc.problems] or [str(exc)]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return Refusal(f"the agreement is not valid: {_first_line(problems[0])}{more}; fix it and run "
                   f"`slabot check {path}` until it says ok")


def _services(*, now: datetime | None = None, upgrade: bool | None = None, settings: Any = None) -> Any:
    """Services from the environment; an agreement problem is a clear message, not a traceback."""
    from bot.services import build_services
    from sla.clock import FixedClock

    settings = settings or _settings()
    _agreement_file(settings.slabot_agreement)
    try:
        services = build_services(settings, clock=FixedClock(now) if now else None)
    except AgreementError as exc:
        raise _agreement_refusal(settings.slabot_agreement, exc) from None
    db = services.ctx.db
    if upgrade if upgrade is not None else db.is_sqlite:
        db.upgrade()
    elif not db.is_current():
        raise Refusal("the database schema is not current: run `slabot db upgrade`")
    return services


def _start(command: str) -> Any:
    """`serve` and `worker`: logging on, refuse half-configured credentials, settings back."""
    from bot.logs import configure_logging
    from bot.settings import start_problems

    settings = _settings()
    configure_logging(level=settings.slabot_log_level, fmt=settings.slabot_log_format)
    problems = start_problems(settings)
    if problems:
        raise Refusal(f"slabot {command} will not start: " + "; ".join(problems))
    return settings


def _refuse_email_without_smtp(command: str, settings: Any, services: Any) -> None:
    """An agreement that e-mails digests needs an SMTP server before `serve` or `worker` starts."""
    from bot.settings import email_problem

    problem = email_problem(settings, services.ctx.agreement)
    if problem:
        raise Refusal(f"slabot {command} will not start: {problem}")


def _port_free(host: str, port: int) -> None:
    """Refuse a port another process holds before anything starts (uvicorn would exit later, less clearly)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise Refusal(f"--host {host} is not an address of this machine ({exc.strerror}): use 0.0.0.0 or "
                      "127.0.0.1") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise Refusal(f"port {port} on {host} is already in use: stop the process using it or choose "
                              "another with --port") from None
            raise Refusal(f"cannot listen on {host}:{port} ({exc.strerror}): choose another --host or "
                          "--port") from None


def _instant(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 instant like 2026-11-24T15:00:00Z") from None
    if parsed.tzinfo is None:
        raise click.BadParameter(f"{value!r} has no time zone: add Z or an offset")
    return parsed.astimezone(UTC)


def _version() -> str:
    from bot.logs import version

    return version()


@click.group(cls=SlabotGroup)
@click.version_option(version=_version(), prog_name="slabot", message="%(prog)s %(version)s")
@click.option("--debug", is_flag=True, help="Show the full traceback of an error instead of one line.")
def main(debug: bool) -> None:
    """slabot: the Sales & Marketing SLA, run in Slack and Microsoft Teams.

    Settings come from the environment, and from a .env file in the working directory when there
    is one (the environment wins)."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--no-scheduler", is_flag=True, help="Do not run the periodic tick in this process.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Web worker processes. Safe with any number: every job is claimed in the database.")
def serve(host: str, port: int, no_scheduler: bool, workers: int) -> None:
    """Run the web service (HTTP API, Slack, Teams) and, unless told not to, the scheduler."""
    import uvicorn

    from bot.logs import log_startup_summary, uvicorn_log_config

    settings = _start("serve")
    # Validates the agreement, reaches the database and migrates SQLite, once before any worker starts.
    services = _services(settings=settings)
    _refuse_email_without_smtp("serve", settings, services)
    _port_free(host, port)
    log_startup_summary(settings, services.ctx.agreement, command="serve", scheduler=not no_scheduler)
    # uvicorn imports the factory in each `--workers` process: the flag picks which one.
    factory = "web_app_from_environment" if no_scheduler else "app_from_environment"
    uvicorn.run(f"bot.http.app:{factory}", factory=True, host=host, port=port, workers=workers,
                log_level=settings.slabot_log_level.lower(), access_log=False,
                log_config=uvicorn_log_config(level=settings.slabot_log_level))


@main.command()
def worker() -> None:
    """Run only the scheduler and outbox worker (for several web replicas)."""
    from bot.logs import log_startup_summary
    from bot.worker.scheduler import run_worker
    from bot.worker.transports import build_transports

    settings = _start("worker")
    services = _services(settings=settings)
    _refuse_email_without_smtp("worker", settings, services)
    log_startup_summary(settings, services.ctx.agreement, command="worker", scheduler=True)
    build_transports(services)   # the chat transports, without a web app
    run_worker(services)


@main.command()
@click.argument("agreement", required=False, type=click.Path(dir_okay=False))
def check(agreement: str | None) -> None:
    """Validate an agreement file: exit 0 if valid, else exit 2 with one line per problem."""
    path = agreement or _settings().slabot_agreement
    if agreement is None:
        _agreement_file(path)   # a path given on the command line gets the file:line report below
    try:
        parsed = load_agreement(path)
    except AgreementError as exc:
        for problem in exc.problems:
            click.echo(problem.render(path), err=True)
        sys.exit(2)
    reps = len(parsed.all_reps())
    click.echo(f"{path}: ok: {parsed.name!r}, {len(parsed.teams)} teams, {reps} reps, "
               f"version {parsed.version}")


async def _closing(services: Any, work: Awaitable[T]) -> T:
    """`work`, then the transports' kept-alive connections closed (a one-shot command's loop ends here)."""
    from bot.worker.delivery import close_transports

    try:
        return await work
    finally:
        await close_transports(services.transports.values())


@main.command()
@click.option("--now", "now_text", metavar="ISO8601", help="Run as of this instant (default: now).")
def tick(now_text: str | None) -> None:
    """Run every due job once: outbox delivery, nudges, escalations, digests."""
    from bot.worker.tick import tick as run_tick
    from bot.worker.transports import build_transports

    now = _instant(now_text)
    services = _services(now=now)
    build_transports(services)
    report = asyncio.run(_closing(services, run_tick(services, now=now)))
    for line in report.lines():
        click.echo(line)


@main.command()
@click.option("--now", "now_text", metavar="ISO8601", help="As of this instant (default: now).")
@click.option("--send", is_flag=True, help="Deliver it to every recipient (once per local day).")
def digest(now_text: str | None, send: bool) -> None:
    """Print the digest as of --now; --send delivers it."""
    from commands.digest import build_digest

    now = _instant(now_text)
    services = _services(now=now)
    content = build_digest(services.ctx, as_of=services.ctx.now())
    click.echo(content.title)
    for heading, lines in content.sections:
        click.echo(f"\n{heading}")
        for line in lines:
            click.echo(f"  {line}")
    if send:
        from bot.settings import email_problem
        from bot.worker.tick import send_digests_now
        from bot.worker.transports import build_transports

        problem = email_problem(services.settings, services.ctx.agreement)
        if problem:
            raise Refusal(f"nothing was sent or recorded: {problem}")
        by_email = services.settings.slabot_smtp_url is not None and any(
            "email" in entry.via for entry in services.ctx.agreement.digests)
        if not services.ctx.platforms and not by_email:
            raise Refusal("no chat platform is configured, so nothing was sent or recorded: set SLACK_BOT_TOKEN "
                          "and SLACK_SIGNING_SECRET, or TEAMS_APP_ID and TEAMS_APP_PASSWORD")
        build_transports(services)
        queued = asyncio.run(_closing(services, send_digests_now(services, now=services.ctx.now())))
        click.echo(f"\nsent to {len(queued)} recipient(s)" if queued else "\nalready sent today")


def csv_columns() -> list[str]:
    """The CSV columns `slabot import` reads: the API's lead fields, `activities`, and `bant_*`."""
    from sla.lead import BantFacts, LeadIn

    plain = [name for name in LeadIn.model_fields if name not in ("activities", "bant")]
    return [*plain, "activities", *(f"bant_{name}" for name in BantFacts.model_fields)]


class _ImportCommand(click.Command):
    """`slabot import --help` lists the columns read (computed from the lead model, so never stale)."""

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_help_text(ctx, formatter)
        formatter.write_paragraph()
        with formatter.indentation():
            formatter.write_text("Columns read (headers match in any case, spaces around them ignored): "
                                 + ", ".join(csv_columns()) + ".")
            formatter.write_paragraph()
            formatter.write_text("`activities` is a ;-separated list of activity types (demo_requested;"
                                 "pricing_page_viewed); bant_* cells are true, false or a short text. Empty "
                                 "cells are left out. Other columns are not read: the import names them in "
                                 "a warning.")


class _CsvRows:
    """The rows of a UTF-8 CSV, read as they are needed (memory flat in the file's size): `header`,
    then `rows()` yields (line number, row). `consumed` counts the bytes read (for a byte-based
    progress bar). A file that is not UTF-8 CSV raises a Refusal naming the line."""

    def __init__(self, file: str) -> None:
        csv.field_size_limit(CSV_FIELD_LIMIT)
        self.file = file
        self.consumed = 0
        self._handle = open(file, "rb")  # noqa: SIM115 - closed by close()
        self._reader: Any = csv.reader(self._lines())
        header = self._next()
        if header is None:
            raise Refusal(f"{file} is empty: the first line must name the columns (see `slabot import --help`)")
        self.header: list[str] = header

    def _lines(self) -> Any:
        first = True
        for raw in self._handle:
            start = self.consumed
            self.consumed += len(raw)
            if first:
                raw, first = raw.removeprefix(b"\xef\xbb\xbf"), False
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                line = (self._reader.line_num if self._reader is not None else 0) + 1
                raise Refusal(f"{self.file}, line {line}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
                              f"{start + exc.start}): save it as CSV UTF-8 and import it again") from None

    def _next(self) -> list[str] | None:
        try:
            return next(self._reader, None)
        except csv.Error as exc:
            line = self._reader.line_num
            if "field larger than field limit" in str(exc):
                raise Refusal(f"{self.file}, line {line}: a field is longer than {CSV_FIELD_LIMIT // 1024} KiB, "
                              "which no lead field is: is this the right file, with matching quotes?") from None
            raise Refusal(f"{self.file}, line {line}: not a readable CSV ({exc}): check its quotes and "
                          "separators") from None

    def rows(self) -> Any:
        """(the line the row starts on, the row), skipping blank lines."""
        while True:
            start = self._reader.line_num + 1
            cells = self._next()
            if cells is None:
                return
            if any(cell.strip() for cell in cells):
                yield start, dict(zip(self.header, cells, strict=False))

    def close(self) -> None:
        self._handle.close()


@main.command(name="import", cls=_ImportCommand)
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def import_csv(file: str) -> None:
    """Hand off many leads from a CSV (same rules as the API; columns named like the API fields)."""
    from commands.intake import Handoff, handoff_many
    from sla.lead import LeadIn

    services = _services()
    # What is loaded by now lives as long as the process: the collector need not walk it every pass.
    gc.freeze()
    source = _CsvRows(file)
    known = set(csv_columns())
    unused = [name for name in source.header if normalize_header(name) not in known]
    if unused:
        click.echo(f"warning: {file}: column(s) not read: {', '.join(repr(n) for n in unused)} "
                   "(see `slabot import --help` for the columns)", err=True)
    counts: Counter[str] = Counter()
    rejected: list[str] = []
    batch: list[Handoff] = []

    def flush() -> None:
        for result in handoff_many(services.ctx, batch):
            counts["duplicate" if result.duplicate else "accepted"] += 1
            if not result.duplicate:
                counts["workable" if result.lead.workable else "nurture"] += 1
        batch.clear()

    def summary() -> None:
        click.echo(f"accepted {counts['accepted']} ({counts['workable']} workable, {counts['nurture']} nurture), "
                   f"duplicate {counts['duplicate']}, rejected {counts['rejected']}")
        for line in rejected:
            click.echo(f"  rejected {line}")

    rows = source.rows()
    try:
        # The first row is read before the bar shows: a file unreadable from the start is a one-line refusal.
        first = next(rows, None)
        with click.progressbar(length=max(1, os.path.getsize(file)), label="importing", file=sys.stderr) as bar:
            shown = 0
            for number, row in itertools.chain([first] if first else [], rows):
                try:
                    lead_in = LeadIn.model_validate(csv_row_to_lead(row))
                except ValidationError as exc:
                    counts["rejected"] += 1
                    reasons = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'row'}: "
                                        f"{e['msg'].removeprefix('Value error, ')}" for e in exc.errors())
                    rejected.append(f"line {number}: {reasons}")
                    continue
                batch.append(Handoff(lead_in, actor="import"))
                if len(batch) >= IMPORT_BATCH:   # group commit, as the API does
                    flush()
                    bar.update(source.consumed - shown)
                    shown = source.consumed
            flush()
            bar.update(source.consumed - shown)
    except Refusal as refusal:
        if not (counts["accepted"] or counts["duplicate"] or counts["rejected"] or batch):
            raise
        # Unreadable from this line on: keep what was read before it, say so, and where it stopped.
        flush()
        summary()
        raise Refusal(f"{refusal.message}; the rows before it were imported (see above), none after it") from None
    finally:
        source.close()
    summary()
    if counts["rejected"]:
        sys.exit(1)


#: Leads handed off per transaction by `slabot import` (the API batches up to 200 waiting requests).
IMPORT_BATCH = 1000


def normalize_header(name: str) -> str:
    """`Email`, ` Company ` and `BANT_Need` name the columns email, company and bant_need."""
    return name.strip().lower()


def csv_row_to_lead(row: dict[str, str]) -> dict[str, Any]:
    """CSV columns map to API fields (headers in any case, trimmed); `activities` is a `;`-separated
    list of types; `bant_need`, `bant_budget`, ... fill `bant`. Empty cells are absent."""
    lead: dict[str, Any] = {}
    bant: dict[str, Any] = {}
    for key, value in row.items():
        if key is None or value is None or value.strip() == "":
            continue
        key, value = normalize_header(key), value.strip()
        if key.startswith("bant_"):
            bant[key[5:]] = {"true": True, "false": False}.get(value.lower(), value)
        elif key == "activities":
            lead["activities"] = [{"type": t.strip()} for t in value.split(";") if t.strip()]
        else:
            lead[key] = value
    if bant:
        lead["bant"] = bant
    return lead


@main.command()
@click.option("--speed", default=120.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="How much faster than real time the demo runs.")
@click.option("--minutes", default=0.0, help="Stop after this many real minutes (0: run until Ctrl-C).")
@click.option("--hours", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Stop after this many simulated hours (nights are skipped).")
@click.option("--seed", default=7, show_default=True, help="Random seed of the simulated leads and reps.")
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Keep the demo's SQLite database here (default: a temporary file, deleted at the end).")
@click.option("--port", default=0, type=click.IntRange(0, 65535), help="Serve the desk on this port of 127.0.0.1 "
              "(default: a free one).")
def demo(speed: float, minutes: float, hours: float | None, seed: int, db_path: Path | None, port: int) -> None:
    """The embedded default: SQLite, the example agreement, a console chat, simulated leads."""
    from bot.demo.run import run_demo

    run_demo(speed=speed, minutes=minutes, seed=seed, simulated_hours=hours, db_path=db_path, desk_port=port)


@main.group()
def db() -> None:
    """Database schema."""


@db.command()
def upgrade() -> None:
    """Apply database migrations."""
    from storage.db import Database

    database = Database(_settings().database_url)
    database.upgrade()
    click.echo("database is at the newest migration")


@main.group()
def manifest() -> None:
    """App manifests for Slack and Microsoft Teams."""


def _public_url(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        hint = f"https://{value.split('://')[-1].lstrip('/')}" if value else "https://slabot.example.com"
        raise Refusal(f"--url {value!r} is not an absolute URL: write it with its scheme, like {hint}")
    return value


def _app_id(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    import re

    if not re.fullmatch(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}", value.strip()):
        raise Refusal(f"--app-id {value!r} is not a Microsoft App ID: copy the GUID (like "
                      "00000000-0000-0000-0000-000000000000) from the Azure Bot resource's Configuration page")
    return value.strip()


@manifest.command(name="slack")
@click.option("--url", required=True, callback=_public_url,
              help="The public base URL of this service (https://...).")
def manifest_slack(url: str) -> None:
    """Print the Slack app manifest (YAML)."""
    from manifests.slack import slack_manifest_yaml

    click.echo(slack_manifest_yaml(url))


@manifest.command(name="teams")
@click.option("--app-id", required=True, callback=_app_id, help="The Microsoft App ID of the bot (a GUID).")
@click.option("--url", required=True, callback=_public_url,
              help="The public base URL of this service (https://...).")
@click.option("--zip", "zip_path", type=click.Path(dir_okay=False), help="Write the upload package here.")
def manifest_teams(app_id: str, url: str, zip_path: str | None) -> None:
    """Print the Teams manifest, or build the upload package with --zip."""
    from manifests.teams import build_package, teams_manifest

    if zip_path:
        click.echo(f"wrote {build_package(app_id, url, Path(zip_path))}")
    else:
        click.echo(json.dumps(teams_manifest(app_id, url), indent=2))


from bot.cli_analyze import analyze, plan  # noqa: E402  (the closed loop: slabot analyze, slabot plan)

main.add_command(analyze)
main.add_command(plan)
main.add_command(__import__("bot.desk.cli").desk.cli.desk)   # slabot desk link EMAIL (bot/desk/cli.py)


if __name__ == "__main__":
    main()
