"""The neutral `/sla` command (commands/sla.py) and its registry, called as Slack and Teams call them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import select

from commands import sla
from commands.context import Actor, Context, identify
from commands.intake import handoff
from commands.registry import COMMANDS, usage_hint
from sla.clock import FixedClock
from sla.lead import LeadIn
from storage.metrics import Status
from storage.tables import ChannelBinding, Lead, RepStatus
from tests.conftest import EXAMPLE_LEAD

ANA, PRIYA, DIEGO, SAM, MAYA = "U0ANA00001", "U0PRIYA001", "U0DIEGO001", "U0SAM00001", "U0MAYA0001"
#: How each adapter says its users type the command (bot/slack/listeners.py, bot/teams/app.py pass it).
PREFIX = {"slack": "/sla ", "teams": "sla "}


def who(ctx: Context, user_id: str) -> Actor:
    return identify(ctx.agreement, platform="slack", user_id=user_id)


def ask(ctx: Context, user_id: str, text: str, *, platform: str = "slack",
        channel: str | None = "C0CMD00001") -> sla.CommandReply:
    return sla.run(ctx, text=text, actor=who(ctx, user_id), platform=platform, channel=channel,
                   prefix=PREFIX.get(platform, "sla "))


def new_lead(ctx: Context, **changes: Any) -> Lead:
    body = json.loads(EXAMPLE_LEAD.read_text())
    body.update(changes)
    return handoff(ctx, LeadIn.model_validate(body)).lead


# --- registry and help ---------------------------------------------------------------------


def test_registry_is_complete_and_fits_both_manifests() -> None:
    names = [spec.name for spec in COMMANDS]
    assert names == ["status", "leads", "away", "back", "link", "digest", "plan", "desk", "help"]
    for spec in COMMANDS:
        assert spec.usage.split()[0] == spec.name
        assert 0 < len(spec.help) <= 128   # Teams commandLists description limit
        assert len(spec.name) <= 32
    assert len(usage_hint()) <= 1000       # Slack usage_hint limit
    assert set(sla._HANDLERS) == set(names)


def test_help_on_each_platform(ctx: Context) -> None:
    slack_help = ask(ctx, ANA, "help")
    assert slack_help.private and [line.split(":")[0] for line in slack_help.lines] == [
        f"/sla {spec.usage}" for spec in COMMANDS]
    teams_help = ask(ctx, ANA, "help", platform="teams")
    assert all(line.startswith("sla ") for line in teams_help.lines)
    assert ask(ctx, ANA, "").lines == slack_help.lines
    assert ask(ctx, ANA, "   ").lines == slack_help.lines
    # Teams users type the command's name too: "sla help" is the same as "help".
    assert ask(ctx, ANA, "sla help", platform="teams").lines == teams_help.lines


def test_unknown_command_says_so_and_shows_help(ctx: Context) -> None:
    reply = ask(ctx, ANA, "Frobnicate everything")
    assert reply.text.startswith("Unknown command “frobnicate”.") and reply.lines == ask(ctx, ANA, "help").lines
    long = ask(ctx, ANA, "x" * 500)
    assert len(long.text) < 200


# --- status --------------------------------------------------------------------------------


def test_status_scopes(ctx: Context) -> None:
    new_lead(ctx)                                   # midmarket, eve
    new_lead(ctx, external_id="smb-1", employees=200)   # smb, ana
    everyone = ask(ctx, ANA, "status")
    assert everyone.text.startswith("SLA status for everyone, month to date (as of Tue Nov 24, 10:00 EST)")
    assert any(line.startswith("Marketing: 2 of 200 workable leads delivered") for line in everyone.lines)
    assert "SLA status for Ana Ruiz" in ask(ctx, ANA, "status me").text
    assert "SLA status for SMB Inbound" in ask(ctx, PRIYA, "STATUS ME").text
    assert "SLA status for everyone" in ask(ctx, SAM, "status me").text     # sales VP
    assert "SLA status for everyone" in ask(ctx, MAYA, "status me").text    # marketing VP
    assert "SLA status for Mid-Market" in ask(ctx, ANA, "status team midmarket").text
    unknown = ask(ctx, ANA, "status team nope")
    assert unknown.text == ("There is no team “nope” in the agreement. Teams: smb (SMB Inbound), "
                            "midmarket (Mid-Market).")
    stranger = ask(ctx, "U0NOBODY01", "status me")
    assert "not in the SLA agreement" in stranger.text
    assert ask(ctx, ANA, "status everything").text == "Usage: /sla status [me | team KEY]"


def _status(numbers: dict[str, Any]) -> Status:
    """A Status with `numbers` (a part of the Status JSON) and zeros, empty lists or None elsewhere."""
    instant = "2026-11-24T15:00:00Z"
    rates = dict.fromkeys(("worked_pct", "within_sla_pct", "speed_to_lead_p50", "speed_to_lead_p90",
                           "system_delay_p50_s", "system_delay_p95_s", "attempts_per_lead", "cadence_met_pct",
                           "connect_rate", "opportunity_rate", "opportunity_rate_target",
                           "opportunity_rate_first_touch_met", "opportunity_rate_first_touch_missed"))
    counts = dict.fromkeys(("cohort", "worked", "within_sla", "attempts", "recycled", "connected",
                            "opportunities", "open_breaches"), 0)
    base: dict[str, Any] = {
        "as_of": instant, "scope": "all",
        "period": {"start": instant, "end": instant, "elapsed": 0.0, "business_minutes_elapsed": 0.0,
                   "business_minutes_total": 0.0},
        "marketing": {"leads": 0, "workable": 0, "goal": 0, "active_reps": 0, "pace": None, "projected": None,
                      "value": 0.0, "value_goal": None, "nurture": 0, "by_source": {},
                      "mix": {"source": {}, "offer": {}}, "per_rep": {}},
        "sales": {**rates, **counts, "pipeline_value": 0.0, "per_rep": {}},
        "closed_loop": {"start": instant, "segments": [], "first_touch_met_leads": 0, "first_touch_missed_leads": 0,
                        "opportunity_rate_first_touch_met": None, "opportunity_rate_first_touch_missed": None},
        "capacity": {"week_start": instant, "week_end": instant, "delivered": 0, "capacity": 0, "utilization": None,
                     "per_rep": {}},
        "rejected": {"total": 0, "by_reason": {}, "by_source": {}, "rows": []},
        "yesterday": {"date": "2026-11-23", "workable": 0, "nurture": 0, "first_touches": 0,
                      "first_touches_within_sla": 0, "opportunities": 0, "opportunity_amount": 0.0, "breaches": 0,
                      "breached": []},
        "experiments": [],
    }
    breach = {"lead_id": 1, "company": None, "owner": None, "team": None, "tier": None, "due": instant,
              "owner_due": None}
    for part in ("period", "marketing", "sales"):
        base[part] |= numbers.get(part, {})
    base["breaches"] = [breach | b for b in numbers.get("breaches", [])]
    return Status.model_validate(base)


def test_status_lines_format_the_contract_numbers() -> None:
    numbers = {
        "period": {"elapsed": 0.79},
        "marketing": {"workable": 112, "goal": 200, "pace": 0.71, "projected": 141.8, "value": 98000.0,
                      "value_goal": 250000.0, "nurture": 37},
        "sales": {"cohort": 104, "worked_pct": 0.93, "within_sla_pct": 0.81, "speed_to_lead_p50": 11.0,
                  "speed_to_lead_p90": 95.0, "attempts_per_lead": 4.2, "connect_rate": 0.31,
                  "opportunity_rate": 0.12, "pipeline_value": 310000.0, "open_breaches": 7},
        "breaches": [{"name": f"Lead {i}", "owner_name": "Ana Ruiz", "minutes_overdue": 35.0 + i}
                     for i in range(6)],
    }
    lines = sla.status_lines(_status(numbers))
    assert lines[0] == "79% of the month's business time has passed."
    assert lines[1] == ("Marketing: 112 of 200 workable leads delivered; 71% of the pace the goal needs, "
                        "on pace for 142 of 200 by month end. Lead value $98,000 of a $250,000 goal. "
                        "37 leads in nurture.")
    assert lines[2] == "Sales: worked 93% of 104 leads due so far; 81% touched within the SLA."
    assert lines[3] == "Speed to lead: median first touch 11 min (90% within 1 h 35 min), in business time."
    assert lines[4] == ("Follow-up: 4.2 attempts per lead; 31% of worked leads connected; 12% became "
                        "opportunities ($310,000 pipeline).")
    assert lines[5].startswith("Open breaches: 7 leads past the first-touch deadline with no touch: "
                               "Lead 0 (Ana Ruiz, 35 min overdue); ")
    assert lines[5].endswith("; and 2 more.") and "Lead 5" not in lines[5]
    empty = sla.status_lines(_status({"marketing": {"pace": None, "value_goal": None},
                                      "sales": {"speed_to_lead_p50": None, "open_breaches": 0}}))
    assert "no pace yet" in empty[1] and " of a " not in empty[1]
    assert "median first touch n/a" in empty[3] and empty[-1].startswith("Open breaches: none")
    # Money in the agreement's currency; none of the contract's field names reach the reader.
    assert "€310,000 pipeline" in sla.status_lines(_status(numbers), currency="EUR")[4]
    text = "\n".join(lines)
    for raw in ("cohort", "worked_pct", "p50", "p90", "0.81", "310000", "business min"):
        assert raw not in text


# --- leads ---------------------------------------------------------------------------------


def test_leads_for_rep_manager_vp_and_stranger(ctx: Context, clock: FixedClock) -> None:
    mine = new_lead(ctx, external_id="smb-1", employees=200, company="Initech")
    new_lead(ctx)   # eve's
    reply = ask(ctx, ANA, "leads")
    assert reply.text == "Your open leads (1), times in America/New_York:"
    assert reply.lines == (f"#{mine.id} Jane Doe (Initech) · New: waiting to be claimed · first touch due "
                           "Tue Nov 24, 10:15 EST",)
    clock.advance(timedelta(minutes=20))
    assert ask(ctx, ANA, "leads").lines[0].endswith("10:15 EST (OVERDUE)")
    team = ask(ctx, PRIYA, "leads")
    assert team.text.startswith("Open leads of your team (1)") and "owner Ana Ruiz" in team.lines[0]
    assert ask(ctx, SAM, "leads").text.startswith("Open leads of your teams (2)")   # the sales VP manages all
    assert ask(ctx, MAYA, "leads").text.startswith("All open leads (2)")
    assert "not in the SLA agreement" in ask(ctx, "U0NOBODY01", "leads").text
    assert ask(ctx, "U0BEN00001", "leads").text == "Your open leads: none. Nothing is waiting on you."
    assert ask(ctx, ANA, "leads please").text == "Usage: /sla leads"


def test_leads_after_a_touch_show_attempts_and_are_capped(ctx: Context, clock: FixedClock) -> None:
    from commands.actions import ActionRequest, perform
    from sla.lifecycle import Action

    first = new_lead(ctx, external_id="smb-0", employees=200)
    assert first.id is not None
    perform(ctx, ActionRequest(lead_id=first.id, action=Action.LOG_CALL, actor=who(ctx, ANA)))
    line = ask(ctx, ANA, "leads").lines[0]
    assert "Working · 1 of 6 attempts, last Tue Nov 24, 10:00 EST" in line
    for i in range(sla.LEADS_LIMIT + 3):
        new_lead(ctx, external_id=f"smb-many-{i}", employees=200)
    many = ask(ctx, PRIYA, "leads")
    assert len(many.lines) == sla.LEADS_LIMIT + 1 and many.lines[-1] == "…and 4 more."


# --- away / back ---------------------------------------------------------------------------


def rep_status(ctx: Context, rep: str) -> RepStatus | None:
    with ctx.db.read() as session:
        return session.get(RepStatus, rep)


def test_away_until_a_date_means_back_that_morning(ctx: Context) -> None:
    new_lead(ctx, external_id="smb-1", employees=200)
    reply = ask(ctx, ANA, "away until 2026-12-01")
    assert reply.text == "You are away until Tue Dec 1, 09:00 EST: new leads go to your teammates until then."
    assert reply.lines == ("Your 1 open lead stays with you: ask your manager to reassign it if needed.",)
    status = rep_status(ctx, "ana")
    assert status is not None and status.away and status.away_until == datetime(2026, 12, 1, 14, tzinfo=UTC)
    assert ask(ctx, ANA, "away 2026-12-02").text.startswith("You are away until Wed Dec 2, 09:00 EST")
    # Routing skips her until then.
    assert new_lead(ctx, external_id="smb-2", employees=200).owner != "ana"
    back = ask(ctx, ANA, "back")
    assert back.text == "Welcome back: new leads are routed to you again."
    status = rep_status(ctx, "ana")
    assert status is not None and not status.away and status.away_until is None
    assert ask(ctx, ANA, "back").text == "You were not away: new leads keep coming to you."


def test_away_without_a_date_and_bad_dates(ctx: Context) -> None:
    assert ask(ctx, ANA, "away").text == ("You are away: new leads go to your teammates until you type "
                                          "/sla back.")
    assert ask(ctx, ANA, "away", platform="teams").text.endswith("until you type sla back.")
    status = rep_status(ctx, "ana")
    assert status is not None and status.away and status.away_until is None
    assert ask(ctx, ANA, "away until 2026-11-24").text.startswith("2026-11-24 is not in the future")
    assert ask(ctx, ANA, "away until 2026-02-30").text.startswith("“2026-02-30” is not a date")
    assert ask(ctx, ANA, "away until tomorrow").text == "Usage: /sla away [until YYYY-MM-DD]"
    assert ask(ctx, ANA, "back now").text == "Usage: /sla back"
    assert ask(ctx, PRIYA, "away").text.startswith("Only reps")
    assert ask(ctx, PRIYA, "back").text.startswith("Only reps")


# --- link ----------------------------------------------------------------------------------


def bindings(ctx: Context) -> list[tuple[str, str, str, str | None]]:
    with ctx.db.read() as session:
        return [(b.team, b.platform, b.channel, b.bound_by)
                for b in session.execute(select(ChannelBinding)).scalars()]


def test_link_binds_the_channel_for_the_platform(ctx: Context) -> None:
    refused = ask(ctx, ANA, "link smb")
    assert refused.text == "Only the manager of SMB Inbound (Priya Shah) or the sales VP can link a channel to it."
    assert ask(ctx, DIEGO, "link smb").text.startswith("Only the manager of SMB Inbound")
    assert ask(ctx, MAYA, "link smb").text.startswith("Only the manager")   # marketing VP
    assert ask(ctx, PRIYA, "link").text == "Usage: /sla link TEAM"
    assert ask(ctx, PRIYA, "link nope").text.startswith("There is no team “nope”")
    assert ask(ctx, PRIYA, "link smb", channel=None).text.startswith("Type this in the channel")
    assert bindings(ctx) == []

    linked = ask(ctx, PRIYA, "link SMB", channel="C0NEW00001")
    assert not linked.private and linked.text == "This channel now gets SMB Inbound's new lead cards on Slack."
    assert bindings(ctx) == [("smb", "slack", "C0NEW00001", "manager:smb")]
    ask(ctx, SAM, "link smb", channel="C0NEW00002")
    ask(ctx, PRIYA, "link smb", platform="teams", channel="19:abc@thread.tacv2")
    assert sorted(bindings(ctx)) == [("smb", "slack", "C0NEW00002", "manager:midmarket"),
                                     ("smb", "teams", "19:abc@thread.tacv2", "manager:smb")]


def test_new_cards_go_to_the_linked_channel(ctx: Context) -> None:
    from commands.context import team_channel

    ask(ctx, PRIYA, "link smb", platform="console", channel="#smb-leads")
    team = ctx.agreement.team("smb")
    assert team is not None
    with ctx.db.read() as session:
        assert team_channel(session, ctx.agreement, team=team, platform="console") == "#smb-leads"


# --- digest --------------------------------------------------------------------------------


def test_digest_preview(ctx: Context) -> None:
    new_lead(ctx)
    reply = ask(ctx, SAM, "digest")
    assert reply.private
    assert reply.text.startswith("Preview (only you can see this): Acme FY27 Sales & Marketing SLA: daily SLA digest")
    assert reply.lines and reply.lines[0].endswith(":") and reply.lines[1].startswith("  ")
    assert ask(ctx, SAM, "digest now").text == "Usage: /sla digest"


# --- formatting helpers --------------------------------------------------------------------


@pytest.mark.parametrize(("minutes", "text"), [(None, "n/a"), (0, "0 min"), (11.4, "11 min"), (59.6, "1 h"),
                                               (95, "1 h 35 min"), (1500, "25 h")])
def test_business_minutes(minutes: float | None, text: str) -> None:
    assert sla.business_minutes(minutes) == text


@pytest.mark.parametrize(("value", "text"), [(None, "n/a"), (0, "0"), (4.25, "4.2"), (142.0, "142"),
                                             (141.8, "142"), (310000, "310,000")])
def test_number(value: float | None, text: str) -> None:
    assert sla.number(value) == text
