"""The `/sla` sub-commands (words, usage, one-line help): `/sla help` and both app manifests read it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CommandSpec:
    #: The first word after `/sla` (Slack) or `sla` (Teams).
    name: str
    #: The whole sub-command as typed, with placeholders in capitals: `status [me | team KEY]`.
    usage: str
    #: One line (at most 128 characters, the Teams commandLists limit) saying what it does.
    help: str


COMMANDS: list[CommandSpec] = [
    CommandSpec("status", "status [me | team KEY]",
                "Both sides of the SLA this month: Marketing's leads vs goal, Sales' speed and follow-up"),
    CommandSpec("leads", "leads", "Your open leads and when each one is due"),
    CommandSpec("away", "away [until YYYY-MM-DD]",
                "Stop getting new leads (until the morning of that date)"),
    CommandSpec("back", "back", "Get new leads again"),
    CommandSpec("link", "link TEAM", "Send TEAM's lead cards to this channel (the team's manager or the sales VP)"),
    CommandSpec("digest", "digest", "Preview the daily digest, privately"),
    CommandSpec("plan",
                "plan bookings N deal-size N [win-rate R] [opportunity-rate R] [reps N] [per year|quarter|month]",
                "From a bookings goal to the workable leads Marketing owes each month (the VPs)"),
    CommandSpec("desk", "desk", "A one-time link to the desk: the agreement, your leads and numbers in a browser"),
    CommandSpec("help", "help", "List these commands"),
]


def command(name: str) -> CommandSpec | None:
    return next((spec for spec in COMMANDS if spec.name == name), None)


def usage_hint() -> str:
    """Every sub-command on one line (the Slack slash command's usage hint)."""
    return " | ".join(spec.usage for spec in COMMANDS)


def help_lines(prefix: str) -> list[str]:
    """`/sla status [me | team KEY]: Both sides of ...`, one line per sub-command."""
    return [f"{prefix}{spec.usage}: {spec.help}" for spec in COMMANDS]
