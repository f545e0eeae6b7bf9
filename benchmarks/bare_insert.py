"""The floor the intake benchmarks compare with: a bare FastAPI endpoint doing one INSERT per
request, nothing else (no validation model, no qualification, no routing, no events).

`uvicorn benchmarks.bare_insert:app` with BARE_DB = a SQLite file's path, or a PostgreSQL URL. It
reads the JSON body, inserts it as one row and answers 201 with the new id, the way a hand-written
"store the webhook" endpoint would. SQLite: same pragmas as slabot's (WAL, synchronous=NORMAL), run
by benchmarks.intake on the same pinned core as `slabot serve`, so the printed ratio is what is
judged. PostgreSQL: autocommit, a few connections shared by the thread pool, run by
benchmarks.scaleout as one and as two processes: what one process more costs per request on this
machine when nothing is shared but the database (no lock, no hot row).
"""

from __future__ import annotations

import json
import os
import queue
import sqlite3
import threading
from typing import Annotated, Any

import psycopg
from fastapi import Body, FastAPI

app = FastAPI()
_local = threading.local()


_TABLE = "CREATE TABLE IF NOT EXISTS {name} (id {key}, external_id TEXT UNIQUE, body TEXT)"
_pool: queue.Queue[Any] = queue.Queue()
_made = threading.Semaphore(8)


def _postgres_insert(url: str, lead: dict[str, Any]) -> int:
    """One autocommitted INSERT on one of up to 8 connections of this process (the thread pool has
    40 threads; two processes of 40 connections would pass the server's connection limit)."""
    try:
        conn = _pool.get_nowait()
    except queue.Empty:
        if _made.acquire(blocking=False):
            conn = psycopg.connect(url, autocommit=True)
            # Concurrent CREATE TABLE IF NOT EXISTS collide in PostgreSQL's catalog (two processes here).
            conn.execute("SELECT pg_advisory_lock(1)")
            conn.execute(_TABLE.format(name="bare_lead", key="BIGSERIAL PRIMARY KEY"))
            conn.execute("SELECT pg_advisory_unlock(1)")
        else:
            conn = _pool.get()
    try:
        row = conn.execute("INSERT INTO bare_lead (external_id, body) VALUES (%s, %s) RETURNING id",
                           (lead.get("external_id"), json.dumps(lead))).fetchone()
        return int(row[0]) if row else 0
    finally:
        _pool.put(conn)


def _connection() -> sqlite3.Connection:
    conn: sqlite3.Connection | None = getattr(_local, "conn", None)
    if conn is None:
        conn = sqlite3.connect(os.environ["BARE_DB"], isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute(_TABLE.format(name="lead", key="INTEGER PRIMARY KEY"))
        _local.conn = conn
    return conn


def _insert(lead: dict[str, Any]) -> int:
    target = os.environ["BARE_DB"]
    if target.startswith("postgresql"):
        return _postgres_insert(target, lead)
    conn = _connection()
    cursor = conn.execute("INSERT INTO lead (external_id, body) VALUES (?, ?)",
                          (lead.get("external_id"), json.dumps(lead)))
    return int(cursor.lastrowid or 0)


@app.post("/api/v1/leads", status_code=201)
def create_lead(lead: Annotated[dict[str, Any], Body()]) -> dict[str, int]:
    """FastAPI parses the JSON body and runs this in its thread pool: the plainest endpoint there is."""
    return {"id": _insert(lead)}
