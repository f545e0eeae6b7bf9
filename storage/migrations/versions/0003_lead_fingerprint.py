"""fingerprint of the handoff that created each lead

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 05:05:00

A reused Idempotency-Key with a different body is a 409; the fingerprint is what tells the two
bodies apart. Leads created before this revision have none and are compared by their stored body.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('lead', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fingerprint', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('lead', schema=None) as batch_op:
        batch_op.drop_column('fingerprint')
