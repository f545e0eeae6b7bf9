"""The goal planner (the basic SLA): from a bookings goal back to the workable leads Marketing owes.

deals = bookings / deal size; opportunities = deals / win rate; workable leads = opportunities /
opportunity rate; each also per month (a year is 12 months, a quarter 3) and per rep per month,
rounded up; the lead value goal per month is the bookings per month. Pure: no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import yaml

MONTHS = {"year": 12, "quarter": 3, "month": 1}


@dataclass(frozen=True)
class Plan:
    bookings: float
    deal_size: float
    per: str
    win_rate: float
    opportunity_rate: float
    reps: int | None

    @property
    def months(self) -> int:
        return MONTHS[self.per]

    @property
    def deals(self) -> float:
        return self.bookings / self.deal_size

    @property
    def opportunities(self) -> float:
        return self.deals / self.win_rate

    @property
    def workable_leads(self) -> float:
        return self.opportunities / self.opportunity_rate

    def per_month(self) -> dict[str, float]:
        return {"bookings": self.bookings / self.months, "deals": self.deals / self.months,
                "opportunities": self.opportunities / self.months,
                "workable_leads": self.workable_leads / self.months}

    def per_rep_per_month(self) -> dict[str, int] | None:
        if not self.reps:
            return None
        return {name: round_up(value / self.reps) for name, value in self.per_month().items()
                if name != "bookings"}

    @property
    def lead_value_per_month(self) -> float:
        return self.bookings / self.months

    def to_json(self) -> dict[str, Any]:
        return {"per": self.per, "bookings": self.bookings, "deal_size": self.deal_size,
                "win_rate": self.win_rate, "opportunity_rate": self.opportunity_rate, "reps": self.reps,
                "deals": self.deals, "opportunities": self.opportunities,
                "workable_leads": self.workable_leads, "per_month": self.per_month(),
                "per_rep_per_month": self.per_rep_per_month(),
                "lead_value_per_month": self.lead_value_per_month,
                "marketing_yaml": self.marketing_yaml()}

    def marketing_yaml(self) -> str | None:
        """The agreement's `marketing:` block; None without a rep count (the per rep goal is required)."""
        per_rep = self.per_rep_per_month()
        if per_rep is None:
            return None
        value = round(self.lead_value_per_month, 2)
        block = {"marketing": {
            "workable_leads_per_rep_per_month": per_rep["workable_leads"],
            "lead_value_goal_per_month": int(value) if value == int(value) else value,
            "opportunity_rate_target": self.opportunity_rate,
        }}
        return yaml.safe_dump(block, sort_keys=False)


def round_up(value: float) -> int:
    """Up to the next whole number; 40.000000000001 from float division is still 40."""
    return math.ceil(round(value, 9))
