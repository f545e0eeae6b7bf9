"""Neutral cards, replies and digests -> Slack Block Kit (built with slack_sdk.models, so limits are checked).

Every piece of text that may come from a lead (names, companies, reasons, URLs) is escaped for
mrkdwn (`&`, `<`, `>`), so it can never become `<!channel>`, a `<@U…>` mention or a link; mentions
are generated only from `Mention` objects and links only by `crm_link`. Long text is cut to fit
Slack's limits instead of failing the post.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    NumberInputElement,
    Option,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.presentation.cards import Button, Card, Mention
from commands.sla import CommandReply
from sla.lifecycle import Action

#: Slack's limits (docs.slack.dev/reference/block-kit): section text, field text, header text,
#: button text, option label and value, blocks per message / per view, fallback text we keep.
SECTION_TEXT = 3000
FIELD_TEXT = 2000
HEADER_TEXT = 150
BUTTON_TEXT = 75
OPTION_TEXT = 75
OPTION_VALUE = 150
MESSAGE_BLOCKS = 50
VIEW_BLOCKS = 100
FALLBACK_TEXT = 3000
#: Section fields per block.
FIELDS_PER_SECTION = 10

#: The modal that asks for an opportunity's amount (its view_submission is routed on this).
AMOUNT_CALLBACK = "lead.qualify.amount"
AMOUNT_BLOCK = "amount"
AMOUNT_ACTION = "amount"

_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,30}$")
_PARTIAL_ENTITY = re.compile(r"&[a-z]{0,4}$")
_PARTIAL_TAG = re.compile(r"<[^>]*$")
_OPTION_KEY = {Action.DISQUALIFY: "reason", Action.REASSIGN: "to"}


# --- text ----------------------------------------------------------------------------------


def escape(text: object) -> str:
    """Slack's three control characters, escaped: lead text stays text."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    """Cut mrkdwn to `limit` characters with an ellipsis, never inside an `&amp;` or a `<…>`."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    cut = _PARTIAL_TAG.sub("", _PARTIAL_ENTITY.sub("", cut))
    return cut + "…"


def clip_plain(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def mention(person: Mention | None) -> str:
    """`<@U0ANA00001>` for someone with a Slack id, else their (escaped) name."""
    if person is None:
        return "unassigned"
    if person.slack and _SLACK_USER.match(person.slack):
        return f"<@{person.slack}>"
    return escape(person.name)


def safe_url(url: str | None) -> str | None:
    """An http(s) URL with the characters that would break out of a Slack link removed."""
    if not url:
        return None
    cleaned = "".join(ch for ch in url.strip() if ch not in "|<>" and ch.isprintable() and not ch.isspace())
    if not cleaned.lower().startswith(("https://", "http://")):
        return None
    return cleaned[:2000]


def crm_link(url: str | None, label: str) -> str | None:
    target = safe_url(url)
    if target is None:
        return None
    return f"<{target}|{escape(label.replace('|', ' '))}>"


def _md(text: str, limit: int = SECTION_TEXT) -> MarkdownTextObject:
    return MarkdownTextObject(text=clip(text, limit))


def _plain(text: str, limit: int) -> PlainTextObject:
    return PlainTextObject(text=clip_plain(text, limit), emoji=True)


def _dicts(blocks: Iterable[Block]) -> list[dict[str, Any]]:
    """Validated JSON of the blocks (slack_sdk raises on anything over a limit)."""
    return [block.to_dict() for block in blocks]


def text_blocks(title: str | None, lines: Sequence[str], *, max_blocks: int = MESSAGE_BLOCKS) -> list[Block]:
    """A bold title and lines of plain text as sections, packed under the section text limit."""
    chunks: list[str] = []
    current = f"*{escape(title)}*" if title else ""
    for line in lines:
        piece = escape(line) if line else " "
        if current and len(current) + 1 + len(piece) > SECTION_TEXT:
            chunks.append(current)
            current = ""
        current = f"{current}\n{piece}" if current else piece
    if current:
        chunks.append(current)
    if len(chunks) > max_blocks:
        chunks = [*chunks[: max_blocks - 1], "…and more (cut to fit Slack)"]
    return [SectionBlock(text=_md(chunk)) for chunk in chunks]


def payload_value(button: Button, **extra: Any) -> str:
    return json.dumps(button.payload(**extra), separators=(",", ":"))


# --- the lead card -------------------------------------------------------------------------


def card_blocks(card: Card) -> list[dict[str, Any]]:
    """The lead card: title, status and owner, facts, reasons, CRM link, and its buttons."""
    blocks: list[Block] = [
        SectionBlock(block_id="title",
                     text=_md(f"*{clip(escape(card.title), 500)}*\n{clip(escape(card.subtitle), 1000)}")),
        ContextBlock(block_id="status", elements=[
            _md(f"*{escape(card.status)}*  ·  Owner: {mention(card.owner)}"),
        ]),
    ]
    fields = [_md(f"*{escape(f.label)}*\n{escape(f.value)}", FIELD_TEXT) for f in card.facts]
    for start in range(0, len(fields), FIELDS_PER_SECTION):
        blocks.append(SectionBlock(block_id=f"facts{start // FIELDS_PER_SECTION}",
                                   fields=fields[start:start + FIELDS_PER_SECTION]))
    if card.reasons:
        reasons = "\n".join(f"• {escape(r)}" for r in card.reasons)
        blocks.append(SectionBlock(block_id="reasons", text=_md(f"*Why it was handed off*\n{reasons}")))
    if card.link is not None:
        link = crm_link(card.link[1], card.link[0])
        if link is not None:
            blocks.append(ContextBlock(block_id="link", elements=[_md(link)]))
    elements = action_elements(card)
    if elements:
        blocks.append(ActionsBlock(block_id=f"lead:{card.lead_id}:v{card.version}", elements=elements))
    return _dicts(blocks)


def card_text(card: Card) -> str:
    """The notification / fallback text of a card."""
    return clip(escape(card.fallback), FALLBACK_TEXT)


def action_elements(card: Card) -> list[ButtonElement | StaticSelectElement]:
    """One element per neutral button: a select when it needs a choice, else a button.
    `asks_amount` buttons open a modal (see `amount_modal`)."""
    elements: list[ButtonElement | StaticSelectElement] = []
    seen: dict[str, int] = {}
    for button in card.buttons:
        action_id = button.action_id
        seen[action_id] = seen.get(action_id, 0) + 1
        if seen[action_id] > 1:   # action_ids must be unique within a block
            action_id = f"{action_id}:{seen[action_id]}"
        options = select_options(button)
        if options:
            elements.append(StaticSelectElement(action_id=action_id, placeholder=_plain(button.label, 150),
                                                options=options))
        else:
            elements.append(ButtonElement(action_id=action_id, text=_plain(button.label, BUTTON_TEXT),
                                          value=payload_value(button), style=button.style))
    return elements


def select_options(button: Button) -> list[Option]:
    key = _OPTION_KEY.get(button.action, "reason")
    choices = [(o.label, o.value) for o in button.options]
    if button.action is Action.REASSIGN and choices:
        choices.insert(0, ("Next available rep", ""))
    options = []
    for label, value in choices[:100]:
        encoded = payload_value(button, **{key: value})
        if len(encoded) > OPTION_VALUE:   # an absurdly long key: leave the choice out, never crash
            continue
        options.append(Option(text=_plain(label, OPTION_TEXT), value=encoded))
    return options


# --- replies, command answers, digests -----------------------------------------------------


def command_response(reply: CommandReply) -> dict[str, Any]:
    """A `/sla` answer as the slash command's response body."""
    return {
        "response_type": "ephemeral" if reply.private else "in_channel",
        "text": clip(escape(reply.as_text()), FALLBACK_TEXT),
        "blocks": _dicts(text_blocks(reply.text, reply.lines)),
    }


def digest_message(payload: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The digest payload of the outbox (`title`, `sections`, `text`) -> (fallback text, blocks)."""
    title = str(payload.get("title") or "SLA digest")
    blocks: list[Block] = [HeaderBlock(text=_plain(title, HEADER_TEXT))]
    for section in payload.get("sections") or []:
        if isinstance(section, dict):
            heading, lines = section.get("heading"), section.get("lines") or []
        else:   # (heading, lines) pairs, as commands.digest builds them
            heading, lines = section[0], section[1]
        blocks.extend(text_blocks(str(heading) if heading else None,
                                  [f"• {line}" for line in lines], max_blocks=5))
    if len(blocks) > MESSAGE_BLOCKS:
        blocks = [*blocks[: MESSAGE_BLOCKS - 1], ContextBlock(elements=[_md("…cut to fit Slack")])]
    text = str(payload.get("text") or title)
    return clip(escape(text), FALLBACK_TEXT), _dicts(blocks)


def amount_modal(*, private_metadata: str, lead_name: str | None) -> dict[str, Any]:
    """The Opportunity modal: an optional amount; the submission carries the click's payload."""
    who = f"*{escape(lead_name)}*" if lead_name else "this lead"
    view = View(
        type="modal", callback_id=AMOUNT_CALLBACK, private_metadata=private_metadata,
        title=_plain("Opportunity", 24), submit=_plain("Record", 24), close=_plain("Cancel", 24),
        blocks=[
            SectionBlock(text=_md(f"Record {who} as an opportunity.")),
            InputBlock(block_id=AMOUNT_BLOCK, optional=True, label=_plain("Amount (optional)", 2000),
                       hint=_plain("Expected deal value, in the agreement's currency.", 2000),
                       element=NumberInputElement(action_id=AMOUNT_ACTION, is_decimal_allowed=True,
                                                  min_value="0")),
        ],
    )
    return view.to_dict()


def home_view(parts: Sequence[CommandReply], *, title: str = "Your SLA") -> dict[str, Any]:
    """The App Home tab: one block group per reply (open leads, this month's numbers)."""
    blocks: list[Block] = [HeaderBlock(text=_plain(title, HEADER_TEXT))]
    budget = (VIEW_BLOCKS - 1) // max(1, len(parts)) - 1
    for index, part in enumerate(parts):
        if index:
            blocks.append(DividerBlock())
        blocks.extend(text_blocks(part.text, part.lines, max_blocks=budget))
    return View(type="home", blocks=blocks).to_dict()
