"""Neutral cards and replies -> Microsoft Teams: Adaptive Card 1.5 JSON and message text.

Only this module decides how slabot looks in Teams. It has no SDK imports: it returns plain dicts
(the `content` of an `application/vnd.microsoft.card.adaptive` attachment) and strings.

Safety rule: every string that reaches a TextBlock, a Fact or a message is escaped, because
Adaptive Card text and Teams messages understand a markdown subset. Lead-supplied text (names,
titles, companies, sources, BANT notes) must never create a link, emphasis or a mention. The only
mention a card carries is built here from a `Mention` of the agreement, as Teams requires: the
text `<at>Name</at>` in the card plus a matching entity in `msteams.entities`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from bot.presentation.cards import Button, Card, Mention
from sla.lifecycle import Action

CARD_VERSION = "1.5"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
#: Teams refuses messages over about 28 KB; a digest chart is left out rather than bounced.
MAX_CARD_BYTES = 26_000

#: Characters that would start markdown syntax (links, emphasis, code) or a Teams `<at>` tag.
_MARKDOWN = re.compile(r"([\\\[\]()<>*_`~])")
#: A bare URL or `www.` host would be auto-linked by Teams; a zero-width space after the scheme
#: (or the `www`) defuses that without changing what a person reads.
_AUTOLINK = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*:)//|\b(www)\.")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ZWSP = "\u200b"

#: Which input a choice-asking button fills; `ActionPayload.parse` reads these keys.
_CHOICE_INPUT = {Action.DISQUALIFY: ("reason", "Reason"), Action.REASSIGN: ("to", "Reassign to")}
#: Buttons that record work on the lead: they sit in the card body, dispositions in the action bar.
_WORK_ACTIONS = frozenset({Action.CLAIM, Action.LOG_CALL, Action.LOG_EMAIL, Action.CONNECTED})
_STYLES = {"primary": "positive", "danger": "destructive"}


def escape(text: str) -> str:
    """Make arbitrary text inert in Adaptive Card and Teams markdown: no links, emphasis or mentions."""
    text = _CONTROL.sub("", text)
    text = _MARKDOWN.sub(r"\\\1", text)
    return _AUTOLINK.sub(lambda m: f"{m.group(1)}{_ZWSP}//" if m.group(1) else f"{m.group(2)}{_ZWSP}.", text)


def escape_inline(text: str) -> str:
    """`escape`, and on one line (titles, facts): line breaks become spaces."""
    return escape(" ".join(text.split()))


def mention_text(mention: Mention) -> str:
    """The `<at>Name</at>` text for a mention; the name comes from the agreement, made tag-safe."""
    name = re.sub(r"[<>\\\r\n]", "", mention.name).strip() or "owner"
    return f"<at>{name}</at>"


def mention_entity(mention: Mention) -> dict[str, Any]:
    """The Teams mention entity; `mentioned.id` may be an AAD object id, a 29: id or a UPN."""
    assert mention.teams is not None
    return {"type": "mention", "text": mention_text(mention),
            "mentioned": {"id": mention.teams, "name": mention.name}}


def _text(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def _execute(button: Button, title: str | None = None) -> dict[str, Any]:
    action: dict[str, Any] = {"type": "Action.Execute", "title": title or button.label,
                              "verb": button.action_id, "data": button.payload()}
    if button.style:
        action["style"] = _STYLES[button.style]
    return action


def render_button(button: Button) -> dict[str, Any]:
    """One neutral button -> an Action.Execute, or an Action.ShowCard asking for its input first.

    Teams gathers the inputs of the card the action sits in (and its parents) into
    `action.data` by input id, so the invoke carries `{"a", "lead", "v"}` plus `reason`, `to` or
    `amount`: exactly what `ActionPayload.parse` reads.
    """
    if button.options:
        input_id, label = _CHOICE_INPUT.get(button.action, ("reason", "Choose"))
        choices = [{"title": escape_inline(o.label), "value": o.value} for o in button.options]
        return {"type": "Action.ShowCard", "title": button.label, "card": {
            "type": "AdaptiveCard",
            "body": [{"type": "Input.ChoiceSet", "id": input_id, "label": label, "style": "compact",
                      "isRequired": True, "errorMessage": f"{label} is required",
                      "placeholder": f"{label}...", "choices": choices}],
            "actions": [_execute(button)],
        }}
    if button.asks_amount:
        return {"type": "Action.ShowCard", "title": button.label, "card": {
            "type": "AdaptiveCard",
            "body": [{"type": "Input.Number", "id": "amount", "label": "Amount (optional)", "min": 0,
                      "placeholder": "Expected deal size"}],
            "actions": [_execute(button, "Create opportunity")],
        }}
    return _execute(button)


def _safe_url(url: str) -> str | None:
    return url if re.match(r"(?i)^https?://[^\s<>\"]+$", url) else None


def render_card(card: Card) -> dict[str, Any]:
    """A lead card -> Adaptive Card 1.5 (dict) with Action.Execute for every button."""
    body: list[dict[str, Any]] = [
        _text(escape_inline(card.title), size="Large", weight="Bolder"),
        _text(escape_inline(card.subtitle), isSubtle=True, spacing="None"),
        _text(escape_inline(card.status), weight="Bolder", color="Accent"),
    ]
    entities: list[dict[str, Any]] = []
    if card.owner is not None and card.owner.teams:
        body.append(_text(f"Owner: {mention_text(card.owner)}", spacing="Small"))
        entities.append(mention_entity(card.owner))
    elif card.owner is not None:
        body.append(_text(f"Owner: {escape_inline(card.owner.name)}", spacing="Small"))
    else:
        body.append(_text("Owner: unassigned (any rep of the team may claim)", spacing="Small"))
    if card.facts:
        body.append({"type": "FactSet", "facts": [
            {"title": escape_inline(f.label), "value": escape_inline(f.value)} for f in card.facts]})
    if card.reasons:
        body.append(_text("Why it was handed off", weight="Bolder", size="Small", separator=True))
        body.append(_text("\n".join(f"- {escape_inline(r)}" for r in card.reasons), size="Small",
                          spacing="None"))
    work = [render_button(b) for b in card.buttons if b.action in _WORK_ACTIONS]
    if work:
        body.append({"type": "ActionSet", "actions": work})
    actions = [render_button(b) for b in card.buttons if b.action not in _WORK_ACTIONS]
    if card.link is not None and (url := _safe_url(card.link[1])):
        actions.append({"type": "Action.OpenUrl", "title": card.link[0], "url": url})
    content: dict[str, Any] = {
        "$schema": CARD_SCHEMA, "type": "AdaptiveCard", "version": CARD_VERSION,
        "fallbackText": escape(card.fallback), "body": body,
    }
    if actions:
        content["actions"] = actions
    # `msteams` is a Teams host extension (full width, mention entities); it is not part of the
    # Adaptive Card schema, so schema validation looks at the card without it.
    content["msteams"] = {"width": "Full", **({"entities": entities} if entities else {})}
    return content


def card_mentions(content: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The mention entities a rendered card declares (empty when there are none)."""
    msteams = content.get("msteams") or {}
    return list(msteams.get("entities") or [])


def reply_text(text: str, lines: Iterable[str] = ()) -> str:
    """A command reply as Teams message markdown: escaped, one paragraph per line."""
    parts = [escape(text.strip()), *(escape(line.rstrip()) for line in lines)]
    return "\n\n".join(p for p in parts if p)


def linked_text(text: str, link: str | None) -> str:
    """`reply_text`, except that `link` (a URL slabot made itself, such as a desk sign-in link,
    never text from a lead or a person) stays a link Teams opens wherever it appears in `text`.
    A URL markdown could not carry intact is left inert like everything else."""
    url = _safe_url(link) if link else None
    if url is None or any(c in url for c in "()[]\\") or url not in text:
        return reply_text(text)
    label = _MARKDOWN.sub(r"\\\1", url)
    return f"[{label}]({url})".join(escape(part) for part in text.strip().split(url))


def render_digest(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A digest payload (`title`, `sections[{heading, lines}]`, `text`, `chart_png_b64`) -> card.

    The chart travels as an Image with a `data:` URI (Adaptive Cards allow them since 1.2). When
    it would push the card past what Teams accepts, it is left out and the card says so.
    """
    title = str(payload.get("title") or "SLA digest")
    body: list[dict[str, Any]] = [_text(escape_inline(title), size="Large", weight="Bolder")]
    sections: Sequence[Mapping[str, Any]] = payload.get("sections") or []
    for section in sections:
        heading = str(section.get("heading") or "")
        if heading:
            body.append(_text(escape_inline(heading), weight="Bolder", separator=True))
        lines = [escape(str(line)) for line in section.get("lines") or []]
        if lines:
            body.append(_text("\n\n".join(lines), spacing="Small"))
    if not sections and payload.get("text"):
        body.append(_text(escape(str(payload["text"]))))
    content: dict[str, Any] = {
        "$schema": CARD_SCHEMA, "type": "AdaptiveCard", "version": CARD_VERSION,
        "fallbackText": escape_inline(str(payload.get("text") or title))[:500], "body": body,
        "msteams": {"width": "Full"},
    }
    chart = payload.get("chart_png_b64")
    if chart:
        image = {"type": "Image", "url": f"data:image/png;base64,{chart}", "size": "Stretch",
                 "altText": "Cumulative workable leads this month against the goal line"}
        if card_size(content) + len(image["url"]) + 200 <= MAX_CARD_BYTES:
            body.append(image)
        else:
            body.append(_text("(The chart is too large for a Teams message; see the e-mail or "
                              "GET /api/v1/status.)", isSubtle=True, size="Small"))
    return content


def card_size(content: Mapping[str, Any]) -> int:
    """Bytes on the wire (compact JSON)."""
    return len(json.dumps(content, separators=(",", ":")).encode())


def iter_nodes(content: Any) -> Iterator[dict[str, Any]]:
    """Every object in a rendered card, depth first (show cards and action sets included)."""
    if isinstance(content, dict):
        yield content
        for value in content.values():
            yield from iter_nodes(value)
    elif isinstance(content, list):
        for item in content:
            yield from iter_nodes(item)


def card_verbs(content: Mapping[str, Any]) -> list[str]:
    """Every Action.Execute verb in a rendered card."""
    return [node["verb"] for node in iter_nodes(content)
            if node.get("type") == "Action.Execute" and isinstance(node.get("verb"), str)]
