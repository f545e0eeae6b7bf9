"""The lifecycle table: who may do what, from which state."""

from __future__ import annotations

import pytest

from sla.lifecycle import Action, Refused, Role, State, allowed_actions, next_state


def test_happy_path() -> None:
    s = next_state(State.ROUTED, Action.CLAIM, Role.OWNER)
    s = next_state(s, Action.LOG_CALL, Role.OWNER)
    assert s == State.WORKING
    s = next_state(s, Action.CONNECTED, Role.OWNER)
    assert s == State.CONNECTED
    assert next_state(s, Action.QUALIFY, Role.OWNER) == State.QUALIFIED


def test_a_touch_on_a_routed_lead_counts_as_working() -> None:
    assert next_state(State.ROUTED, Action.LOG_EMAIL, Role.OWNER) == State.WORKING


@pytest.mark.parametrize("role", [Role.TEAM_REP, Role.OTHER])
def test_only_owner_or_manager(role: Role) -> None:
    with pytest.raises(Refused, match="owner or the team's manager"):
        next_state(State.ROUTED, Action.CLAIM, role)


def test_unowned_leads_can_be_claimed_by_the_team() -> None:
    assert next_state(State.ROUTED, Action.CLAIM, Role.TEAM_REP, unowned=True) == State.CLAIMED


def test_reassign_is_for_managers_and_only_before_the_lead_is_worked() -> None:
    with pytest.raises(Refused, match="Only the team's manager"):
        next_state(State.CLAIMED, Action.REASSIGN, Role.OWNER)
    assert next_state(State.CLAIMED, Action.REASSIGN, Role.MANAGER) == State.ROUTED
    with pytest.raises(Refused, match="no longer possible"):
        next_state(State.WORKING, Action.REASSIGN, Role.MANAGER)


def test_double_claim_is_refused_with_a_human_reason() -> None:
    with pytest.raises(Refused, match="already claimed"):
        next_state(State.CLAIMED, Action.CLAIM, Role.OWNER)


def test_closed_leads_take_no_chat_actions() -> None:
    for state in (State.QUALIFIED, State.DISQUALIFIED, State.RECYCLED, State.WON, State.LOST):
        assert allowed_actions(state) == []


def test_crm_outcomes_are_system_only() -> None:
    with pytest.raises(Refused, match="reported by the CRM"):
        next_state(State.QUALIFIED, Action.WON, Role.OWNER)
    assert next_state(State.QUALIFIED, Action.WON, Role.SYSTEM) == State.WON


def test_buttons_follow_state() -> None:
    assert allowed_actions(State.ROUTED)[0] is Action.CLAIM
    assert Action.CLAIM not in allowed_actions(State.CLAIMED)
    assert Action.REASSIGN not in allowed_actions(State.WORKING)
