"""Engines and sessions for SQLite (default) and PostgreSQL, and schema migrations with Alembic."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult, Result
from sqlalchemy.exc import IntegrityError as IntegrityError
from sqlmodel import Session as Session

MIGRATIONS = Path(__file__).with_name("migrations")
#: The page cache of each SQLite read connection, in KiB (PRAGMA cache_size; SQLite's default is
#: 2,000). It grows only as pages are read, and bounds how much of a sort stays in memory.
READ_CACHE_KIB = 16384


def affected(result: Result[Any]) -> int:
    """Rows matched by an UPDATE/INSERT: how every compare-and-set learns whether it won."""
    return int(cast(CursorResult[Any], result).rowcount)


_UPSERTS: dict[tuple[str, str, tuple[str, ...], tuple[str, ...], str], Any] = {}


def upsert(session: Session, table: Any, row: dict[str, Any], *, keys: Sequence[str],
           update: Sequence[str] = (), returning: Any = None) -> Any:
    """The one insert-or-ignore (or insert-or-update) of slabot, on SQLite and PostgreSQL alike:
    `INSERT ... ON CONFLICT (keys) DO NOTHING`, or `DO UPDATE SET` the `update` columns from `row`.
    The statement is built once per dialect, table and keys, with the values as parameters.

    Without `returning`: True when a row went in or was updated (the rowcount). With a `returning`
    column: that column of the row written, else None (PostgreSQL reads single-row inserts through
    RETURNING, which leaves rowcount at -1, so a caller that must know on both asks for a column).
    """
    dialect = session.get_bind().dialect.name
    cache = (dialect, table.__tablename__, tuple(keys), tuple(update), "" if returning is None else str(returning))
    statement = _UPSERTS.get(cache)
    if statement is None:
        insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
        statement = (insert.on_conflict_do_update(index_elements=list(keys),
                                                  set_={c: insert.excluded[c] for c in update})
                     if update else insert.on_conflict_do_nothing(index_elements=list(keys)))
        if returning is not None:
            statement = statement.returning(returning)
        _UPSERTS[cache] = statement
    if returning is not None:
        return session.execute(statement, row).scalar()
    # Core on the session's connection: a CursorResult, whose rowcount says whether it wrote.
    return session.connection().execute(statement, row).rowcount > 0


def normalize_url(url: str) -> str:
    """Accept the URLs people paste (`postgres://`, `postgresql://`) and use psycopg 3 for them."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


class Database:
    """One database: a write engine and, on SQLite, a separate read engine.

    SQLite has one writer at a time. Write transactions begin IMMEDIATE so they queue on
    `busy_timeout` instead of failing with "database is locked" when a read turns into a write;
    reads use plain deferred transactions so a slow report never holds the write lock.
    """

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = normalize_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        if self.is_sqlite:
            self.engine = self._sqlite_engine(immediate=True, echo=echo)
            self.read_engine = self._sqlite_engine(immediate=False, echo=echo)
        else:
            # hide_parameters: a database error's message never carries the statement's values
            # (lead e-mails, names), so neither does any log line or traceback that quotes it.
            self.engine = sa.create_engine(self.url, echo=echo, pool_pre_ping=True, hide_parameters=True,
                                           pool_size=10, max_overflow=20)
            self.read_engine = self.engine

    def _sqlite_engine(self, *, immediate: bool, echo: bool) -> sa.Engine:
        memory = self.url in ("sqlite://", "sqlite:///:memory:")
        kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 30},
                                  "hide_parameters": True}
        if memory:
            # One shared connection, or every session would see its own empty database.
            kwargs["poolclass"] = sa.StaticPool
        engine = sa.create_engine(self.url, echo=echo, **kwargs)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None      # we issue BEGIN ourselves (pysqlite recipe)
            cursor = dbapi_conn.cursor()
            if not memory:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            if not immediate:
                # Reports sort a month's rows (storage/metrics): SQLite keeps a sort in memory only
                # up to the page cache's size, so the default 2 MB spilled to temporary files.
                cursor.execute(f"PRAGMA cache_size=-{READ_CACHE_KIB}")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: sa.Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate and not memory else "BEGIN")

        return engine

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A short write transaction: commits on success, rolls back on any error."""
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        with Session(self.read_engine, expire_on_commit=False) as session, session.begin():
            yield session

    # --- migrations ------------------------------------------------------------------------

    def alembic_config(self) -> Config:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        return config

    def upgrade(self) -> None:
        with self.engine.connect() as connection:
            config = self.alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            connection.commit()

    def is_current(self) -> bool:
        """Readiness: the database answers and its schema is at the newest migration."""
        head = ScriptDirectory.from_config(self.alembic_config()).get_current_head()
        with self.read_engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
        return current == head

    def dispose(self) -> None:
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()


@contextmanager
def deferred_rows(session: Session, key: str, write: Callable[[list[dict[str, Any]]], object]) -> Iterator[None]:
    """Rows appended meanwhile to `session.info[key]` are written by one `write(rows)` when the block
    ends without an error (nested blocks leave it to the outermost). What appends must check for
    the list and write at once when there is none."""
    if session.info.get(key) is not None:     # already batching: the outer block writes
        yield
        return
    rows: list[dict[str, Any]] = []
    session.info[key] = rows
    try:
        yield
    finally:
        session.info.pop(key, None)
    if rows:
        write(rows)
