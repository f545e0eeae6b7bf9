"""The desk's overview and leads page with 1,000,000 leads of history (SQLite): server time.

The history is benchmarks.history's (the same steady ~41,700 leads a month ending at END; quick:
200,000 leads). The app runs in this process and is called through its ASGI interface (Starlette's
TestClient), so the time is the server's: routing, the session check, the queries and the page
rendering, without a network. Signed in as the sales VP (everything: the largest pages), as of END.
Median of RUNS after one untimed warm-up call.

- `GET /desk`: the status numbers (the same `status()` as the API) twice per page: as of now, and
  as of the previous period (commands/changes.py) for each figure's change from it. The previous
  period's run on a second connection beside this period's (and the charts' queries), so with a
  free core the page waits for the slower of the two, not their sum; on this shared two-core
  machine the NOTE says how much of the other core was taken. The row counts the calls and misses
  if there are more than STATUS_PER_OVERVIEW (a third would be a regression); then the cumulative
  chart's SQL, the speed-to-lead histogram, both SVG charts and the page;
- `GET /desk/leads`: the newest 50 leads (keyset pagination) and `?after=` a page deep in history;
- `GET /desk/leads?flag=at_risk`: the open untouched leads nearest their deadline first.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func
from sqlmodel import col, select

import storage.metrics
from benchmarks.common import EXAMPLE_AGREEMENT, Row
from benchmarks.history import END, history_db, url
from benchmarks.memory import OtherLoad
from bot.http.app import create_app
from bot.services import build_services
from bot.settings import Settings
from commands import desk
from sla.agreement import load_agreement
from sla.clock import FixedClock
from storage.db import Database
from storage.tables import Lead

RUNS = 7
#: DESIGN.md 5: "desk overview and leads page, 1,000,000 leads: < 200 ms server time".
TARGET_MS = 200.0
#: The overview's `status()` computations: the period shown and the previous period (each figure's
#: change from it needs the numbers as they stood then; no cache, so both are exact).
STATUS_PER_OVERVIEW = 2


def _median_ms(client: TestClient, path: str) -> tuple[float, float]:
    def get() -> None:
        response = client.get(path)
        if response.status_code != 200:
            raise RuntimeError(f"{path}: {response.status_code}")
    get()
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        get()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times)


@contextmanager
def counting_status() -> Iterator[list[int]]:
    """Count the `storage.metrics.status` computations inside the block (the services and
    commands import it from the package when they call it)."""
    calls = [0]
    original = storage.metrics.status

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return original(*args, **kwargs)

    storage.metrics.status = counted
    try:
        yield calls
    finally:
        storage.metrics.status = original


def run(quick: bool = False) -> list[Row]:
    total = 200_000 if quick else 1_000_000
    database_url = url(history_db(total))
    settings = Settings(database_url=database_url, slabot_agreement=str(EXAMPLE_AGREEMENT),
                        slabot_secret_key="bench-desk-secret-key-0123456789", _env_file=None)
    db = Database(database_url)
    db.upgrade()   # the sign-in table (a history built before it existed)
    services = build_services(settings, clock=FixedClock(END), agreement=load_agreement(EXAMPLE_AGREEMENT), db=db)
    app = create_app(services)
    rows: list[Row] = []
    load = OtherLoad()
    with TestClient(app, base_url="http://127.0.0.1") as client:
        link = desk.signin_link(services.ctx, key="sales_vp", base_url="http://127.0.0.1")
        signed: Any = client.post(link, headers={"Origin": "http://127.0.0.1"}, follow_redirects=False)
        if signed.status_code != 303:
            raise RuntimeError(f"sign-in failed: {signed.status_code}")
        with db.read() as session:
            deep = (session.execute(select(func.max(col(Lead.id)))).scalar_one() or 0) // 2
        pages = [("GET /desk (overview, everyone)", "/desk"),
                 ("GET /desk/leads (newest 50)", "/desk/leads"),
                 ("GET /desk/leads?after= (a page half-way back)", f"/desk/leads?after={deep}"),
                 ("GET /desk/leads?flag=at_risk (nearest deadline first)", "/desk/leads?flag=at_risk")]
        # The overview's share that is the status numbers themselves (their own target: < 100 ms).
        services.status(scope="all", as_of=END)
        numbers = []
        for _ in range(RUNS):
            started = time.perf_counter()
            services.status(scope="all", as_of=END)
            numbers.append((time.perf_counter() - started) * 1000)
        with counting_status() as calls:
            if client.get("/desk").status_code != 200:
                raise RuntimeError("/desk did not answer")
        for label, path in pages:
            median, worst = _median_ms(client, path)
            counted = path != "/desk" or calls[0] <= STATUS_PER_OVERVIEW
            share = (f"; status() alone {statistics.median(numbers):.0f} ms, computed {calls[0]}x per page "
                     f"(this period and the previous one)" if path == "/desk" else "")
            rows.append(Row(f"{label}, {total:,} leads of history",
                            f"median {median:.0f} ms (max {worst:.0f}) of {RUNS}, server time{share}{load.note()}",
                            f"< {TARGET_MS:.0f} ms" + (f", status() at most {STATUS_PER_OVERVIEW}x"
                                                       if path == "/desk" else ""),
                            median < TARGET_MS and counted))
    db.dispose()
    return rows
