"""opportunity metrics index: the month's opportunities read with their amount and first touch

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 05:55:00

Whether the SLA pays (issue 11 item 8) sums the opportunity amounts of the Sales cohort split by
first touch met or missed. The cohort's covering indexes hold no amounts, so that sum reads the
month's opportunities through `ix_lead_opportunity_at`; with only (opportunity_at,
opportunity_amount) it had to read each opportunity's wide lead row for the cohort's conditions.
The index now also holds those columns (and `handed_off_at`, which yesterday's opportunities
filter on), so both queries stay on the index. The column list is
`storage.tables.OPPORTUNITY_METRICS` as of this revision, copied here.
"""

from __future__ import annotations

from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

NAME = "ix_lead_opportunity_at"
BEFORE = ["opportunity_at", "opportunity_amount"]
AFTER = ["opportunity_at", "opportunity_amount", "workable", "routed_at", "sla_due", "first_touch_at",
         "first_touch_met", "handed_off_at", "team", "owner"]


def upgrade() -> None:
    op.drop_index(NAME, table_name="lead")
    op.create_index(NAME, "lead", AFTER, unique=False)


def downgrade() -> None:
    op.drop_index(NAME, table_name="lead")
    op.create_index(NAME, "lead", BEFORE, unique=False)
