"""Shared fixtures: a real database (SQLite file, or PostgreSQL when configured), an injected
clock, the example agreement, and the app served over real HTTP on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import uvicorn

from bot.http.app import create_app
from bot.services import Services, build_services
from bot.settings import Settings
from commands.context import Context
from sla.agreement import Agreement, load_agreement
from sla.clock import FixedClock
from storage.db import Database

ROOT = Path(__file__).resolve().parents[1]
#: The user-facing examples (examples/README.md) and the test data (tests/fixtures/SOURCES.md):
#: everything the tests read lives in the repo.
EXAMPLES = ROOT / "examples"
EXAMPLE_AGREEMENT = EXAMPLES / "agreement.yaml"
EXAMPLE_LEAD = EXAMPLES / "lead.json"
EXAMPLE_OUTCOME = EXAMPLES / "outcome.json"
FIXTURES = ROOT / "tests" / "fixtures"
INTAKE_TOKEN = "test-intake-token"
#: Tuesday 2026-11-24 10:00 in New York: inside business hours, after the DST change.
T0 = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def agreement() -> Agreement:
    return load_agreement(EXAMPLE_AGREEMENT)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


_worker_databases: dict[str, str] = {}


def postgres_url() -> str | None:
    """The test server's URL; under pytest-xdist, a database of this worker's own on it (created once),
    because tests empty the database they use and workers run at the same time."""
    url = os.environ.get("SLABOT_TEST_POSTGRES_URL")
    if not url and os.environ.get("SLABOT_REQUIRE_POSTGRES") == "1":
        pytest.fail("SLABOT_REQUIRE_POSTGRES=1 but SLABOT_TEST_POSTGRES_URL is not set")
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not url or not worker:
        return url
    if url not in _worker_databases:
        base = sa.engine.make_url(url)
        name = f"{base.database}_{worker}"
        engine = sa.create_engine(base, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :name"),
                                      {"name": name}).first()
                if not exists:
                    conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()
        _worker_databases[url] = base.set(database=name).render_as_string(hide_password=False)
    return _worker_databases[url]


def fresh_postgres(url: str) -> Database:
    """An empty schema in this test process's database (see postgres_url)."""
    db = Database(url)
    with db.engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    db.upgrade()
    return db


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """Runs the test on SQLite and again on PostgreSQL (skipped when no server is configured)."""
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'slabot.db'}")
        db.upgrade()
    else:
        url = postgres_url()
        if not url:
            pytest.skip("no PostgreSQL: set SLABOT_TEST_POSTGRES_URL")
        db = fresh_postgres(url)
    yield db
    db.dispose()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'slabot.db'}")
    database.upgrade()
    yield database
    database.dispose()


def make_settings(**overrides: object) -> Settings:
    values: dict[str, Any] = {"slabot_intake_token": INTAKE_TOKEN, "slabot_agreement": str(EXAMPLE_AGREEMENT)}
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture
def ctx(db: Database, agreement: Agreement, clock: FixedClock) -> Context:
    return Context(db=db, agreement=agreement, clock=clock, platforms=("console",))


@pytest.fixture
def services(db: Database, agreement: Agreement, clock: FixedClock) -> Services:
    return build_services(make_settings(database_url=db.url), clock=clock, agreement=agreement, db=db)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """The real app under uvicorn on 127.0.0.1, in a thread: tests talk to it over real HTTP."""

    def __init__(self, app: object) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")  # type: ignore[arg-type]
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the app did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def live(services: Services) -> Iterator[LiveServer]:
    with LiveServer(create_app(services)) as server:
        yield server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`--dist loadgroup`), the fault-injection suite runs on one worker, one test
    after another: each test starts its own slabot processes and measures how they recover."""
    faults = Path(__file__).parent / "faults"
    for item in items:
        if faults in Path(item.path).parents:
            item.add_marker(pytest.mark.xdist_group("faults"))
