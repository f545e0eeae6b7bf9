"""Slack end to end for issue 11's chat parts: `/sla plan` as a signed slash command, and an experiment
lead's card in the team channel (the real app over HTTP, the fake Slack Web API on 127.0.0.1)."""

from __future__ import annotations

import json

import pytest

from bot.services import Services
from sla.clock import FixedClock
from storage.db import Database
from tests.e2e.test_slack import (  # noqa: F401 - fixtures used by name
    ANA,
    SAM,
    SMB,
    Slack,
    card_text,
    fake,
    posted_card,
    slack,
    slack_services,
)
from tests.fakes.slack_api import FakeSlack
from tests.integration.test_experiments import trial_agreement

MAYA, PRIYA = "U0MAYA0001", "U0PRIYA001"
EBOOK = {"employees": 50, "stage": "solution_research", "offer": "justify-purchase-ebook", "page_visits": 0,
         "activities": [{"type": "ebook_downloaded"}], "bant": {"need": "yes", "budget": True}}


@pytest.fixture
def services(db: Database, clock: FixedClock, fake: FakeSlack) -> Services:  # noqa: F811 - this module's agreement
    return slack_services(db, trial_agreement(), clock, fake)


async def test_sla_plan_answers_the_vps_and_refuses_others(slack: Slack) -> None:  # noqa: F811
    words = "plan bookings 3000000 deal-size 25000 win-rate 0.2 opportunity-rate 0.12 reps 7"
    answer = await slack.command(SAM, words)
    assert answer["response_type"] == "ephemeral"
    assert answer["text"].startswith("Plan for $3,000,000 in bookings a year: $25,000 a deal")
    assert "Workable leads: 5,000 a year, 417 a month, 60 per rep a month (7 reps)." in answer["text"]
    assert "workable_leads_per_rep_per_month: 60" in answer["text"]
    maya = await slack.command(MAYA, "plan bookings 1M deal-size 10k win-rate 50% opportunity-rate 25% per month")
    assert "Workable leads: 800 a month." in maya["text"]   # 100 deals, 200 opportunities
    for user in (ANA, PRIYA, "U0STRANGER"):
        refused = await slack.command(user, words)
        assert refused["response_type"] == "ephemeral"
        assert refused["text"].startswith("Sorry, only the sales VP and the marketing VP can plan the goals")
        assert "Workable leads" not in refused["text"]
    missing = await slack.command(SAM, "plan bookings 3000000 deal-size 25000 win-rate 0.2")
    assert missing["text"].startswith("Supply opportunity-rate R (the share of workable leads")
    helped = await slack.command(ANA, "help")
    assert ("/sla plan bookings N deal-size N [win-rate R] [opportunity-rate R] [reps N] [per year|quarter|month]"
            in helped["text"])


async def test_an_experiment_lead_is_a_card_tagged_in_plain_words(slack: Slack) -> None:  # noqa: F811
    created = await slack.handoff(external_id="trial-1", **EBOOK)
    assert created["workable"] is False and created["team"] == "smb" and created["rep"] is not None
    card = await posted_card(slack, SMB)
    text = card_text(card)
    assert ("Justify-the-purchase e-book: sent to Sales as a trial, though the agreement would keep it in nurture "
            "(score below the threshold)") in text
    assert "justify-ebook" not in text and "score_below_threshold" not in text
    assert slack.lead(created["id"]).experiment == "justify-ebook"
    # the card has the buttons of any routed lead
    assert any(b["type"] == "actions" for b in card.blocks or [])
    # a workable lead's card carries no experiment line
    await slack.handoff(external_id="plain-1", **{**EBOOK, "activities": [{"type": "demo_requested"}]})
    plain = await posted_card(slack, SMB, count=2)
    assert "Experiment" not in card_text(plain) and "Jane Doe" in json.dumps(plain.blocks)
