"""The `slabot` command line (contract: serve, worker, check, demo, tick, digest, import, db, manifest)."""

from __future__ import annotations

import asyncio
import csv
import json
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from sla.agreement import AgreementError, load_agreement


def _settings() -> Any:
    from bot.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        raise click.ClickException("; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())) \
            from None


def _services(*, now: datetime | None = None, upgrade: bool | None = None) -> Any:
    """Services from the environment; an agreement problem is a clear message, not a traceback."""
    from bot.services import build_services
    from sla.clock import FixedClock

    settings = _settings()
    try:
        services = build_services(settings, clock=FixedClock(now) if now else None)
    except AgreementError as exc:
        raise click.ClickException(f"the agreement is not valid:\n{exc}") from None
    db = services.ctx.db
    if upgrade if upgrade is not None else db.is_sqlite:
        db.upgrade()
    elif not db.is_current():
        raise click.ClickException("the database schema is not current: run `slabot db upgrade`")
    return services


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


@click.group()
def main() -> None:
    """slabot: the Sales & Marketing SLA, run in Slack and Microsoft Teams."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--no-scheduler", is_flag=True, help="Do not run the periodic tick in this process.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Web worker processes. Safe with any number: every job is claimed in the database.")
def serve(host: str, port: int, no_scheduler: bool, workers: int) -> None:
    """Run the web service (HTTP API, Slack, Teams) and, unless told not to, the scheduler."""
    import os

    import uvicorn

    _services()   # validates settings and the agreement, and migrates SQLite, once before any worker starts
    os.environ["SLABOT_RUN_SCHEDULER"] = "0" if no_scheduler else "1"
    uvicorn.run("bot.app:app_from_environment", factory=True, host=host, port=port, workers=workers,
                log_level="info", access_log=False)


@main.command()
def worker() -> None:
    """Run only the scheduler and outbox worker (for several web replicas)."""
    from bot.app import create_app
    from bot.scheduler import run_worker

    services = _services()
    create_app(services)   # builds the chat transports
    run_worker(services)


@main.command()
@click.argument("agreement", required=False, type=click.Path(dir_okay=False))
def check(agreement: str | None) -> None:
    """Validate an agreement file: exit 0 if valid, else exit 2 with one line per problem."""
    path = agreement or _settings().slabot_agreement
    try:
        parsed = load_agreement(path)
    except AgreementError as exc:
        for problem in exc.problems:
            click.echo(problem.render(path), err=True)
        sys.exit(2)
    reps = len(parsed.all_reps())
    click.echo(f"{path}: ok: {parsed.name!r}, {len(parsed.teams)} teams, {reps} reps, "
               f"version {parsed.version}")


@main.command()
@click.option("--now", "now_text", metavar="ISO8601", help="Run as of this instant (default: now).")
def tick(now_text: str | None) -> None:
    """Run every due job once: outbox delivery, nudges, escalations, digests."""
    from bot.app import create_app
    from bot.engine import tick as run_tick

    now = _instant(now_text)
    services = _services(now=now)
    create_app(services)
    report = asyncio.run(run_tick(services, now=now))
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
        from bot.app import create_app
        from bot.engine import send_digests_now

        create_app(services)
        queued = asyncio.run(send_digests_now(services, now=services.ctx.now()))
        click.echo(f"\nsent to {len(queued)} recipient(s)" if queued else "\nalready sent today")


@main.command(name="import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def import_csv(file: str) -> None:
    """Hand off many leads from a CSV (same rules as the API; columns named like the API fields)."""
    from commands.leads import Handoff, handoff_many
    from sla.lead import LeadIn

    services = _services()
    counts: Counter[str] = Counter()
    rejected: list[str] = []
    with open(file, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    batch: list[Handoff] = []

    def flush() -> None:
        for result in handoff_many(services.ctx, batch):
            counts["duplicate" if result.duplicate else "accepted"] += 1
            if not result.duplicate:
                counts["workable" if result.lead.workable else "nurture"] += 1
        batch.clear()

    with click.progressbar(rows, label="importing", file=sys.stderr) as bar:
        for number, row in enumerate(bar, start=2):
            try:
                lead_in = LeadIn.model_validate(csv_row_to_lead(row))
            except ValidationError as exc:
                counts["rejected"] += 1
                reasons = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'row'}: "
                                    f"{e['msg'].removeprefix('Value error, ')}" for e in exc.errors())
                rejected.append(f"line {number}: {reasons}")
                continue
            batch.append(Handoff(lead_in, actor="import"))
            if len(batch) >= 200:   # group commit, as the API does
                flush()
        flush()
    click.echo(f"accepted {counts['accepted']} ({counts['workable']} workable, {counts['nurture']} nurture), "
               f"duplicate {counts['duplicate']}, rejected {counts['rejected']}")
    for line in rejected:
        click.echo(f"  rejected {line}")
    if counts["rejected"]:
        sys.exit(1)


def csv_row_to_lead(row: dict[str, str]) -> dict[str, Any]:
    """CSV columns map to API fields; `activities` is a `;`-separated list of types; `bant_need`,
    `bant_budget`, ... fill `bant`. Empty cells are absent."""
    lead: dict[str, Any] = {}
    bant: dict[str, Any] = {}
    for key, value in row.items():
        if key is None or value is None or value.strip() == "":
            continue
        key, value = key.strip(), value.strip()
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
def demo(speed: float, minutes: float, hours: float | None, seed: int, db_path: Path | None) -> None:
    """The embedded default: SQLite, the example agreement, a console chat, simulated leads."""
    from bot.demo import run_demo

    run_demo(speed=speed, minutes=minutes, seed=seed, simulated_hours=hours, db_path=db_path)


@main.group()
def db() -> None:
    """Database schema."""


@db.command()
def upgrade() -> None:
    """Apply database migrations."""
    from bot.settings import Settings
    from storage.db import Database

    database = Database(Settings().database_url)
    database.upgrade()
    click.echo("database is at the newest migration")


@main.group()
def manifest() -> None:
    """App manifests for Slack and Microsoft Teams."""


@manifest.command(name="slack")
@click.option("--url", required=True, help="The public base URL of this service (https://...).")
def manifest_slack(url: str) -> None:
    """Print the Slack app manifest (YAML)."""
    from manifests.slack import slack_manifest_yaml

    click.echo(slack_manifest_yaml(url))


@manifest.command(name="teams")
@click.option("--app-id", required=True, help="The Microsoft app (bot) id.")
@click.option("--url", required=True, help="The public base URL of this service (https://...).")
@click.option("--zip", "zip_path", type=click.Path(dir_okay=False), help="Write the upload package here.")
def manifest_teams(app_id: str, url: str, zip_path: str | None) -> None:
    """Print the Teams manifest, or build the upload package with --zip."""
    from manifests.teams import build_package, teams_manifest

    if zip_path:
        click.echo(f"wrote {build_package(app_id, url, Path(zip_path))}")
    else:
        click.echo(json.dumps(teams_manifest(app_id, url), indent=2))


if __name__ == "__main__":
    main()
