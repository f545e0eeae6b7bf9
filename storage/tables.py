"""The database schema: SQLModel tables. Alembic migrations in storage/migrations mirror it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in, timezone-aware UTC out, on SQLite (which has no zones) and PostgreSQL."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime stored: every instant must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _at(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime(), nullable=nullable, index=index)


def _json(default: Any = None) -> Any:
    factory = (lambda: default.copy()) if isinstance(default, dict | list) else (lambda: default)
    return Field(default_factory=factory, sa_type=sa.JSON(), nullable=default is None)


#: The columns of the covering index that finds leads by hand-off instant for the metrics.
HANDOFF_METRICS = ("handed_off_at", "workable", "source", "offer", "owner", "team", "value", "opportunity_at",
                   "opportunity_amount", "won_at", "bookings", "disqualify_reason", "closed_at")
#: The columns of the covering index that finds leads by routing instant (the Sales cohort).
ROUTED_METRICS = ("routed_at", "workable", "sla_due", "first_touch_at", "first_touch_met", "owner", "team",
                  "tier", "state", "attempts", "last_attempt_at", "connects", "closed_at", "opportunity_at",
                  "speed_to_lead_min", "card_posted_at", "system_delay_s")
#: The same per owner (the cohort's counts per rep, read in owner order: no sort for the grouping).
OWNER_ROUTED_METRICS = ("owner", "routed_at", "workable", "sla_due", "first_touch_at", "first_touch_met", "team",
                        "tier", "state", "attempts", "last_attempt_at", "connects", "closed_at", "opportunity_at")

#: The columns of the index that finds opportunities by their instant: the amounts, the Sales
#: cohort's conditions and the scope (whether the SLA pays, yesterday's opportunities; migration 0008).
OPPORTUNITY_METRICS = ("opportunity_at", "opportunity_amount", "workable", "routed_at", "sla_due", "first_touch_at",
                       "first_touch_met", "handed_off_at", "team", "owner")

#: The columns of the partial index of the leads Sales disqualified (a reason is set), found by
#: hand-off instant: the month's rejected leads by reason and source (migration 0009).
REJECTED_METRICS = ("handed_off_at", "disqualify_reason", "source", "closed_at", "team", "owner")
#: Its condition: only rejected leads are in it, so a hand-off (no reason yet) never writes to it.
REJECTED_WHERE = "disqualify_reason IS NOT NULL"
#: The columns of the partial index of closed leads by closing instant: the past breach list's
#: leads closed since `as_of`, filtered on the index alone (migration 0010).
CLOSED_METRICS = ("closed_at", "workable", "routed_at", "sla_due", "first_touch_at", "owner", "team")
#: Its condition: only closed leads are in it, so a hand-off (an open lead) never writes to it.
CLOSED_WHERE = "closed_at IS NOT NULL"
#: The buckets of the percentiles' first pass (`storage.metrics.sql._percentiles`: whole minutes of
#: speed to lead, tenths of a second of system delay), as SQL. The second pass, the values of the
#: buckets holding the ranks, finds them by bucket and routing instant through a partial index on
#: the same expression (migration 0011): a few hundred rows, not a scan of the month's cohort.
SPEED_BUCKET = "CAST(speed_to_lead_min AS BIGINT)"
DELAY_BUCKET = "CAST(system_delay_s * 10 AS BIGINT)"
#: Their conditions: only leads with a value are in them, so a hand-off never writes to them.
SPEED_WHERE = "speed_to_lead_min IS NOT NULL"
DELAY_WHERE = "system_delay_s IS NOT NULL"


class Lead(SQLModel, table=True):
    """The current state of one lead; its history is in LeadEvent."""

    __tablename__ = "lead"
    __table_args__ = (
        sa.Index("ix_lead_open_next_check", "is_open", "next_check_at"),
        sa.Index("ix_lead_team_handed_off", "team", "handed_off_at"),
        sa.Index("ix_lead_owner_open", "owner", "is_open"),
        sa.Index("ix_lead_owner_since", "owner", "owner_since"),
        # The metric reports (storage/metrics/): the month's leads are read from these
        # covering indexes alone, never from the wide lead rows (migration 0005).
        sa.Index("ix_lead_handoff_metrics", *HANDOFF_METRICS),
        sa.Index("ix_lead_routed_metrics", *ROUTED_METRICS),
        sa.Index("ix_lead_owner_routed_metrics", *OWNER_ROUTED_METRICS),
        # Open breaches (untouched open leads past their deadline), and one local day's first
        # touches, opportunities, deadlines and closes for "yesterday" and the past breach list.
        sa.Index("ix_lead_open_first_touch", "is_open", "first_touch_at", "sla_due"),
        sa.Index("ix_lead_first_touch_at", "first_touch_at", "first_touch_met"),
        sa.Index("ix_lead_opportunity_at", *OPPORTUNITY_METRICS),
        sa.Index("ix_lead_rejected_metrics", *REJECTED_METRICS, sqlite_where=sa.text(REJECTED_WHERE),
                 postgresql_where=sa.text(REJECTED_WHERE)),
        sa.Index("ix_lead_sla_due", "sla_due"),
        sa.Index("ix_lead_closed_at", *CLOSED_METRICS, sqlite_where=sa.text(CLOSED_WHERE),
                 postgresql_where=sa.text(CLOSED_WHERE)),
        sa.Index("ix_lead_speed_bucket", sa.text(SPEED_BUCKET), "routed_at", sqlite_where=sa.text(SPEED_WHERE),
                 postgresql_where=sa.text(SPEED_WHERE)),
        sa.Index("ix_lead_delay_bucket", sa.text(DELAY_BUCKET), "routed_at", sqlite_where=sa.text(DELAY_WHERE),
                 postgresql_where=sa.text(DELAY_WHERE)),
    )

    id: int | None = Field(default=None, primary_key=True)
    external_id: str | None = Field(default=None, unique=True, max_length=200)
    idempotency_key: str | None = Field(default=None, unique=True, max_length=255)
    #: SHA-256 of the handoff that created the lead (canonical JSON of the validated body): the
    #: same Idempotency-Key with another body is refused with 409, not answered with this lead.
    fingerprint: str | None = Field(default=None, max_length=64)
    agreement_version: str = Field(max_length=32)

    # What Marketing sent (the whole body is kept in `payload`).
    email: str | None = Field(default=None, max_length=200)
    name: str = Field(max_length=400)
    title: str | None = Field(default=None, max_length=200)
    company: str | None = Field(default=None, max_length=200)
    employees: int | None = None
    source: str | None = Field(default=None, max_length=200)
    offer: str | None = Field(default=None, max_length=200)
    crm_url: str | None = Field(default=None, max_length=500)
    payload: dict[str, Any] = _json({})
    received_at: datetime | None = _at()
    handed_off_at: datetime = _at(nullable=False, index=True)

    # What the agreement made of it.
    workable: bool
    score: int
    score_reasons: list[str] = _json([])
    reasons: list[str] = _json([])
    nurture_reason: str | None = Field(default=None, max_length=64)
    persona: str | None = Field(default=None, max_length=64)
    value: float = 0.0
    tier: str | None = Field(default=None, max_length=64)

    # Where it went and how it is being worked.
    state: str = Field(max_length=20, index=True)
    is_open: bool = False
    version: int = 1
    team: str | None = Field(default=None, max_length=64)
    owner: str | None = Field(default=None, max_length=64)
    previous_owners: list[str] = _json([])
    routing_reason: str | None = Field(default=None, max_length=500)
    routed_at: datetime | None = _at(index=True)
    owner_since: datetime | None = _at()
    claim_due: datetime | None = _at()
    #: The current owner's first-touch deadline (a reassignment gives a fresh window) ...
    first_touch_due: datetime | None = _at()
    #: ... while the numbers judge the lead against its original deadline.
    sla_due: datetime | None = _at()
    claimed_at: datetime | None = _at()
    first_touch_at: datetime | None = _at()
    first_touch_met: bool | None = None
    #: Business minutes from routing to first touch (speed to lead), frozen at the first touch.
    speed_to_lead_min: float | None = None
    card_posted_at: datetime | None = _at()
    system_delay_s: float | None = None
    attempts: int = 0
    calls: int = 0
    emails: int = 0
    connects: int = 0
    last_attempt_at: datetime | None = _at()
    #: The next instant the engine must look at this lead (nudge, claim timeout, cadence).
    next_check_at: datetime | None = _at()
    #: Ladder steps already fired for the current owner (indexes into the agreement's nudges).
    nudge_steps_done: int = 0
    cadence_reminded: int = 0
    cadence_warned: bool = False
    owner_seq: int = 0
    closed_at: datetime | None = _at()
    disqualify_reason: str | None = Field(default=None, max_length=64)
    opportunity_at: datetime | None = _at()
    opportunity_amount: float | None = None
    won_at: datetime | None = _at()
    bookings: float | None = None
    lost_at: datetime | None = _at()
    #: The agreement experiment that sent this lead to Sales although it is not workable (its key).
    experiment: str | None = Field(default=None, max_length=64, index=True)


class ExperimentCount(SQLModel, table=True):
    """How many leads each experiment has taken: a conditional UPDATE (`taken < limit`) claims a
    place, so the limit holds under concurrent intake on SQLite and PostgreSQL alike."""

    __tablename__ = "experiment_count"
    key: str = Field(primary_key=True, max_length=64)
    taken: int = 0
    updated_at: datetime = _at(nullable=False)


class LeadEvent(SQLModel, table=True):
    """Append-only audit log: who did what to which lead, when and why."""

    __tablename__ = "lead_event"
    id: int | None = Field(default=None, primary_key=True)
    lead_id: int = Field(foreign_key="lead.id", index=True)
    at: datetime = _at(nullable=False)
    actor: str = Field(max_length=100)
    type: str = Field(max_length=40)
    data: dict[str, Any] = _json({})


class RepStatus(SQLModel, table=True):
    """A rep's availability (`/sla away`, `/sla back`)."""

    __tablename__ = "rep_status"
    rep: str = Field(primary_key=True, max_length=64)
    away: bool = False
    away_until: datetime | None = _at()
    updated_at: datetime = _at(nullable=False)


class RoutingCursor(SQLModel, table=True):
    """Round-robin position per team, so a restart does not send the next lead to the first rep."""

    __tablename__ = "routing_cursor"
    team: str = Field(primary_key=True, max_length=64)
    last_rep: str | None = Field(default=None, max_length=64)
    updated_at: datetime = _at(nullable=False)


class OutboxMessage(SQLModel, table=True):
    """A side effect to deliver to chat, written in the same transaction as what caused it."""

    __tablename__ = "outbox"
    __table_args__ = (sa.Index("ix_outbox_pending", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    #: Unique per effect (e.g. `card:42`, `nudge:42:1:0:ab12`): the same effect is never queued twice.
    dedupe_key: str = Field(unique=True, max_length=255)
    kind: str = Field(max_length=20)            # card | dm | channel | digest
    platform: str = Field(max_length=10)        # slack | teams | console
    target: str = Field(max_length=255)         # channel, user or conversation id
    lead_id: int | None = Field(default=None, index=True)
    payload: dict[str, Any] = _json({})
    status: str = Field(default="pending", max_length=10)   # pending | sending | done | dead
    attempts: int = 0
    next_attempt_at: datetime = _at(nullable=False)
    claimed_by: str | None = Field(default=None, max_length=64)
    claimed_at: datetime | None = _at()
    created_at: datetime = _at(nullable=False)
    done_at: datetime | None = _at()
    last_error: str | None = Field(default=None, max_length=500)


class MessageRef(SQLModel, table=True):
    """Where a lead's card lives on a platform, so every change edits that message."""

    __tablename__ = "message_ref"
    __table_args__ = (sa.UniqueConstraint("lead_id", "platform"),)
    id: int | None = Field(default=None, primary_key=True)
    lead_id: int = Field(index=True)
    platform: str = Field(max_length=10)
    channel: str = Field(max_length=255)
    message_id: str = Field(max_length=255)
    posted_at: datetime = _at(nullable=False)


class InboundReceipt(SQLModel, table=True):
    """Inbound ids already processed (Slack event_id, HubSpot eventId): retries are dropped."""

    __tablename__ = "inbound_receipt"
    __table_args__ = (sa.UniqueConstraint("source", "key"),)
    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=20)
    key: str = Field(max_length=255)
    received_at: datetime = _at(nullable=False)


class ChannelBinding(SQLModel, table=True):
    """A chat channel bound to an agreement team with `/sla link TEAM`."""

    __tablename__ = "channel_binding"
    __table_args__ = (sa.UniqueConstraint("team", "platform"),)
    id: int | None = Field(default=None, primary_key=True)
    team: str = Field(max_length=64)
    platform: str = Field(max_length=10)
    channel: str = Field(max_length=255)
    bound_by: str | None = Field(default=None, max_length=100)
    bound_at: datetime = _at(nullable=False)


class ConversationRef(SQLModel, table=True):
    """A Teams conversation the bot was added to (team channel, group chat or personal chat)."""

    __tablename__ = "conversation_ref"
    conversation_id: str = Field(primary_key=True, max_length=255)
    kind: str = Field(max_length=20)            # channel | personal | groupChat
    service_url: str = Field(max_length=500)
    tenant_id: str | None = Field(default=None, max_length=100)
    team_id: str | None = Field(default=None, max_length=255)
    user_aad_id: str | None = Field(default=None, max_length=100, index=True)
    reference: dict[str, Any] = _json({})
    updated_at: datetime = _at(nullable=False)


class PlatformUser(SQLModel, table=True):
    """A chat user matched to a person of the agreement (by id, or by e-mail from a lookup)."""

    __tablename__ = "platform_user"
    __table_args__ = (sa.UniqueConstraint("platform", "user_id"),)
    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=10)
    user_id: str = Field(max_length=255)
    email: str | None = Field(default=None, max_length=200)
    updated_at: datetime = _at(nullable=False)


class JobRun(SQLModel, table=True):
    """One row per periodic effect that must happen once (a digest per recipient per local day)."""

    __tablename__ = "job_run"
    __table_args__ = (sa.UniqueConstraint("job", "period_key"),)
    id: int | None = Field(default=None, primary_key=True)
    job: str = Field(max_length=40)
    period_key: str = Field(max_length=200)
    ran_at: datetime = _at(nullable=False)


class OutboxLane(SQLModel, table=True):
    """Who delivers to one channel or person: a lease held by one worker at a time, so two workers
    never double a platform's per-channel rate. The holder renews it while it has rows to send for
    the lane; once it lapses (the holder went idle or died) any worker may take the lane."""

    __tablename__ = "outbox_lane"
    platform: str = Field(primary_key=True, max_length=10)
    target: str = Field(primary_key=True, max_length=255)
    holder: str | None = Field(default=None, max_length=64)
    lease_until: datetime = _at(nullable=False)


class DeskSignin(SQLModel, table=True):
    """A one-time sign-in link to the desk (bot/desk): only the SHA-256 of its token is stored; a
    POST spends it once (`used_at`), before `expires_at`."""

    __tablename__ = "desk_signin"
    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(unique=True, max_length=64)
    #: Who it signs in: `rep:KEY`, `manager:TEAM`, `marketing_vp` or `sales_vp`.
    person: str = Field(max_length=100)
    next_path: str = Field(default="/desk", max_length=500)
    created_at: datetime = _at(nullable=False)
    expires_at: datetime = _at(nullable=False)
    used_at: datetime | None = _at()
