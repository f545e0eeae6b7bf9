"""The lead lifecycle: states, actions, who may do what, in one table (DESIGN.md 2.4)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class State(StrEnum):
    RECEIVED = "received"
    NURTURE = "nurture"
    ROUTED = "routed"
    CLAIMED = "claimed"
    WORKING = "working"
    CONNECTED = "connected"
    QUALIFIED = "qualified"
    DISQUALIFIED = "disqualified"
    RECYCLED = "recycled"
    WON = "won"
    LOST = "lost"


class Action(StrEnum):
    CLAIM = "claim"
    LOG_CALL = "log_call"
    LOG_EMAIL = "log_email"
    CONNECTED = "connected"
    QUALIFY = "qualify"            # an opportunity was created (optional amount)
    DISQUALIFY = "disqualify"      # with a reason from the agreement
    RECYCLE = "recycle"            # back to nurture
    REASSIGN = "reassign"          # managers, and the engine (claim timeout, escalation)
    OPPORTUNITY = "opportunity"    # outcomes reported by the CRM
    WON = "won"
    LOST = "lost"


class Role(StrEnum):
    OWNER = "owner"
    MANAGER = "manager"
    TEAM_REP = "team_rep"          # a rep of the lead's team who does not own it
    SYSTEM = "system"              # the engine and the CRM
    OTHER = "other"


#: Open states: the lead is with Sales and its clocks run.
OPEN = frozenset({State.ROUTED, State.CLAIMED, State.WORKING, State.CONNECTED})
WORKED = frozenset({State.WORKING, State.CONNECTED})
CLOSED = frozenset({State.QUALIFIED, State.DISQUALIFIED, State.RECYCLED, State.WON, State.LOST})

_REP_ACTORS = frozenset({Role.OWNER, Role.MANAGER})


@dataclass(frozen=True)
class Rule:
    sources: frozenset[State]
    target: State | None              # None: the state does not change (e.g. another call)
    roles: frozenset[Role]


_TRANSITIONS: dict[Action, Rule] = {
    Action.CLAIM: Rule(frozenset({State.ROUTED}), State.CLAIMED, _REP_ACTORS),
    Action.LOG_CALL: Rule(OPEN, State.WORKING, _REP_ACTORS),
    Action.LOG_EMAIL: Rule(OPEN, State.WORKING, _REP_ACTORS),
    Action.CONNECTED: Rule(OPEN, State.CONNECTED, _REP_ACTORS),
    Action.QUALIFY: Rule(OPEN, State.QUALIFIED, _REP_ACTORS),
    Action.DISQUALIFY: Rule(OPEN, State.DISQUALIFIED, _REP_ACTORS),
    Action.RECYCLE: Rule(OPEN, State.RECYCLED, _REP_ACTORS),
    Action.REASSIGN: Rule(frozenset({State.ROUTED, State.CLAIMED}), State.ROUTED,
                          frozenset({Role.MANAGER, Role.SYSTEM})),
    Action.OPPORTUNITY: Rule(OPEN | {State.DISQUALIFIED, State.RECYCLED, State.NURTURE},
                             State.QUALIFIED, frozenset({Role.SYSTEM})),
    Action.WON: Rule(OPEN | {State.QUALIFIED, State.LOST}, State.WON, frozenset({Role.SYSTEM})),
    Action.LOST: Rule(OPEN | {State.QUALIFIED}, State.LOST, frozenset({Role.SYSTEM})),
}

#: Actions that record one attempt. Connected is a call that reached the person.
ATTEMPTS = frozenset({Action.LOG_CALL, Action.LOG_EMAIL, Action.CONNECTED})


class Refused(Exception):
    """An action that is not allowed; `reason` is shown privately to whoever tried it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_STATE_WORDS = {
    State.CLAIMED: "already claimed", State.QUALIFIED: "already an opportunity",
    State.DISQUALIFIED: "already disqualified", State.RECYCLED: "already back in nurture",
    State.WON: "already won", State.LOST: "already lost", State.NURTURE: "in nurture",
}


def next_state(state: State, action: Action, role: Role, *, unowned: bool = False) -> State:
    """The state after `action`, or Refused with a reason a person understands.

    `unowned`: a lead nobody could be routed to may be claimed by any rep of its team.
    """
    rule = _TRANSITIONS[action]
    allowed = rule.roles | ({Role.TEAM_REP} if unowned and action is Action.CLAIM else set())
    if role not in allowed:
        if action is Action.REASSIGN:
            raise Refused("Only the team's manager can reassign a lead.")
        if role is Role.SYSTEM or Role.SYSTEM in rule.roles:
            raise Refused(f"{action.value} is reported by the CRM, not from chat.")
        raise Refused("Only the lead's owner or the team's manager can do that.")
    if state not in rule.sources:
        words = _STATE_WORDS.get(state, f"{state.value}")
        raise Refused(f"This lead is {words}; {action.value.replace('_', ' ')} is no longer possible.")
    return rule.target or state


def allowed_actions(state: State) -> list[Action]:
    """The buttons a card shows for a lead in `state` (chat actions only)."""
    chat = [Action.CLAIM, Action.LOG_CALL, Action.LOG_EMAIL, Action.CONNECTED,
            Action.QUALIFY, Action.DISQUALIFY, Action.RECYCLE, Action.REASSIGN]
    return [a for a in chat if state in _TRANSITIONS[a].sources]
