"""`/sla plan` (commands/plan.py): the goal planner in chat, for the VPs, with `slabot plan`'s arithmetic."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from commands import sla
from commands.actions import record_outcome
from commands.context import Context, identify
from commands.intake import Handoff, handoff_many
from sla.lead import LeadIn
from sla.planning import Plan
from tests.conftest import EXAMPLE_AGREEMENT

ANA, PRIYA, SAM, MAYA = "U0ANA00001", "U0PRIYA001", "U0SAM00001", "U0MAYA0001"
WORKABLE = {"employees": 50, "stage": "solution_research", "activities": [{"type": "demo_requested"}],
            "bant": {"need": "yes", "budget": "yes"}, "source": "webinar"}


def ask(ctx: Context, user_id: str, text: str, platform: str = "slack") -> sla.CommandReply:
    actor = identify(ctx.agreement, platform=platform, user_id=user_id)
    return sla.run(ctx, text=text, actor=actor, platform=platform, channel="C0CMD00001",
                   prefix="/sla " if platform == "slack" else "sla ")   # as the adapter passes it


def test_the_vps_get_the_plan_in_words(ctx: Context) -> None:
    reply = ask(ctx, SAM, "plan bookings 3,000,000 deal-size 25k win-rate 20% opportunity-rate 0.12 reps 7")
    assert reply.private
    assert reply.text == ("Plan for $3,000,000 in bookings a year: $25,000 a deal, 20% of opportunities won, "
                          "12% of workable leads becoming opportunities.")
    # 120 deals, 600 opportunities, 5,000 workable leads a year; a month: 10, 50, 416.67 (shown 417, as
    # `slabot plan` shows it); per rep of 7
    # rounded up: 2, 8, 60
    assert reply.lines[:4] == (
        "Deals: 120 a year, 10 a month, 2 per rep a month (7 reps).",
        "Opportunities: 600 a year, 50 a month, 8 per rep a month (7 reps).",
        "Workable leads: 5,000 a year, 417 a month, 60 per rep a month (7 reps).",
        "Lead value Marketing owes: $250,000 a month.",
    )
    block = Plan(bookings=3_000_000, deal_size=25_000, per="year", win_rate=0.2, opportunity_rate=0.12, reps=7)
    assert reply.lines[4] == "The agreement's marketing: block:"
    assert "\n".join(reply.lines[5:]) + "\n" == block.marketing_yaml()
    # the marketing VP too; words in any order, NAME=VALUE and --NAME VALUE, per quarter
    maya = ask(ctx, MAYA, "plan per quarter --deal-size 5000 bookings=120000 win-rate 0.5 opportunity-rate 50%")
    assert maya.text.startswith("Plan for $120,000 in bookings a quarter")
    assert maya.lines[2] == "Workable leads: 96 a quarter, 32 a month."
    assert maya.lines[-1].startswith("Add reps N for the per rep goal") and "5 active reps" in maya.lines[-1]


def test_others_are_refused_privately(ctx: Context) -> None:
    for user in (ANA, PRIYA, "U0STRANGER"):
        reply = ask(ctx, user, "plan bookings 3000000 deal-size 25000 win-rate 0.2 opportunity-rate 0.1")
        assert reply.private and reply.text.startswith("Sorry, only the sales VP and the marketing VP can plan")
        assert "Workable leads" not in reply.as_text()


@pytest.mark.parametrize(("words", "says"), [
    ("plan", "Usage: /sla plan bookings N deal-size N"),
    ("plan bookings 100000", "Give deal-size."),
    ("plan bookings lots deal-size 100", "Bookings “lots” is not an amount above 0"),
    ("plan bookings 1000 deal-size 10 win-rate 1.5 opportunity-rate 0.1", "Win-rate “1.5” is not a rate"),
    ("plan bookings 1000 deal-size 10 win-rate 0 opportunity-rate 0.1", "Win-rate “0” is not a rate"),
    ("plan bookings 1000 deal-size 10 per week", "Per “week”: use year, quarter or month."),
    ("plan bookings 1000 deal-size 10 reps 0", "Reps “0” is not a whole number of reps"),
    ("plan bookings 1000 deal-size 10 colour red", "“colour” is not a plan word"),
    ("plan bookings 1000 bookings 2000 deal-size 10", "Bookings is given twice."),
    ("plan bookings 1000 deal-size", "Deal-size needs a value after it."),
])
def test_mistakes_say_what_to_write(ctx: Context, words: str, says: str) -> None:
    reply = ask(ctx, SAM, words)
    assert reply.text.startswith(says), reply.text
    assert reply.private


def test_omitted_rates_come_from_history_or_are_asked_for(ctx: Context) -> None:
    asked = ask(ctx, SAM, "plan bookings 120000 deal-size 5000 opportunity-rate 0.1")
    assert asked.text == ("Supply win-rate R (the share of opportunities that are won, like 25%): history holds "
                          "0 opportunities and 0 workable leads; 30 of each are needed.")
    handoff_many(ctx, [Handoff(LeadIn.model_validate({**WORKABLE, "external_id": f"w{i}"})) for i in range(40)])
    for i in range(32):
        assert record_outcome(ctx, external_id=f"w{i}", type="opportunity_created", amount=None, at=None, crm_url=None)
    for i in range(8):
        assert record_outcome(ctx, external_id=f"w{i}", type="won", amount=5000, at=None, crm_url=None)
    # win rate 8 / 32 = 25%, opportunity rate 32 / 40 = 80%: 24 deals, 96 opportunities, 120 workable
    # leads a year, 10 a month, 5 per rep of 2
    reply = ask(ctx, SAM, "plan bookings 120000 deal-size 5000 reps 2")
    assert reply.lines[:2] == ("Win rate 25% taken from history.",
                               "Opportunity rate 80% taken from history (workable leads).")
    assert "Workable leads: 120 a year, 10 a month, 5 per rep a month (2 reps)." in reply.lines
    given = ask(ctx, SAM, "plan bookings 120000 deal-size 5000 win-rate 0.5")
    assert given.text.startswith("Plan for $120,000 in bookings a year: $5,000 a deal, 50% of opportunities won, "
                                 "80% of workable leads")


def test_chat_and_command_line_plan_the_same_numbers(ctx: Context, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "plan", "--bookings", "900000", "--deal-size", "30000", "--per", "quarter",
         "--win-rate", "0.3", "--opportunity-rate", "0.15", "--reps", "4", "--json"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={**os.environ, "SLABOT_AGREEMENT": str(EXAMPLE_AGREEMENT)})
    assert result.returncode == 0, result.stderr
    cli = json.loads(result.stdout)
    reply = ask(ctx, SAM, "plan bookings 900000 deal-size 30000 per quarter win-rate 0.3 opportunity-rate 0.15 reps 4")
    per_rep = cli["per_rep_per_month"]
    month = cli["per_month"]["workable_leads"]
    assert (f"Workable leads: {cli['workable_leads']:,.0f} a quarter, {month:,.0f} a month, "
            f"{per_rep['workable_leads']} per rep a month (4 reps).") in reply.lines
    assert "\n".join(reply.lines[-4:]) + "\n" == cli["marketing_yaml"]
