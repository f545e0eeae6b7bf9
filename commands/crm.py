"""HubSpot records -> slabot: a contact's properties as a lead handoff, deal events as outcomes.

Platform-neutral and I/O-free but for storage: the HTTP calls that fetch the records are in
bot/hubspot.py; this module decides what they mean. Outcomes go through `record_outcome`, the
same code path as `POST /api/v1/outcomes`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from commands.actions import record_outcome
from commands.context import Context
from sla.agreement import HubSpotIntegration
from sla.lead import LeadIn
from sla.lifecycle import Refused

log = logging.getLogger("slabot.crm")

CONTACT_PREFIX = "hubspot-contact-"
#: Lead fields that hold a whole number; HubSpot sends every property value as text ("250", "250.0").
_NUMBERS = ("employees", "page_visits")
_BANT = ("need", "budget", "timeframe", "authority")


def contact_external_id(contact_id: str | int) -> str:
    return f"{CONTACT_PREFIX}{contact_id}"


def contact_id_of(lead: LeadIn) -> str | None:
    """The HubSpot contact id of a handoff made from a contact event."""
    ext = lead.external_id or ""
    return ext[len(CONTACT_PREFIX):] if ext.startswith(CONTACT_PREFIX) else None


def _number(text: str) -> int | None:
    try:
        return int(float(text))
    except (ValueError, OverflowError):
        return None


def lead_from_contact(config: HubSpotIntegration, base: LeadIn, properties: Mapping[str, Any],
                      *, crm_url: str | None = None) -> tuple[LeadIn, list[str]]:
    """The handoff `base` (made from the event: id, time) filled with the contact's properties as
    the agreement maps them. A value that does not fit its field (an e-mail that is not one) is
    left out rather than losing the lead; the names of such fields are returned (never values)."""
    body: dict[str, Any] = base.model_dump(exclude_defaults=True)
    if crm_url:
        body["crm_url"] = crm_url
    bant: dict[str, Any] = {}
    for lead_field, prop in config.property_map().items():
        raw = properties.get(prop)
        text = str(raw).strip() if raw is not None else ""
        if not text:
            continue
        if lead_field in _NUMBERS:
            number = _number(text)
            if number is not None:
                body[lead_field] = number
        elif lead_field == "activities":
            # Multi-select properties hold their values separated by ";".
            body["activities"] = [{"type": t.strip()} for t in text.split(";") if t.strip()]
        elif lead_field in _BANT:
            bant[lead_field] = text
        else:
            body[lead_field] = text
    if bant:
        body["bant"] = bant
    dropped: list[str] = []
    for _ in range(len(body) + 1):
        try:
            return LeadIn.model_validate(body), dropped
        except ValidationError as exc:
            bad = {str(err["loc"][0]) for err in exc.errors() if err["loc"]} - {"external_id", "received_at"}
            if not bad:
                raise
            for name in sorted(bad):
                body.pop(name, None)
                dropped.append(name)
    raise AssertionError("unreachable: every field that could fail was dropped")


# --- deals ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DealEvent:
    """A deal event that means an outcome: `type` is opportunity_created, won or lost."""

    deal_id: str
    type: str
    at: datetime | None
    portal_id: int | None = None


def deal_events(config: HubSpotIntegration, events: Iterable[Mapping[str, Any]]) -> list[DealEvent]:
    """deal.creation -> opportunity_created; deal.propertyChange of `dealstage` to a won or lost
    stage -> won / lost; every other event means no outcome. In the order they happened."""
    found: list[tuple[int, int, DealEvent]] = []
    for index, event in enumerate(events):
        kind, deal = event.get("subscriptionType"), event.get("objectId")
        if deal is None:
            continue
        outcome = None
        if kind == "deal.creation":
            outcome = "opportunity_created"
        elif kind == "deal.propertyChange" and event.get("propertyName") == "dealstage":
            stage = str(event.get("propertyValue") or "")
            outcome = "won" if stage in config.won_stages else "lost" if stage in config.lost_stages else None
        if outcome is None:
            continue
        occurred = event.get("occurredAt")
        at = datetime.fromtimestamp(occurred / 1000, UTC) if isinstance(occurred, int) else None
        portal = event.get("portalId")
        found.append((occurred if isinstance(occurred, int) else 0, index,
                      DealEvent(str(deal), outcome, at, portal if isinstance(portal, int) else None)))
    return [item for _, _, item in sorted(found, key=lambda t: (t[0], t[1]))]


@dataclass
class OutcomeReport:
    recorded: int = 0
    #: Deal events whose associated contacts are not leads slabot has (or that have none).
    unknown_contacts: int = 0
    #: Outcomes the lead's state does not allow (a lead still in nurture cannot be won).
    refused: int = 0
    by_type: dict[str, int] = field(default_factory=dict)


def _amount(properties: Mapping[str, Any] | None) -> float | None:
    raw = (properties or {}).get("amount")
    try:
        value = float(raw) if raw not in (None, "") else None
    except (TypeError, ValueError):
        return None
    return value if value is not None and 0 <= value <= 1e15 else None


def record_deal_outcomes(ctx: Context, events: list[DealEvent], deals: Mapping[str, Mapping[str, Any]],
                         contacts_of: Mapping[str, list[str]]) -> OutcomeReport:
    """Record each deal event as an outcome of every associated contact that is a lead here."""
    report = OutcomeReport()
    for event in events:
        properties = deals.get(event.deal_id)
        amount = _amount(properties) if event.type != "lost" else None
        crm_url = (f"https://app.hubspot.com/contacts/{event.portal_id}/record/0-3/{event.deal_id}"
                   if event.portal_id is not None else None)
        known = 0
        for contact in contacts_of.get(event.deal_id, []):
            try:
                lead = record_outcome(ctx, external_id=contact_external_id(contact), type=event.type,
                                      amount=amount, at=event.at, crm_url=crm_url)
            except Refused as refused:
                report.refused += 1
                known += 1
                log.info("HubSpot deal %s: %s refused for contact %s: %s", event.deal_id, event.type,
                         contact, refused.reason)
                continue
            if lead is None:
                continue
            known += 1
            report.recorded += 1
            report.by_type[event.type] = report.by_type.get(event.type, 0) + 1
        if not known:
            report.unknown_contacts += 1
            log.info("HubSpot deal %s (%s): no associated contact is a lead here", event.deal_id, event.type)
    return report
