"""The goal planner's arithmetic (contract: `slabot plan`)."""

from __future__ import annotations

import pytest
import yaml

from sla.planning import Plan, round_up


def test_a_year_worked_back_to_leads_per_rep_per_month() -> None:
    # 1,200,000 a year at 10,000 a deal = 120 deals; / 0.25 win rate = 480 opportunities;
    # / 0.1 opportunity rate = 4,800 workable leads; a month is a twelfth: 10, 40, 400;
    # per rep of 3, rounded up: 10/3 -> 4, 40/3 -> 14, 400/3 -> 134.
    plan = Plan(bookings=1_200_000, deal_size=10_000, per="year", win_rate=0.25, opportunity_rate=0.1, reps=3)
    data = plan.to_json()
    assert (data["deals"], data["opportunities"], data["workable_leads"]) == (120, 480, 4800)
    assert data["per_month"] == {"bookings": 100_000, "deals": 10, "opportunities": 40, "workable_leads": 400}
    assert data["per_rep_per_month"] == {"deals": 4, "opportunities": 14, "workable_leads": 134}
    assert data["lead_value_per_month"] == 100_000
    assert yaml.safe_load(data["marketing_yaml"]) == {"marketing": {
        "workable_leads_per_rep_per_month": 134, "lead_value_goal_per_month": 100_000,
        "opportunity_rate_target": 0.1}}


@pytest.mark.parametrize(("per", "months"), [("year", 12), ("quarter", 3), ("month", 1)])
def test_the_period_sets_the_months(per: str, months: int) -> None:
    plan = Plan(bookings=360_000, deal_size=1_000, per=per, win_rate=0.5, opportunity_rate=0.2, reps=2)
    assert plan.per_month()["workable_leads"] == pytest.approx(3600 / months)
    assert plan.lead_value_per_month == pytest.approx(360_000 / months)
    assert plan.per_rep_per_month() == {"deals": round_up(360 / months / 2),
                                        "opportunities": round_up(720 / months / 2),
                                        "workable_leads": round_up(3600 / months / 2)}


def test_rounding_up_per_rep_is_exact_on_whole_numbers() -> None:
    # 0.3 * 3 style float error must not turn an exact 40 into 41
    assert round_up(40.000000000001) == 40
    assert round_up(40.01) == 41
    assert round_up(0.2) == 1
    plan = Plan(bookings=120_000, deal_size=1_000, per="month", win_rate=0.3, opportunity_rate=0.1, reps=4)
    assert plan.workable_leads == pytest.approx(4000)
    assert plan.per_rep_per_month() == {"deals": 30, "opportunities": 100, "workable_leads": 1000}


def test_without_reps_there_is_no_per_rep_goal_and_no_block() -> None:
    plan = Plan(bookings=1_000, deal_size=100, per="month", win_rate=0.5, opportunity_rate=0.5, reps=None)
    assert plan.per_rep_per_month() is None and plan.marketing_yaml() is None
    assert plan.to_json()["workable_leads"] == 40
