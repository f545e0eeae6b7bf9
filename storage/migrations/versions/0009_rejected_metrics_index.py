"""rejected metrics index: the month's disqualified leads read from a partial index of their own

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 08:40:00

The month's rejected leads (by reason and source, `storage.metrics.rejected`) were counted by
walking every lead handed off in the month (~40,000 a month) through `ix_lead_handoff_metrics` to
find the few thousand with a disqualification reason. This partial index holds only leads with a
reason, in hand-off order with the columns the count and the scope filters read, so the query reads
just those. A hand-off sets no reason, so intake never writes to it; the disqualify action writes
one entry. The column list and condition are `storage.tables.REJECTED_METRICS` and
`REJECTED_WHERE` as of this revision, copied here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

NAME = "ix_lead_rejected_metrics"
COLUMNS = ["handed_off_at", "disqualify_reason", "source", "closed_at", "team", "owner"]
WHERE = "disqualify_reason IS NOT NULL"


def upgrade() -> None:
    op.create_index(NAME, "lead", COLUMNS, unique=False, sqlite_where=sa.text(WHERE),
                    postgresql_where=sa.text(WHERE))


def downgrade() -> None:
    op.drop_index(NAME, table_name="lead")
