"""The Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.schema import CreateIndex
from sqlalchemy.sql.elements import TextClause
from sqlmodel import SQLModel

import storage.tables  # noqa: F401
from storage.db import Database


# SQLite cannot reflect expression indexes, so autogenerate skips them there (and says so);
# test_expression_indexes_are_the_models checks them instead. PostgreSQL compares them here.
@pytest.mark.filterwarnings("ignore:.*expression-based index")
def test_migrated_schema_matches_the_models(any_db: Database) -> None:
    with any_db.engine.connect() as connection:
        context = MigrationContext.configure(connection)
        diff = compare_metadata(context, SQLModel.metadata)
    assert diff == []
    assert any_db.is_current()


def test_expression_indexes_are_the_models(tmp_path: Path) -> None:
    """The percentile bucket indexes the migrations create on SQLite are the models' own, expression
    and condition included (a query uses such an index only if its expression is the same)."""
    db = Database(f"sqlite:///{tmp_path / 'schema.db'}")
    db.upgrade()
    db.dispose()
    declared = {str(index.name): str(CreateIndex(index).compile(dialect=sqlite_dialect.dialect())).strip()
                for index in SQLModel.metadata.tables["lead"].indexes
                if any(isinstance(e, TextClause) for e in index.expressions)}
    with sqlite3.connect(tmp_path / "schema.db") as connection:
        stored = {name: sql for name, sql in connection.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND name IN ({})".format(
                ", ".join("?" * len(declared))), list(declared))}
    assert sorted(declared) == ["ix_lead_delay_bucket", "ix_lead_speed_bucket"]
    assert stored == declared


def test_upgrade_twice_is_harmless(any_db: Database) -> None:
    any_db.upgrade()
    assert any_db.is_current()
