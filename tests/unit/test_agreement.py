"""`slabot check`: the example is valid; every class of mistake gets one clear line with path and line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sla.agreement import AgreementError, Duration, parse_agreement, parse_duration
from tests.conftest import EXAMPLE_AGREEMENT

EXAMPLE = EXAMPLE_AGREEMENT.read_text()


def slabot(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], capture_output=True, text=True, timeout=60)


def problems(text: str) -> list[str]:
    with pytest.raises(AgreementError) as info:
        parse_agreement(text, "a.yaml")
    return [p.render("a.yaml") for p in info.value.problems]


def test_example_agreement_is_valid_via_cli() -> None:
    result = slabot("check", str(EXAMPLE_AGREEMENT))
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout and "2 teams, 5 reps" in result.stdout


def test_example_covers_every_section() -> None:
    a = parse_agreement(EXAMPLE)
    assert a.business_hours.holidays == "US"
    assert [t.key for t in a.teams] == ["smb", "midmarket"]
    assert a.rep("cho") is not None and a.rep("cho").capacity_per_week == 30  # type: ignore[union-attr]
    assert a.marketing.workable_leads_per_rep_per_month == 40
    assert a.qualification.personas[0].handoff_stage == "solution_research"
    assert a.sales.tiers[0].first_touch_within == Duration(minutes=15)
    assert a.sales.tiers[1].attempts.within == Duration(days=10)
    assert a.sales.claim_within == Duration(minutes=10)
    assert [n.at for n in a.nudges] == [0.5, 1.0, 2.0]
    assert a.nudges[2].reassign and a.digests[0].to == ["marketing_vp", "sales_vp"]
    assert len(a.version) == 12


def test_invalid_agreement_exits_2_with_one_line_per_problem(tmp_path: Path) -> None:
    bad = EXAMPLE.replace("team: midmarket}", "team: enterprise}").replace("first_touch_within: 2h",
                                                                          "first_touch_within: 2 hours")
    path = tmp_path / "bad.yaml"
    path.write_text(bad)
    result = slabot("check", str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines   # schema errors come first: the bad duration
    assert "sales.tiers[1].first_touch_within" in lines[0] and "bad duration '2 hours'" in lines[0]
    assert f"{path}:" in lines[0] and "Traceback" not in result.stderr
    fixed = bad.replace("first_touch_within: 2 hours", "first_touch_within: 2h")
    path.write_text(fixed)
    result = slabot("check", str(path))
    line = EXAMPLE.splitlines().index(next(x for x in EXAMPLE.splitlines() if "team: midmarket}" in x)) + 1
    assert result.returncode == 2
    assert result.stderr.strip() == (f"{path}:{line}: routing.rules[0].team: unknown team 'enterprise' "
                                     "(teams: smb, midmarket)")


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = slabot("check", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2 and "cannot read the agreement" in result.stderr


@pytest.mark.parametrize(("edit", "expected"), [
    (("timezone: America/New_York", "timezone: America/Gotham"), "timezone: unknown time zone 'America/Gotham'"),
    (("claim_within: 10m", "claim_within: ten minutes"), "sales.claim_within: bad duration"),
    (("key: ben,", "key: ana,"), "duplicate rep key 'ana'"),
    (("strategy: round_robin", "strategy: random"), "routing.strategy: Input should be"),
    (("start: \"09:00\"", "start: \"9am\""), "business_hours.start: bad time '9am'"),
    (("holidays: US", "holidays: XX"), "business_hours: "),
    (("- {at: 50%, notify: [rep]}", "- {at: 50%, notify: []}"), "notifies no one"),
    (("- {at: 200%, notify: [manager, marketing_vp], reassign: true}",
      "- {at: 200%, notify: [manager, marketing_vp], reassign: true}\n  - {at: 300%, notify: [rep]}"),
     "nudges[3].at: can never apply"),
    (("- {key: hot, when: {score_at_least: 40},", "- {key: hot,"), "sales.tiers[1]: tier can never apply"),
    (("- {team: smb}", "- {team: smb, when: {employees_at_most: 999}}"), "no rule matches every lead"),
    (("workable_leads_per_rep_per_month: 40", "workable_leads_per_rep_per_month: 40\n  bogus: 1"),
     "marketing.bogus: unknown field"),
    (("handoff_stage: solution_research}", "handoff_stage: research}"), "unknown stage 'research'"),
    (("employees_between: [1, 999]", "employees_between: [999, 1]"), "low > high"),
])
def test_each_mistake_is_reported_with_its_path(edit: tuple[str, str], expected: str) -> None:
    old, new = edit
    assert old in EXAMPLE
    found = problems(EXAMPLE.replace(old, new, 1))
    assert any(expected in line for line in found), found
    assert all(line.startswith("a.yaml:") and line.split(":")[1].isdigit() for line in found), found


def test_yaml_syntax_error_names_the_line() -> None:
    found = problems("name: x\nteams: [\n  - key: a\n")
    assert len(found) == 1 and "YAML syntax error" in found[0] and found[0].startswith("a.yaml:")


def test_non_mapping_is_rejected() -> None:
    assert "must be a YAML mapping" in problems("- just\n- a list\n")[0]


def test_holidays_as_a_list_of_dates() -> None:
    a = parse_agreement(EXAMPLE.replace("holidays: US", "holidays: [2026-12-24, 2026-12-31]"))
    from datetime import date

    assert not a.calendar().is_business_day(date(2026, 12, 24))
    assert a.calendar().is_business_day(date(2026, 11, 26))  # Thanksgiving is open without the US list


@pytest.mark.parametrize(("text", "days", "minutes"), [("15m", 0, 15), ("2h", 0, 120), ("1h30m", 0, 90),
                                                       ("5d", 5, 0), ("1d2h", 1, 120)])
def test_durations(text: str, days: int, minutes: int) -> None:
    assert parse_duration(text) == Duration(days, minutes)


@pytest.mark.parametrize("text", ["", "0m", "15", "2 hours", "-5m", "m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="bad duration"):
        parse_duration(text)


def test_version_changes_with_content_not_comments() -> None:
    a = parse_agreement(EXAMPLE)
    assert parse_agreement("# a comment\n" + EXAMPLE).version == a.version
    assert parse_agreement(EXAMPLE.replace("score_threshold: 20", "score_threshold: 25")).version != a.version


def test_bad_date_in_holidays_is_a_field_error_not_a_crash() -> None:
    found = problems(EXAMPLE.replace("holidays: US", "holidays: [2026-13-01]"))
    assert any("business_hours.holidays" in line for line in found), found
