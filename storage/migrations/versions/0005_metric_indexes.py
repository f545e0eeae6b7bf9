"""metric indexes: the month's reports read covering indexes, one day's highlights a day's range

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 05:10:00

With 1,000,000 leads of history every report query found the month's ~40,000 leads through a
one-column index and then read each wide lead row (its JSON payload included). The covering
indexes hold every column the month's aggregations use, so those queries never touch the table
(the per-owner one also gives the cohort's per-rep counts in owner order, without a sort).
The day indexes let "yesterday" and the past breach list read one day's rows instead of two
months' (LOOKBACK). The column lists are `storage.tables.*_METRICS` as of
this revision, copied here so a later change of the model cannot change what this revision did.
"""

from __future__ import annotations

from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

INDEXES: dict[str, list[str]] = {
    "ix_lead_handoff_metrics": [
        "handed_off_at", "workable", "source", "offer", "owner", "team", "value", "opportunity_at",
        "opportunity_amount", "won_at", "bookings", "disqualify_reason", "closed_at"],
    "ix_lead_routed_metrics": [
        "routed_at", "workable", "sla_due", "first_touch_at", "first_touch_met", "owner", "team", "tier",
        "state", "attempts", "last_attempt_at", "connects", "closed_at", "opportunity_at",
        "speed_to_lead_min", "card_posted_at", "system_delay_s"],
    "ix_lead_owner_routed_metrics": [
        "owner", "routed_at", "workable", "sla_due", "first_touch_at", "first_touch_met", "team", "tier",
        "state", "attempts", "last_attempt_at", "connects", "closed_at", "opportunity_at"],
    "ix_lead_open_first_touch": ["is_open", "first_touch_at", "sla_due"],
    "ix_lead_first_touch_at": ["first_touch_at", "first_touch_met"],
    "ix_lead_opportunity_at": ["opportunity_at", "opportunity_amount"],
    "ix_lead_sla_due": ["sla_due"],
    "ix_lead_closed_at": ["closed_at"],
}


def upgrade() -> None:
    # Plain CREATE INDEX (no batch copy of the table on SQLite): adding an index needs no rebuild.
    for name, columns in INDEXES.items():
        op.create_index(name, "lead", columns, unique=False)


def downgrade() -> None:
    for name in reversed(INDEXES):
        op.drop_index(name, table_name="lead")
