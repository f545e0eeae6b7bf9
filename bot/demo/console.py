"""A chat platform that prints to the terminal: the demo's transport, no credentials needed."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any, TextIO

from bot.presentation.cards import Card
from bot.worker.delivery import Posted
from commands.context import Context


def render_card(card: Card) -> list[str]:
    owner = card.owner.name if card.owner else "unassigned"
    lines = [f"┌ {card.title} · {card.subtitle}", f"│ {card.status} · owner: {owner}"]
    lines += [f"│ {fact.label}: {fact.value}" for fact in card.facts]
    if card.buttons:
        lines.append("│ [" + "] [".join(b.label for b in card.buttons) + "]")
    lines.append("└" + "─" * 60)
    return lines


class ConsoleTransport:
    """Prints each message as it is sent. `_emit` is the one place output happens, so a subclass
    can hold it back and print it in a stable order (the demo does, per tick)."""

    platform = "console"

    def __init__(self, ctx: Context, out: TextIO | None = None) -> None:
        self.ctx = ctx
        self.out = out or sys.stdout
        self._ids = itertools.count(1)
        self.posted: list[tuple[str, str, Any]] = []

    def _stamp(self) -> str:
        return f"{self.ctx.calendar.local(self.ctx.now()):%a %H:%M}"

    def _print(self, header: str, lines: list[str]) -> None:
        print(f"\n[{self._stamp()}] {header}", file=self.out)
        for line in lines:
            print("  " + line, file=self.out)
        self.out.flush()

    def _emit(self, kind: str, target: str, show: Callable[[], None]) -> None:
        """Output one message (`kind` card, dm or digest, to `target`) now."""
        show()

    def min_interval(self, kind: str) -> float:
        return 0.0

    async def post_card(self, channel: str, card: Card, *, outbox_id: int) -> Posted:
        message_id = f"m{next(self._ids)}"
        self.posted.append(("post", channel, card))
        self._emit("card", channel, lambda: self._print(f"{channel}: new lead card", render_card(card)))
        return Posted(channel, message_id)

    async def update_card(self, ref: Posted, card: Card) -> None:
        self.posted.append(("update", ref.channel, card))
        self._emit("card", ref.channel, lambda: self._print(f"{ref.channel}: card updated → {card.status}",
                                                            render_card(card)[:2]))

    async def find_posted(self, channel: str, *, outbox_id: int, since: datetime) -> Posted | None:
        return None

    async def send_message(self, kind: str, target: str, payload: dict[str, Any], *,
                           outbox_id: int) -> Posted | None:
        self.posted.append((kind, target, payload))
        if kind == "digest":
            self._emit(kind, target, lambda: self._print(f"digest → {target}", digest_lines(payload)))
        else:
            self._emit(kind, target, lambda: self._print(f"{kind} → {target}", [payload.get("text", "")]))
        return None


def digest_lines(payload: dict[str, Any]) -> list[str]:
    """A digest payload as terminal lines: the title, each section's heading and lines, the chart."""
    lines = [payload.get("title", "")]
    for section in payload.get("sections", []):
        lines.append(f"— {section['heading']}")
        lines += [f"  {line}" for line in section["lines"]]
    if payload.get("chart_png_b64"):
        lines.append("(chart: cumulative workable leads vs goal, PNG attached)")
    return lines
