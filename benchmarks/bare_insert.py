"""The floor the intake benchmark compares with: a bare FastAPI endpoint doing one SQLite (WAL)
insert per request, nothing else (no validation model, no qualification, no routing, no events).

`uvicorn benchmarks.bare_insert:app` with BARE_DB=path. It reads the JSON body, inserts it as one
row (same pragmas as slabot's SQLite: WAL, synchronous=NORMAL) and answers 201 with the new id,
the way a hand-written "store the webhook" endpoint would. Run by benchmarks.intake, on the same
pinned core as `slabot serve`, in the same run, so the printed ratio is what is judged.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from typing import Annotated, Any

from fastapi import Body, FastAPI

app = FastAPI()
_local = threading.local()


def _connection() -> sqlite3.Connection:
    conn: sqlite3.Connection | None = getattr(_local, "conn", None)
    if conn is None:
        conn = sqlite3.connect(os.environ["BARE_DB"], isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("CREATE TABLE IF NOT EXISTS lead (id INTEGER PRIMARY KEY, external_id TEXT UNIQUE, body TEXT)")
        _local.conn = conn
    return conn


def _insert(lead: dict[str, Any]) -> int:
    conn = _connection()
    cursor = conn.execute("INSERT INTO lead (external_id, body) VALUES (?, ?)",
                          (lead.get("external_id"), json.dumps(lead)))
    return int(cursor.lastrowid or 0)


@app.post("/api/v1/leads", status_code=201)
def create_lead(lead: Annotated[dict[str, Any], Body()]) -> dict[str, int]:
    """FastAPI parses the JSON body and runs this in its thread pool: the plainest endpoint there is."""
    return {"id": _insert(lead)}
