"""outbox lane leases: one worker at a time delivers to a channel

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 05:10:00

A worker holds a lane (a channel or a person on one platform) by a short lease it renews while it
has rows to send there, so two workers never double the per-channel rate of Slack or Teams.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.tables

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('outbox_lane',
    sa.Column('platform', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('target', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('holder', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('lease_until', storage.tables.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('platform', 'target')
    )


def downgrade() -> None:
    op.drop_table('outbox_lane')
