"""Who chat users are: the `platform_user` rows, one per (platform, user id), with the e-mail the
platform's member lookup reported (or none), so a user is looked up once, not at every click."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlmodel import Session, col, select

from storage.tables import PlatformUser


def platform_user(session: Session, *, platform: str, user_id: str) -> PlatformUser | None:
    return session.execute(select(PlatformUser).where(
        col(PlatformUser.platform) == platform, col(PlatformUser.user_id) == user_id)).scalars().first()


def platform_users(session: Session, *, platform: str, user_ids: Sequence[str]) -> dict[str, PlatformUser]:
    rows = session.execute(select(PlatformUser).where(
        col(PlatformUser.platform) == platform, col(PlatformUser.user_id).in_(list(user_ids)))).scalars()
    return {r.user_id: r for r in rows}


def known_email(session: Session, *, platform: str, user_id: str) -> str | None:
    """The e-mail a platform's member lookup reported for this user, if we stored one."""
    email: str | None = session.execute(
        select(PlatformUser.email).where(col(PlatformUser.platform) == platform,
                                         col(PlatformUser.user_id) == user_id)
    ).scalars().first()
    return email


def user_ids_with_email(session: Session, *, platform: str, email: str) -> list[str]:
    """The platform's user ids stored with this (lower-cased) e-mail."""
    return list(session.execute(select(PlatformUser.user_id).where(
        col(PlatformUser.platform) == platform, col(PlatformUser.email) == email)).scalars().all())


def save_user(session: Session, *, platform: str, user_id: str, email: str | None, now: datetime,
              keep_known_email: bool = False) -> None:
    """Insert or refresh a user's row. `keep_known_email`: a lookup without an e-mail keeps the one
    stored (else the row says "the platform reported none", which is asked again later)."""
    row = platform_user(session, platform=platform, user_id=user_id) or PlatformUser(
        platform=platform, user_id=user_id, updated_at=now)
    row.email = (email or row.email) if keep_known_email else email
    row.updated_at = now
    session.add(row)
