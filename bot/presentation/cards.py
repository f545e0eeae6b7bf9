"""The neutral card model: what a lead card says, never how a platform draws it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from sla.lifecycle import Action

#: One id space for buttons on every platform: Slack action_id and Teams Action.Execute verb.
ACTION_PREFIX = "lead."


@dataclass(frozen=True)
class Mention:
    """A person to @-mention; renderers turn it into the platform's mention syntax."""

    name: str
    slack: str | None = None
    teams: str | None = None


@dataclass(frozen=True)
class Fact:
    label: str
    value: str


@dataclass(frozen=True)
class Option:
    label: str
    value: str


@dataclass(frozen=True)
class Button:
    action: Action
    label: str
    lead_id: int
    version: int
    style: Literal["primary", "danger"] | None = None
    #: A choice to make before the action runs (disqualify reason, rep to reassign to).
    options: tuple[Option, ...] = ()
    #: A free-form number to ask for (the opportunity amount).
    asks_amount: bool = False

    @property
    def action_id(self) -> str:
        return ACTION_PREFIX + self.action.value

    def payload(self, **extra: Any) -> dict[str, Any]:
        return {"a": self.action.value, "lead": self.lead_id, "v": self.version, **extra}


@dataclass(frozen=True)
class ActionPayload:
    """What a click carries back, parsed from a Slack `value` or a Teams `data` object."""

    action: Action
    lead_id: int
    version: int | None
    reason: str | None = None
    to_rep: str | None = None
    amount: float | None = None

    @classmethod
    def parse(cls, data: dict[str, Any] | str) -> ActionPayload:
        raw = json.loads(data) if isinstance(data, str) else data
        amount = raw.get("amount")
        if isinstance(amount, str):
            cleaned = amount.replace(",", "").replace("$", "").strip()
            amount = float(cleaned) if cleaned else None
        version = raw.get("v")
        parsed = cls(action=Action(raw["a"]), lead_id=int(raw["lead"]),
                     version=int(version) if version is not None else None,
                     reason=raw.get("reason") or None, to_rep=raw.get("to") or None,
                     amount=float(amount) if amount is not None else None)
        # A click's value comes back from the chat platform: ids a database integer cannot hold
        # are refused here (ValueError: an unreadable action), not deep in a query.
        if not 0 < parsed.lead_id < 2**63 or not 0 <= (parsed.version or 0) < 2**63:
            raise ValueError("lead id or version out of range")
        return parsed


@dataclass(frozen=True)
class Card:
    title: str
    subtitle: str
    status: str
    facts: tuple[Fact, ...]
    reasons: tuple[str, ...]
    buttons: tuple[Button, ...]
    owner: Mention | None
    link: tuple[str, str] | None
    #: Plain text for notifications and clients that cannot show the card.
    fallback: str
    lead_id: int
    version: int

