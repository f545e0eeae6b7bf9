"""percentile bucket indexes: the second pass of a percentile reads its few rows by bucket

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 05:45:00

`status()` finds each percentile in two passes (`storage.metrics.sql._percentiles`): bucket
counts over the month's cohort, then the values of the one or two buckets holding the ranks. That
second pass scanned the whole cohort again (~27,000 index entries a month) to keep a few hundred
rows: two of status()'s fifteen statements, about a sixth of its time with 1,000,000 leads of
history. These partial indexes on the bucket expression and the routing instant give it those rows
directly. Only leads with a value are in them: a hand-off (no first touch, no card yet) writes no
entry. The expressions are `storage.tables.SPEED_BUCKET` and `DELAY_BUCKET` as of this revision,
copied here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_lead_speed_bucket", "CAST(speed_to_lead_min AS BIGINT)", "speed_to_lead_min IS NOT NULL"),
    ("ix_lead_delay_bucket", "CAST(system_delay_s * 10 AS BIGINT)", "system_delay_s IS NOT NULL"),
)


def upgrade() -> None:
    for name, bucket, where in INDEXES:
        op.create_index(name, "lead", [sa.text(bucket), "routed_at"], unique=False,
                        sqlite_where=sa.text(where), postgresql_where=sa.text(where))


def downgrade() -> None:
    for name, _, _ in INDEXES:
        op.drop_index(name, table_name="lead")
