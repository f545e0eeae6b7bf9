"""Leads whose owner is not one of the scope's reps still count for that owner: a rep no longer in
the agreement ("zed"), and a rep of another team who owns a lead of this team ("eve", midmarket,
owning an SMB lead). status() counts the scope's reps in its month scans and such owners in
queries of their own (storage.metrics.marketing._handoff_groups, sales._cohort_counts)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sla.agreement import Agreement
from storage import metrics
from storage.db import Database
from storage.tables import Lead

#: Tuesday 2026-11-24 10:00 in New York.
T0 = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def smb_lead(id: int, owner: str, day: int, *, touched: bool) -> Lead:
    at = utc(f"2026-11-{day:02d}T15:00")
    values: dict[str, Any] = dict(
        id=id, agreement_version="test", name=f"Lead {id}", company=f"Co {id}", source="webinar",
        offer="q4-webinar", handed_off_at=at, received_at=at, value=900.0, score=25, workable=True,
        tier="standard", team="smb", owner=owner, routed_at=at, owner_since=at,
        sla_due=utc(f"2026-11-{day:02d}T17:00"), first_touch_due=utc(f"2026-11-{day:02d}T17:00"),
        state="working" if touched else "routed", is_open=True)
    if touched:
        first = utc(f"2026-11-{day:02d}T15:30")
        values.update(first_touch_at=first, first_touch_met=True, speed_to_lead_min=30.0, attempts=1,
                      calls=1, last_attempt_at=first, claimed_at=first)
    return Lead(**values)


def status(db: Database, agreement: Agreement, scope: str) -> dict[str, Any]:
    with db.read() as session:
        return metrics.status(session, agreement=agreement, calendar=agreement.calendar(), as_of=T0,
                              scope=scope).model_dump(mode="json")


def test_owners_outside_the_scope_count_for_themselves(any_db: Database, agreement: Agreement) -> None:
    assert agreement.rep("zed") is None and agreement.rep("ana") is not None
    with any_db.write() as session:
        session.add_all([smb_lead(1, "zed", 10, touched=True), smb_lead(2, "eve", 12, touched=False),
                         smb_lead(3, "ana", 16, touched=True)])
    for scope in ("all", "team:smb"):
        result = status(any_db, agreement, scope)
        marketing, sales = result["marketing"], result["sales"]
        assert marketing["workable"] == 3, scope
        assert (marketing["per_rep"]["zed"], marketing["per_rep"]["eve"], marketing["per_rep"]["ana"]) == (1, 1, 1)
        assert marketing["per_rep"]["ben"] == 0
        assert sales["cohort"] == 3
        assert (sales["per_rep"]["zed"]["cohort"], sales["per_rep"]["zed"]["within_sla_pct"]) == (1, 1.0)
        assert (sales["per_rep"]["eve"]["cohort"], sales["per_rep"]["eve"]["worked_pct"]) == (1, 0.0)
        assert sales["per_rep"]["eve"]["open_breaches"] == 1
    # The team's own reps only, when nobody else owns its leads.
    mid = status(any_db, agreement, "team:midmarket")
    assert mid["marketing"]["workable"] == 0 and "zed" not in mid["marketing"]["per_rep"]
