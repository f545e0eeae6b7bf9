"""closed metrics index: the leads closed since a past instant filtered on the index alone

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 08:50:00

The open breaches as of a past instant include the leads closed since then (`storage.metrics.
breaches`), found through `ix_lead_closed_at`. With `closed_at` alone in it, each of those leads
was read from its wide row to test the breach's conditions: as of a month ago (the desk overview's
previous period), that is every lead closed since, ~30,000 rows, twice (the counts and the list),
~25 ms of a 1,000,000-lead history. The index now holds the columns those conditions and the scope
filters read, so only the few breached leads are read from the table; and only closed leads are in
it (a hand-off, an open lead, no longer writes an entry). The column list and condition are
`storage.tables.CLOSED_METRICS` and `CLOSED_WHERE` as of this revision, copied here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

NAME = "ix_lead_closed_at"
BEFORE = ["closed_at"]
AFTER = ["closed_at", "workable", "routed_at", "sla_due", "first_touch_at", "owner", "team"]
WHERE = "closed_at IS NOT NULL"


def upgrade() -> None:
    op.drop_index(NAME, table_name="lead")
    op.create_index(NAME, "lead", AFTER, unique=False, sqlite_where=sa.text(WHERE), postgresql_where=sa.text(WHERE))


def downgrade() -> None:
    op.drop_index(NAME, table_name="lead")
    op.create_index(NAME, "lead", BEFORE, unique=False)
