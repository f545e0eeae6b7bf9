"""Where messages go: the channels bound to teams with `/sla link`, and the conversation
references a chat platform needs for proactive posts (Teams' `conversation_ref` rows)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from storage.tables import ChannelBinding, ConversationRef


def bound_channel(session: Session, *, team: str, platform: str) -> str | None:
    """The channel a team's cards go to on a platform, if one was bound with `/sla link`."""
    bound: str | None = session.execute(
        select(ChannelBinding.channel).where(col(ChannelBinding.team) == team,
                                             col(ChannelBinding.platform) == platform)
    ).scalars().first()
    return bound


def bound_channels(session: Session, *, teams: Sequence[str], platform: str) -> dict[str, str]:
    """The channels bound with `/sla link` to these teams on a platform, by team (one query: a
    batch of handoffs looks up its teams' channels at once)."""
    rows = session.execute(select(ChannelBinding.team, ChannelBinding.channel).where(
        col(ChannelBinding.team).in_(sorted(set(teams))), col(ChannelBinding.platform) == platform))
    return {str(team): str(channel) for team, channel in rows if channel}


def bind_channel(session: Session, *, team: str, platform: str, channel: str, bound_by: str,
                 now: datetime) -> None:
    """Bind (or re-bind) a team's channel on a platform."""
    binding = session.execute(
        select(ChannelBinding).where(col(ChannelBinding.team) == team, col(ChannelBinding.platform) == platform)
    ).scalars().first()
    if binding is None:
        binding = ChannelBinding(team=team, platform=platform, channel=channel, bound_by=bound_by, bound_at=now)
    binding.channel, binding.bound_by, binding.bound_at = channel, bound_by, now
    session.add(binding)


# --- conversation references ---------------------------------------------------------------


def save_conversation(session: Session, *, conversation_id: str, kind: str, service_url: str,
                      tenant_id: str | None, team_id: str | None, user_aad_id: str | None,
                      reference: dict[str, Any], now: datetime) -> None:
    """Insert or refresh a conversation reference (the service URL may change: keep the newest)."""
    row = session.get(ConversationRef, conversation_id)
    if row is None:
        row = ConversationRef(conversation_id=conversation_id, kind=kind, service_url=service_url, updated_at=now)
    row.kind, row.service_url, row.updated_at = kind, service_url, now
    row.tenant_id = tenant_id or row.tenant_id
    row.team_id = team_id or row.team_id
    row.user_aad_id = user_aad_id or row.user_aad_id
    row.reference = {**(row.reference or {}), **reference}
    session.add(row)


def conversation(session: Session, *, conversation_id: str) -> ConversationRef | None:
    return session.get(ConversationRef, conversation_id)


def delete_conversation(session: Session, *, conversation_id: str) -> None:
    row = session.get(ConversationRef, conversation_id)
    if row is not None:
        session.delete(row)


def delete_team_conversations(session: Session, *, team_id: str) -> int:
    """Forget every channel of a team; how many there were."""
    rows: Sequence[ConversationRef] = session.execute(
        select(ConversationRef).where(col(ConversationRef.team_id) == team_id)).scalars().all()
    for row in rows:
        session.delete(row)
    return len(rows)


def latest_conversation(session: Session, *, tenant_id: str | None = None) -> ConversationRef | None:
    """The newest conversation (of a tenant, if given)."""
    query = select(ConversationRef).order_by(col(ConversationRef.updated_at).desc())
    if tenant_id:
        query = query.where(col(ConversationRef.tenant_id) == tenant_id)
    return session.execute(query.limit(1)).scalars().first()


def personal_conversation(session: Session, *, user_aad_id: str) -> ConversationRef | None:
    """The newest one-to-one conversation with this user."""
    return session.execute(
        select(ConversationRef).where(col(ConversationRef.user_aad_id) == user_aad_id,
                                      col(ConversationRef.kind) == "personal")
        .order_by(col(ConversationRef.updated_at).desc()).limit(1)
    ).scalars().first()
