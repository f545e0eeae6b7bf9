"""desk_signin: one-time sign-in links to the desk

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 05:45:00

`/sla desk` and `slabot desk link` create a link whose token is stored only as its SHA-256; the
desk's "Sign in" POST spends it once (a conditional UPDATE on `used_at`) before it expires.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.tables

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('desk_signin',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('person', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('next_path', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('created_at', storage.tables.UTCDateTime(), nullable=False),
    sa.Column('expires_at', storage.tables.UTCDateTime(), nullable=False),
    sa.Column('used_at', storage.tables.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )


def downgrade() -> None:
    op.drop_table('desk_signin')
