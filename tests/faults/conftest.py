"""Fixtures of the fault-injection suite: the fake Slack enforcing 1 post/s per channel, and a
deployment (database + agreement + slabot processes) on SQLite or PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import fresh_postgres, postgres_url
from tests.fakes.slack_api import FakeSlack
from tests.faults.harness import Stack


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        server.rate_limit_per_channel = 1.0     # Slack: about one post per second per channel
        yield server


def make_stack(kind: str, tmp_path: Path, fake: FakeSlack, lanes: int) -> Stack:
    if kind == "sqlite":
        return Stack(tmp_path, fake, f"sqlite:///{tmp_path / 'slabot.db'}", lanes)
    url = postgres_url()
    if not url:
        pytest.skip("no PostgreSQL: set SLABOT_TEST_POSTGRES_URL")
    fresh_postgres(url).dispose()
    return Stack(tmp_path, fake, url, lanes)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)
