"""The throwaway PostgreSQL server that dev.py and CI start for the test suite."""

from __future__ import annotations

import os
import socket
import time

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.support.postgres import find_pg_bin, throwaway_postgres


def _libpq_dsn(sqlalchemy_url: str) -> str:
    """Turn "postgresql+psycopg://..." into a plain libpq URL for psycopg.connect."""
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


def _accepts_connections(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


@pytest.mark.postgres
@pytest.mark.enable_socket  # pytest-socket: this test needs real TCP
def test_throwaway_postgres_starts_answers_and_goes_away() -> None:
    if find_pg_bin() is None:
        reason = "PostgreSQL binaries (initdb, pg_ctl) not found; apt-get install postgresql"
        if os.environ.get("SLABOT_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"SLABOT_REQUIRE_POSTGRES=1 but {reason}")
        pytest.skip(reason)

    with throwaway_postgres() as url:
        parsed = make_url(url)
        assert parsed.drivername == "postgresql+psycopg"
        assert parsed.database == "slabot_test"
        assert parsed.host == "127.0.0.1"
        assert parsed.port is not None
        with psycopg.connect(_libpq_dsn(url), connect_timeout=5) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
            assert conn.execute("select current_database()").fetchone() == ("slabot_test",)

    # pg_ctl stop has returned; the postmaster may need a moment to release the port.
    deadline = time.monotonic() + 5
    while _accepts_connections(parsed.host, parsed.port) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _accepts_connections(parsed.host, parsed.port), "server still listening"
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(_libpq_dsn(url), connect_timeout=2)
