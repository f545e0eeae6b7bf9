"""Block Kit rendering (bot/slack/render.py): limits, escaping, links, buttons and their payloads, plus the
transport's mapping of Slack errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.presentation.cards import ActionPayload, Button, Card, Fact, Mention, Option
from bot.presentation.presenters import lead_card
from bot.slack import render
from bot.slack.transport import api_error
from commands.actions import ActionRequest, perform
from commands.context import Context
from commands.intake import handoff
from commands.sla import CommandReply
from sla.lead import LeadIn
from sla.lifecycle import Action
from tests.conftest import EXAMPLE_LEAD
from tests.integration.test_engine import rep_actor

OWNER = Mention(name="Ana Ruiz", slack="U0ANA00001")


def card(**changes: Any) -> Card:
    values: dict[str, Any] = {
        "title": "Jane Doe", "subtitle": "VP Operations · Globex", "status": "New: waiting to be claimed",
        "facts": (Fact("Score", "50"), Fact("Tier", "hot")), "reasons": ("score 50 >= 20",),
        "buttons": (Button(Action.CLAIM, "Claim", 7, 3, "primary"),), "owner": OWNER,
        "link": ("Open in CRM", "https://crm.example/contacts/1"), "fallback": "Lead Jane Doe", "lead_id": 7,
        "version": 3,
    }
    values.update(changes)
    return Card(**values)


def all_text(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def walk_texts(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["text"]] if isinstance(node.get("text"), str) else []
        return found + [t for value in node.values() for t in walk_texts(value)]
    if isinstance(node, list):
        return [t for item in node for t in walk_texts(item)]
    return []


# --- the card ------------------------------------------------------------------------------


#: Identifiers of the example agreement and lead that must never reach a person's eyes.
RAW_WORDS = ("demo_request", "product_demo", "demo_requested", "pricing_page_viewed", "solution_research",
             "no_budget", "bad_contact_data", "student_or_job_seeker", "authority:", "True", ">=",
             "activity=", "tier hot", "qualified")


def human_texts(blocks: list[dict[str, Any]]) -> str:
    """Everything Slack shows (texts, fields, option labels), not the values a click carries back."""
    return "\n".join(walk_texts(blocks))


def test_the_card_speaks_plain_words_and_its_selects_carry_identifiers(ctx: Context) -> None:
    body = json.loads(EXAMPLE_LEAD.read_text())
    body["bant"] = body["bant"] | {"authority": True}
    lead = handoff(ctx, LeadIn.model_validate(body)).lead
    blocks = render.card_blocks(lead_card(ctx, lead))
    shown = human_texts(blocks)
    fields = [f["text"] for f in blocks[2]["fields"]]
    assert "*Source / offer*\nDemo request / Product demo" in fields
    assert "*Tier*\nHot (first touch within 15 min)" in fields
    assert "*Value*\n$2,400" in fields
    assert ("*BANT*\nNeed: replace spreadsheets for field ops; Budget known; Timeframe: 1-3 months; "
            "Authority known") in fields
    assert "*Attempts*\n0 of 6 within 5 business days" in fields
    assert "+30 requested a demo" in shown and "+10 viewed the pricing page" in shown
    assert "• Score 50, at or above the threshold of 20" in shown and "• Hot tier" in shown
    assert "4 of 4 BANT facts known (need, budget, timeframe, authority); 2 needed" in shown
    select = next(e for e in blocks[-1]["elements"] if e["action_id"] == "lead.disqualify")
    labels = [o["text"]["text"] for o in select["options"]]
    assert labels == ["No budget", "No need", "Bad contact data", "Chose a competitor", "Student or job seeker",
                      "Duplicate lead"]
    # The click handlers still get the agreement's keys.
    assert [ActionPayload.parse(o["value"]).reason for o in select["options"]] == [
        "no_budget", "no_need", "bad_contact_data", "competitor", "student_or_job_seeker", "duplicate"]
    for raw in RAW_WORDS:
        assert raw not in shown, raw

    assert lead.id is not None and lead.owner is not None
    refused = perform(ctx, ActionRequest(lead_id=lead.id, action=Action.DISQUALIFY, actor=rep_actor(ctx, lead.owner),
                      reason="bad_contact_data")).refused
    assert not refused
    with ctx.db.read() as session:
        closed = session.get(type(lead), lead.id)
    assert closed is not None
    blocks = render.card_blocks(lead_card(ctx, closed))
    assert "*Disqualified*" in blocks[1]["elements"][0]["text"]
    assert "*Reason*\nBad contact data" in [f["text"] for f in blocks[2]["fields"]]
    assert "bad_contact_data" not in human_texts(blocks)


def test_card_from_a_real_lead_validates(ctx: Context) -> None:
    body = json.loads(EXAMPLE_LEAD.read_text())
    lead = handoff(ctx, LeadIn.model_validate(body)).lead
    neutral = lead_card(ctx, lead)
    blocks = render.card_blocks(neutral)
    assert [b["type"] for b in blocks] == ["section", "context", "section", "section", "context", "actions"]
    assert blocks[0]["text"]["text"] == "*Jane Doe*\nVP Operations · Globex"
    assert blocks[1]["elements"][0]["text"] == "*New: waiting to be claimed*  ·  Owner: <@U0EVE00001>"
    fields = [f["text"] for f in blocks[2]["fields"]]
    assert "*Company size*\n2,400 employees" in fields and "*First touch due*\nTue Nov 24, 10:15 EST" in fields
    assert blocks[3]["text"]["text"].startswith("*Why it was handed off*\n• ")
    assert blocks[4]["elements"][0]["text"] == "<https://crm.example/contacts/90210|Open in CRM>"
    actions = blocks[5]
    assert actions["block_id"] == f"lead:{lead.id}:v1"
    # Every neutral button is there once, and each carries the neutral payload back.
    assert [e["action_id"] for e in actions["elements"]] == [b.action_id for b in neutral.buttons]
    for element, button in zip(actions["elements"], neutral.buttons, strict=True):
        if element["type"] == "button":
            parsed = ActionPayload.parse(element["value"])
            assert (parsed.action, parsed.lead_id, parsed.version) == (button.action, lead.id, 1)
            assert element.get("style") == button.style
        else:
            assert element["type"] == "static_select"
            for option in element["options"]:
                parsed = ActionPayload.parse(option["value"])
                assert (parsed.action, parsed.lead_id, parsed.version) == (button.action, lead.id, 1)
    disqualify = next(e for e in actions["elements"] if e["action_id"] == "lead.disqualify")
    reasons = [ActionPayload.parse(o["value"]).reason for o in disqualify["options"]]
    assert reasons == list(ctx.agreement.sales.disqualify_reasons)
    assert [o["text"]["text"] for o in disqualify["options"]][:2] == ["No budget", "No need"]
    reassign = next(e for e in actions["elements"] if e["action_id"] == "lead.reassign")
    assert [ActionPayload.parse(o["value"]).to_rep for o in reassign["options"]] == [None, "fay"]
    assert reassign["options"][0]["text"]["text"] == "Next available rep"
    qualify = next(e for e in actions["elements"] if e["action_id"] == "lead.qualify")
    assert qualify["type"] == "button"   # opens the amount modal
    assert render.card_text(neutral).startswith("Lead Jane Doe (VP Operations · Globex): New")


def test_lead_text_is_escaped_and_mentions_come_only_from_mentions() -> None:
    evil = card(title="<!channel> Jane", subtitle="<@U0SAM00001> & <https://evil.example|win>",
                facts=(Fact("Source / offer", "<!here>"),), reasons=("<#C0SECRET01>",),
                fallback="<!everyone> new lead")
    blocks = render.card_blocks(evil)
    text = all_text(blocks) + render.card_text(evil)
    for injected in ("<!channel>", "<@U0SAM00001>", "<https://evil", "<!here>", "<#C0SECRET01>", "<!everyone>"):
        assert injected not in text
    assert "&lt;!channel&gt; Jane" in text and "&amp; &lt;https://evil.example|win&gt;" in text
    mentions = [t for t in walk_texts(blocks) if "<@" in t]
    assert mentions == ["*New: waiting to be claimed*  ·  Owner: <@U0ANA00001>"]


@pytest.mark.parametrize(("person", "shown"), [
    (Mention("Ana Ruiz", slack="U0ANA00001"), "<@U0ANA00001>"),
    (Mention("Enterprise", slack="W0ENT00001"), "<@W0ENT00001>"),
    (Mention("<!channel>", slack="<!channel>"), "&lt;!channel&gt;"),   # a bad id never becomes a mention
    (Mention("Ana & Co", slack=None), "Ana &amp; Co"),
    (None, "unassigned"),
])
def test_mentions(person: Mention | None, shown: str) -> None:
    assert render.mention(person) == shown


@pytest.mark.parametrize(("url", "link"), [
    ("https://crm.example/c/1", "<https://crm.example/c/1|Open in CRM>"),
    ("https://crm.example/c/1|<!channel>", "<https://crm.example/c/1!channel|Open in CRM>"),
    ("http://crm.example/a b", "<http://crm.example/ab|Open in CRM>"),
    ("javascript:alert(1)", None),
    ("ftp://crm.example/x", None),
    ("", None),
])
def test_crm_link_is_sanitized(url: str, link: str | None) -> None:
    assert render.crm_link(url, "Open in CRM") == link
    blocks = render.card_blocks(card(link=("Open in CRM", url)))
    assert (next((b for b in blocks if b.get("block_id") == "link"), None) is not None) is (link is not None)


def test_long_text_is_cut_to_slacks_limits_not_rejected() -> None:
    huge = "<&>" * 5000
    long_card = card(title=huge, subtitle=huge, status=huge, reasons=tuple(huge for _ in range(5)),
                     facts=tuple(Fact(f"Fact {i}", huge) for i in range(23)), fallback=huge,
                     buttons=(Button(Action.DISQUALIFY, "D" * 200, 7, 3, "danger",
                                     options=tuple(Option("o" * 300, f"r{i}") for i in range(150))),
                              Button(Action.CLAIM, "C" * 200, 7, 3)))
    blocks = render.card_blocks(long_card)   # slack_sdk validates every limit in to_dict()
    for block in blocks:
        if block["type"] == "section" and "text" in block:
            assert len(block["text"]["text"]) <= render.SECTION_TEXT
        for field in block.get("fields", []):
            assert len(field["text"]) <= render.FIELD_TEXT
    assert sum(1 for b in blocks if b.get("fields")) == 3   # 23 facts, 10 per section
    assert len(render.card_text(long_card)) <= render.FALLBACK_TEXT
    select = blocks[-1]["elements"][0]
    assert len(select["options"]) == 100 and all(len(o["text"]["text"]) <= 75 for o in select["options"])
    assert len(blocks[-1]["elements"][1]["text"]["text"]) <= 75
    # Cutting never leaves half an escape sequence behind.
    for text in walk_texts(blocks):
        assert not text.rstrip("…*").endswith(("&", "&l", "&lt", "&a", "&am", "&amp", "&g", "&gt"))


def test_clip_never_splits_an_entity_or_a_tag() -> None:
    assert render.clip("abc", 10) == "abc"
    assert render.clip("ab &amp; cd", 6) == "ab …"
    assert render.clip("see <@U0ANA00001> now", 10) == "see …"
    assert len(render.clip("x" * 5000, 3000)) == 3000


def test_duplicate_action_ids_get_a_suffix() -> None:
    twice = card(buttons=(Button(Action.LOG_CALL, "Log call", 7, 3), Button(Action.LOG_CALL, "Again", 7, 3)))
    ids = [e["action_id"] for e in render.card_blocks(twice)[-1]["elements"]]
    assert ids == ["lead.log_call", "lead.log_call:2"]


def test_closed_lead_has_no_buttons_and_no_link_when_none() -> None:
    blocks = render.card_blocks(card(buttons=(), link=None, reasons=()))
    assert [b["type"] for b in blocks] == ["section", "context", "section"]


# --- modal, replies, digest, home ----------------------------------------------------------


def test_amount_modal() -> None:
    view = render.amount_modal(private_metadata='{"a":"qualify","lead":7,"v":3}', lead_name="Jane <Doe>")
    assert view["type"] == "modal" and view["callback_id"] == render.AMOUNT_CALLBACK
    assert view["private_metadata"] == '{"a":"qualify","lead":7,"v":3}'
    assert view["blocks"][0]["text"]["text"] == "Record *Jane &lt;Doe&gt;* as an opportunity."
    amount = view["blocks"][1]
    assert amount["block_id"] == render.AMOUNT_BLOCK and amount["optional"] is True
    assert amount["element"] == {"type": "number_input", "action_id": render.AMOUNT_ACTION,
                                 "is_decimal_allowed": True, "min_value": "0"}
    parsed = ActionPayload.parse({**json.loads(view["private_metadata"]), "amount": "$25,000"})
    assert parsed.action is Action.QUALIFY and parsed.amount == 25000.0


def test_command_response() -> None:
    private = render.command_response(CommandReply("Your <leads>", ("#1 Jane & co",)))
    assert private["response_type"] == "ephemeral"
    assert private["text"] == "Your &lt;leads&gt;\n#1 Jane &amp; co"
    assert private["blocks"] == [{"type": "section", "text": {"type": "mrkdwn",
                                                              "text": "*Your &lt;leads&gt;*\n#1 Jane &amp; co"}}]
    public = render.command_response(CommandReply("Linked", private=False))
    assert public["response_type"] == "in_channel"
    many = render.command_response(CommandReply("Many", tuple("y" * 200 for _ in range(1000))))
    assert 1 < len(many["blocks"]) <= render.MESSAGE_BLOCKS
    assert all(len(b["text"]["text"]) <= render.SECTION_TEXT for b in many["blocks"])


def test_digest_message() -> None:
    payload = {"title": "Acme: daily SLA digest, Tue Nov 24", "text": "digest <text>",
               "sections": [{"heading": "Marketing", "lines": ["112 workable of 200", "top source <webinar>"]},
                            ["Sales", ["worked 93%"]]], "chart_png_b64": None, "to": "channel"}
    text, blocks = render.digest_message(payload)
    assert text == "digest &lt;text&gt;"
    assert blocks[0] == {"type": "header", "text": {"type": "plain_text", "emoji": True,
                                                    "text": "Acme: daily SLA digest, Tue Nov 24"}}
    assert blocks[1]["text"]["text"] == "*Marketing*\n• 112 workable of 200\n• top source &lt;webinar&gt;"
    assert blocks[2]["text"]["text"] == "*Sales*\n• worked 93%"
    _, many = render.digest_message({"title": "x" * 400, "sections": [
        {"heading": f"S{i}", "lines": ["z" * 2900] * 3} for i in range(40)]})
    assert len(many) <= render.MESSAGE_BLOCKS and len(many[0]["text"]["text"]) <= render.HEADER_TEXT


def test_home_view() -> None:
    view = render.home_view([CommandReply("Your open leads (1)", ("#1 Jane",)), CommandReply("Status", ("a",))])
    assert view["type"] == "home"
    assert [b["type"] for b in view["blocks"]] == ["header", "section", "divider", "section"]
    big = render.home_view([CommandReply("L", tuple("q" * 2999 for _ in range(300))),
                            CommandReply("S", ("b",))])
    assert len(big["blocks"]) <= render.VIEW_BLOCKS


# --- transport error mapping ---------------------------------------------------------------


def slack_error(status: int, data: dict[str, Any], headers: dict[str, str] | None = None) -> SlackApiError:
    response = AsyncSlackResponse(client=None, http_verb="POST", api_url="https://slack.com/api/chat.postMessage",
                                  req_args={}, data=data, headers=headers or {}, status_code=status)
    return SlackApiError("failed", response)  # type: ignore[no-untyped-call]


@pytest.mark.parametrize(("status", "data", "headers", "retry_after", "permanent"), [
    (429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "12"}, 12.0, False),
    (429, {"ok": False, "error": "ratelimited"}, {"retry-after": "0.5"}, 0.5, False),
    (429, {"ok": False, "error": "ratelimited"}, {}, 1.0, False),
    (200, {"ok": False, "error": "ratelimited"}, {}, 1.0, False),
    (500, {"ok": False, "error": "internal_error"}, {}, None, False),
    (503, {"ok": False}, {}, None, False),
    (200, {"ok": False, "error": "fatal_error"}, {}, None, False),
    (200, {"ok": False, "error": "channel_not_found"}, {}, None, True),
    (200, {"ok": False, "error": "not_in_channel"}, {}, None, True),
    (200, {"ok": False, "error": "invalid_auth"}, {}, None, True),
    (200, {"ok": False, "error": "account_inactive"}, {}, None, True),
    (200, {"ok": False, "error": "is_archived"}, {}, None, True),
])
def test_api_errors_map_to_transport_errors(status: int, data: dict[str, Any], headers: dict[str, str],
                                            retry_after: float | None, permanent: bool) -> None:
    error = api_error("chat.postMessage", slack_error(status, data, headers))
    assert error.retry_after == retry_after and error.permanent is permanent
    assert str(error).startswith("slack chat.postMessage: ")
