"""Inbound receipts: the ids of events slabot was sent (a HubSpot eventId, a Slack event_id), so a
sender's retry of the same event is recognised and answered without doing the work twice."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from storage.db import upsert
from storage.tables import InboundReceipt


def record_receipt(session: Session, *, source: str, key: str, now: datetime) -> bool:
    """Record an inbound event id in this transaction; False when it was recorded before."""
    return bool(upsert(session, InboundReceipt, {"source": source, "key": key, "received_at": now},
                       keys=("source", "key")))
