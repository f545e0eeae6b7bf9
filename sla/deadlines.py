"""Every SLA deadline of a lead, in business time: first touch, claim, nudge ladder, cadence."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sla.agreement import Agreement, Nudge, Tier
from sla.calendar import BusinessCalendar

#: A cadence reminder "the window is ending" fires when this share of the attempt window is gone.
CADENCE_WARNING_AT = 0.9


@dataclass(frozen=True)
class LeadClock:
    """The facts about a lead that its clocks depend on."""

    tier: str
    routed_at: datetime          # first routing: the cadence runs from here
    owner_since: datetime        # current owner: claim window and ladder run from here
    claimed: bool
    touched: bool                # at least one attempt
    attempts: int
    nudge_steps_done: int
    #: The highest attempt number a "next attempt due" reminder was sent for.
    cadence_reminded: int = 0
    cadence_warned: bool = False


@dataclass(frozen=True)
class Due:
    kind: str                    # nudge | claim_timeout | cadence
    at: datetime
    step: int = 0                # ladder index for nudges; attempt number for cadence


class Clocks:
    """The agreement's deadlines computed through its one business calendar."""

    def __init__(self, agreement: Agreement, calendar: BusinessCalendar) -> None:
        self.agreement = agreement
        self.calendar = calendar

    def tier(self, key: str) -> Tier:
        tier = self.agreement.tier(key)
        if tier is None:   # a lead routed under an older agreement whose tier is gone
            tier = self.agreement.sales.tiers[-1]
        return tier

    def window(self, tier_key: str) -> timedelta:
        return self.tier(tier_key).first_touch_within.to_timedelta(self.calendar.day_length)

    def first_touch_due(self, tier_key: str, start: datetime) -> datetime:
        return self.calendar.add(start, self.window(tier_key))

    def claim_due(self, start: datetime) -> datetime | None:
        within = self.agreement.sales.claim_within
        return self.calendar.add(start, within.to_timedelta(self.calendar.day_length)) if within else None

    def nudge_at(self, tier_key: str, start: datetime, nudge: Nudge) -> datetime:
        return self.calendar.add(start, self.window(tier_key) * nudge.at)

    def attempt_due(self, tier_key: str, routed_at: datetime, attempt: int) -> datetime:
        """When attempt number `attempt` (1-based) is due: the first at the first-touch deadline,
        the rest spread evenly over the tier's attempt window."""
        tier = self.tier(tier_key)
        if attempt <= 1:
            return self.first_touch_due(tier_key, routed_at)
        within = tier.attempts.within.to_timedelta(self.calendar.day_length)
        share = (attempt - 1) / max(tier.attempts.count - 1, 1)
        return self.calendar.add(routed_at, within * min(share, 1.0))

    def cadence_warning_at(self, tier_key: str, routed_at: datetime) -> datetime:
        within = self.tier(tier_key).attempts.within.to_timedelta(self.calendar.day_length)
        return self.calendar.add(routed_at, within * CADENCE_WARNING_AT)

    def cadence_met(self, tier_key: str, attempts: int) -> bool:
        return attempts >= self.tier(tier_key).attempts.count

    def next_due(self, lead: LeadClock) -> Due | None:
        """The earliest thing the engine must do for an open lead, or None."""
        candidates: list[Due] = []
        if not lead.touched:
            nudges = self.agreement.nudges
            if lead.nudge_steps_done < len(nudges):
                step = lead.nudge_steps_done
                candidates.append(Due("nudge", self.nudge_at(lead.tier, lead.owner_since, nudges[step]), step))
            if not lead.claimed:
                claim = self.claim_due(lead.owner_since)
                if claim is not None:
                    candidates.append(Due("claim_timeout", claim))
        elif not self.cadence_met(lead.tier, lead.attempts):
            next_attempt = lead.attempts + 1
            if lead.cadence_reminded < next_attempt:
                candidates.append(Due("cadence", self.attempt_due(lead.tier, lead.routed_at, next_attempt),
                                      next_attempt))
            if not lead.cadence_warned:
                candidates.append(Due("cadence_ending", self.cadence_warning_at(lead.tier, lead.routed_at)))
        return min(candidates, key=lambda d: d.at) if candidates else None
