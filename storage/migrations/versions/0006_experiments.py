"""experiments: the lead's experiment tag and each experiment's count of leads taken

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 05:40:00

A lead the agreement does not make workable may still go to Sales in an experiment of the
agreement (`experiments:`); the lead keeps the experiment's key, and `experiment_count` holds how
many leads each experiment took, claimed with a conditional UPDATE so the limit holds under
concurrent intake.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.tables

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('experiment_count',
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('taken', sa.Integer(), nullable=False),
    sa.Column('updated_at', storage.tables.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    with op.batch_alter_table('lead', schema=None) as batch_op:
        batch_op.add_column(sa.Column('experiment', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_lead_experiment'), ['experiment'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('lead', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lead_experiment'))
        batch_op.drop_column('experiment')
    op.drop_table('experiment_count')
