"""What slabot remembers about Teams: the conversations it was added to (for proactive posts)
and the users it has seen (their AAD object id, their `29:` id and their e-mail).

Tables (storage.tables, queried through storage.bindings and storage.identity):
`ConversationRef` for conversations; `PlatformUser` rows with
platform "teams" for users, one keyed by the AAD object id (what the agreement's `teams:` ids
and `identify` use) and one keyed by the `29:` id (what creating a 1:1 chat needs). The two
rows of one person carry the same e-mail (stored lower-cased), which is how a DM addressed to an AAD id or an e-mail
finds the `29:` id. Who a Teams user is (their rows written and read) is commands.interaction's
(`who`, `remember`); this module finds a person's `29:` id for a direct message. All functions here
are synchronous; async callers run them in a thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from storage import bindings, identity
from storage.db import Database, IntegrityError, Session
from storage.tables import ConversationRef

PLATFORM = "teams"
_T = TypeVar("_T")


def base_conversation_id(conversation_id: str) -> str:
    """A channel's id without the `;messageid=...` suffix Teams adds for a thread."""
    return conversation_id.split(";", 1)[0]


def _retrying(db: Database, work: Callable[[Session], _T]) -> _T:
    """Run an upsert; if a concurrent writer inserted the same key first, run it once more
    (it then updates). SQLite serializes writers already; this matters on PostgreSQL."""
    try:
        with db.write() as session:
            return work(session)
    except IntegrityError:
        with db.write() as session:
            return work(session)


@dataclass(frozen=True)
class ConversationInfo:
    """A stored conversation, detached from the session."""

    conversation_id: str
    kind: str
    service_url: str
    tenant_id: str | None
    team_id: str | None
    user_aad_id: str | None
    reference: dict[str, Any]

    @property
    def bot(self) -> dict[str, Any] | None:
        bot = self.reference.get("bot")
        return bot if isinstance(bot, dict) and bot.get("id") else None

    @property
    def user(self) -> dict[str, Any] | None:
        user = self.reference.get("user")
        return user if isinstance(user, dict) and user.get("id") else None


def _info(row: ConversationRef) -> ConversationInfo:
    return ConversationInfo(conversation_id=row.conversation_id, kind=row.kind, service_url=row.service_url,
                            tenant_id=row.tenant_id, team_id=row.team_id, user_aad_id=row.user_aad_id,
                            reference=dict(row.reference or {}))


def save_conversation(db: Database, *, conversation_id: str, kind: str, service_url: str,
                      tenant_id: str | None, team_id: str | None, user_aad_id: str | None,
                      reference: dict[str, Any], now: datetime) -> None:
    """Insert or refresh a conversation reference (Teams says serviceUrl may change: keep the newest)."""
    key = base_conversation_id(conversation_id)

    def work(session: Session) -> None:
        bindings.save_conversation(session, conversation_id=key, kind=kind, service_url=service_url,
                                   tenant_id=tenant_id, team_id=team_id, user_aad_id=user_aad_id,
                                   reference=reference, now=now)

    _retrying(db, work)


def delete_conversation(db: Database, conversation_id: str) -> None:
    with db.write() as session:
        bindings.delete_conversation(session, conversation_id=base_conversation_id(conversation_id))


def delete_team_conversations(db: Database, team_id: str) -> int:
    """Forget every channel of a team (the bot was removed from the team)."""
    with db.write() as session:
        return bindings.delete_team_conversations(session, team_id=team_id)


def get_conversation(db: Database, conversation_id: str) -> ConversationInfo | None:
    with db.read() as session:
        row = bindings.conversation(session, conversation_id=base_conversation_id(conversation_id))
        return _info(row) if row else None


def latest_conversation(db: Database, *, tenant_id: str | None = None) -> ConversationInfo | None:
    """Any conversation (newest first), for the serviceUrl and tenant of a new 1:1 chat or thread."""
    with db.read() as session:
        row = bindings.latest_conversation(session, tenant_id=tenant_id)
        return _info(row) if row else None


def personal_conversation(db: Database, aad_id: str) -> ConversationInfo | None:
    with db.read() as session:
        row = bindings.personal_conversation(session, user_aad_id=aad_id)
        return _info(row) if row else None


# --- users ---------------------------------------------------------------------------------


def find_mri(db: Database, *, aad_id: str | None, email: str | None) -> str | None:
    """The `29:` id of a person addressed by AAD id or e-mail, if we ever saw them."""
    with db.read() as session:
        if email is None and aad_id is not None:
            email = identity.known_email(session, platform=PLATFORM, user_id=aad_id)
        if not email:
            return None
        email = email.lower()
        rows = identity.user_ids_with_email(session, platform=PLATFORM, email=email)
        return next((r for r in rows if r.startswith("29:")), None)


def aad_for_email(db: Database, email: str) -> str | None:
    email = email.strip().lower()
    with db.read() as session:
        rows = identity.user_ids_with_email(session, platform=PLATFORM, email=email)
        return next((r for r in rows if not r.startswith("29:")), None)
