"""A database error never puts a lead's personal data in the logs.

SQLAlchemy quotes a failed statement's parameters (the lead's e-mail, name, phone) in the error's
message, and so in every log line and traceback that shows it, unless the engine hides them. The
database here is made to refuse every new lead (a trigger), the handoff is sent over real HTTP,
and every log record written meanwhile, tracebacks included, is searched for the lead's data.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import sqlalchemy as sa

from bot.http.app import create_app
from bot.services import build_services
from sla.agreement import Agreement
from sla.clock import FixedClock
from storage.db import Database
from tests.conftest import EXAMPLE_LEAD, INTAKE_TOKEN, LiveServer, make_settings

PERSONAL = {"email": "wanda.privacy@umbrella.example", "first_name": "Wanda", "last_name": "Privatova",
            "phone": "+1 555 0199", "external_id": "db-error-1"}


def refuse_new_leads(db: Database) -> None:
    with db.engine.begin() as conn:
        if db.is_sqlite:
            conn.execute(sa.text("CREATE TRIGGER refuse_leads BEFORE INSERT ON lead "
                                 "BEGIN SELECT RAISE(ABORT, 'the disk is full'); END"))
        else:
            conn.execute(sa.text("CREATE FUNCTION refuse_leads() RETURNS trigger LANGUAGE plpgsql AS "
                                 "$$ BEGIN RAISE EXCEPTION 'the disk is full'; END $$"))
            conn.execute(sa.text("CREATE TRIGGER refuse_leads BEFORE INSERT ON lead "
                                 "FOR EACH ROW EXECUTE FUNCTION refuse_leads()"))


@contextlib.contextmanager
def captured() -> Iterator[io.StringIO]:
    """Every record of every logger (uvicorn's own do not propagate to the root), formatted with
    its traceback, as an operator's log file would show it. Entered once the server runs: uvicorn
    sets its loggers' handlers when it starts."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    loggers = [logging.getLogger(), logging.getLogger("uvicorn"), logging.getLogger("uvicorn.error")]
    for logger in loggers:
        logger.addHandler(handler)
    yield stream
    for logger in loggers:
        logger.removeHandler(handler)


def test_a_database_error_logs_no_statement_parameters(any_db: Database, agreement: Agreement,
                                                        clock: FixedClock) -> None:
    refuse_new_leads(any_db)
    body: dict[str, Any] = json.loads(EXAMPLE_LEAD.read_text())
    body.update(PERSONAL)
    services = build_services(make_settings(database_url=any_db.url), clock=clock, agreement=agreement, db=any_db)
    with LiveServer(create_app(services)) as server, captured() as log:
        response = httpx.post(f"{server.url}/api/v1/leads", json=body,
                              headers={"Authorization": f"Bearer {INTAKE_TOKEN}"})
    assert response.status_code == 500
    logged = log.getvalue()
    # The failure was logged, with its statement, so the test looked at the right lines ...
    assert "the disk is full" in logged and "INSERT INTO lead" in logged
    assert "SQL parameters hidden" in logged
    # ... and none of the lead's personal data is in them.
    for value in PERSONAL.values():
        if value != PERSONAL["external_id"]:
            assert value not in logged
    assert "Wanda Privatova" not in logged
