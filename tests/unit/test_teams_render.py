"""Teams rendering: neutral cards -> Adaptive Card 1.5 (schema-valid, inert lead text, inputs the
click payload parser reads), replies and digests, error mapping, and the Teams app package."""

from __future__ import annotations

import json
import re
import struct
import zipfile
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest

from bot.presentation.cards import ActionPayload, Button, Card, Fact, Mention, Option
from bot.presentation.presenters import lead_card
from bot.teams.render import (
    MAX_CARD_BYTES,
    card_mentions,
    card_size,
    card_verbs,
    escape,
    iter_nodes,
    linked_text,
    render_card,
    render_digest,
    reply_text,
)
from bot.teams.transport import error_for_status, retry_after_seconds
from commands.context import Context
from commands.intake import handoff
from commands.registry import COMMANDS
from manifests.teams import build_package, teams_manifest
from sla.lead import LeadIn
from sla.lifecycle import Action
from tests.conftest import EXAMPLE_LEAD
from tests.e2e.teams_helpers import MANIFEST_SCHEMA, assert_valid_card

EVIL = "Jane [click me](https://evil.example) <at>Ana Ruiz</at> *bold* _it_ `code` www.evil.example"
APP_ID = "608cacfd-1cea-40c9-b678-4b93e69bb72b"


def card(*, title: str = "Jane Doe", owner: Mention | None = None, actions: tuple[Action, ...] = (
        Action.CLAIM, Action.LOG_CALL, Action.QUALIFY, Action.DISQUALIFY, Action.REASSIGN),
         link: tuple[str, str] | None = ("Open in CRM", "https://crm.example/contacts/1")) -> Card:
    buttons = []
    for action in actions:
        options: tuple[Option, ...] = ()
        if action is Action.DISQUALIFY:
            options = (Option("no budget", "no_budget"), Option("competitor", "competitor"))
        if action is Action.REASSIGN:
            options = (Option("Ben Okafor", "ben"),)
        buttons.append(Button(action=action, label=action.value.replace("_", " ").title(), lead_id=7, version=3,
                              style="primary" if action is Action.CLAIM else None, options=options,
                              asks_amount=action is Action.QUALIFY))
    return Card(title=title, subtitle="VP Operations · Globex", status="New: waiting to be claimed",
                facts=(Fact("Score", "50 (demo requested +30)"), Fact("Source / offer", "webinar / ebook")),
                reasons=("score 50 >= 20", "BANT: 3 of 4 known"), buttons=tuple(buttons), owner=owner,
                link=link, fallback="Lead Jane Doe: new", lead_id=7, version=3)


def actions_of(content: Any, kind: str) -> list[dict[str, Any]]:
    return [node for node in iter_nodes(content) if node.get("type") == kind]


def all_text(content: Any) -> str:
    return json.dumps({k: v for k, v in content.items() if k != "msteams"}, ensure_ascii=False)


# --- cards ------------------------------------------------------------------------------------------


def test_card_is_valid_adaptive_card_15_with_action_execute() -> None:
    content = render_card(card(owner=Mention("Ana Ruiz", teams="aad-ana")))
    assert_valid_card(content)
    assert content["version"] == "1.5" and content["type"] == "AdaptiveCard"
    assert card_verbs(content) == ["lead.claim", "lead.log_call", "lead.qualify", "lead.disqualify",
                                   "lead.reassign"]
    assert not actions_of(content, "Action.Submit")
    claim = actions_of(content, "Action.Execute")[0]
    assert claim == {"type": "Action.Execute", "title": "Claim", "verb": "lead.claim",
                     "data": {"a": "claim", "lead": 7, "v": 3}, "style": "positive"}
    # Work buttons in the body, dispositions in the action bar: neither exceeds Teams' 6 buttons.
    assert len(content["actions"]) <= 6
    assert content["actions"][-1] == {"type": "Action.OpenUrl", "title": "Open in CRM",
                                      "url": "https://crm.example/contacts/1"}


def test_a_real_leads_card_speaks_plain_words_and_its_choices_carry_identifiers(ctx: Context) -> None:
    body = json.loads(EXAMPLE_LEAD.read_text())
    body["bant"] = body["bant"] | {"authority": True}
    lead = handoff(ctx, LeadIn.model_validate(body)).lead
    content = render_card(lead_card(ctx, lead))
    assert_valid_card(content)
    facts = {f["title"]: re.sub(r"\\(.)", r"\1", f["value"])
             for node in iter_nodes(content) if node.get("type") == "FactSet" for f in node["facts"]}
    assert facts["Source / offer"] == "Demo request / Product demo"
    assert facts["Tier"] == "Hot (first touch within 15 min)"
    assert facts["Value"] == "$2,400"
    assert facts["BANT"] == ("Need: replace spreadsheets for field ops; Budget known; Timeframe: 1-3 months; "
                             "Authority known")
    choices = next(n for n in iter_nodes(content) if n.get("type") == "Input.ChoiceSet" and n["id"] == "reason")
    assert [c["title"] for c in choices["choices"]][:3] == ["No budget", "No need", "Bad contact data"]
    assert "Student or job seeker" in [c["title"] for c in choices["choices"]]
    assert [c["value"] for c in choices["choices"]][:3] == ["no_budget", "no_need", "bad_contact_data"]
    # What a person reads: texts, titles, placeholders and fact values (not the choices' values).
    shown = "\n".join([*(re.sub(r"\\(.)", r"\1", node[key]) for node in iter_nodes(content)
                         for key in ("text", "title", "placeholder") if isinstance(node.get(key), str)),
                       *facts.values()])
    assert "Score 50, at or above the threshold of 20" in shown and "Hot tier" in shown
    for raw in ("demo_request", "product_demo", "demo_requested", "solution_research", "authority:", "True", ">="):
        assert raw not in shown, raw


def test_selects_and_amount_are_inputs_whose_values_the_click_parser_reads() -> None:
    content = render_card(card())
    shows = {a["title"]: a["card"] for a in actions_of(content, "Action.ShowCard")}
    (reason,) = actions_of(shows["Disqualify"], "Input.ChoiceSet")
    assert reason["id"] == "reason" and reason["isRequired"] is True
    assert [c["value"] for c in reason["choices"]] == ["no_budget", "competitor"]
    (to,) = actions_of(shows["Reassign"], "Input.ChoiceSet")
    assert to["id"] == "to" and to["choices"] == [{"title": "Ben Okafor", "value": "ben"}]
    (amount,) = actions_of(shows["Qualify"], "Input.Number")
    assert amount["id"] == "amount" and not amount.get("isRequired")
    # Teams merges input values into action.data by input id; numbers arrive as strings.
    (disqualify,) = actions_of(shows["Disqualify"], "Action.Execute")
    parsed = ActionPayload.parse({**disqualify["data"], "reason": "no_budget"})
    assert (parsed.action, parsed.lead_id, parsed.version, parsed.reason) == (Action.DISQUALIFY, 7, 3, "no_budget")
    (qualify,) = actions_of(shows["Qualify"], "Action.Execute")
    assert ActionPayload.parse({**qualify["data"], "amount": "12000"}).amount == 12000.0
    assert ActionPayload.parse({**qualify["data"], "amount": ""}).amount is None


def test_lead_text_cannot_create_links_mentions_or_emphasis() -> None:
    content = render_card(card(title=EVIL, owner=Mention("Ana Ruiz", teams="aad-ana")))
    assert_valid_card(content)
    title = content["body"][0]["text"]
    assert not re.search(r"(?<!\\)[\[\]()<>*_`]", title), title
    assert "https://" not in title and "www." not in title
    # The one real mention is the owner's, declared as an entity; the lead's fake one is inert.
    assert card_mentions(content) == [{"type": "mention", "text": "<at>Ana Ruiz</at>",
                                       "mentioned": {"id": "aad-ana", "name": "Ana Ruiz"}}]
    assert all_text(content).count("<at>Ana Ruiz</at>") == 1


def test_owner_without_teams_id_is_plain_text_and_unsafe_links_are_dropped() -> None:
    content = render_card(card(owner=Mention("Ana Ruiz", slack="U1"), link=("Open in CRM", "javascript:alert(1)")))
    assert_valid_card(content)
    assert card_mentions(content) == [] and "<at>" not in all_text(content)
    assert not actions_of(content, "Action.OpenUrl")


def test_closed_lead_card_has_no_buttons() -> None:
    content = render_card(card(actions=(), link=None))
    assert_valid_card(content)
    assert card_verbs(content) == [] and "actions" not in content


@pytest.mark.parametrize(("raw", "shown"), [
    ("[x](http://a.b)", r"\[x\]\(http:" + "\u200b" + "//a.b\\)"),
    ("a_b*c", r"a\_b\*c"),
    ("<at>Bob</at>", r"\<at\>Bob\</at\>"),
    ("back\\slash", "back\\\\slash"),
    ("visit www.x.com", "visit www\u200b.x.com"),
    ("plain text, 50% done: ok", "plain text, 50% done: ok"),
])
def test_escape(raw: str, shown: str) -> None:
    assert escape(raw) == shown


def test_reply_text_is_escaped_markdown_one_paragraph_per_line() -> None:
    text = reply_text("Your open leads (2):", ["#1 Jane [x](https://e.x)", "#2 *Bob*"])
    assert text == "Your open leads \\(2\\):\n\n#1 Jane \\[x\\]\\(https:\u200b//e.x\\)\n\n#2 \\*Bob\\*"


def test_only_the_link_slabot_made_stays_a_link() -> None:
    link = "https://desk.acme.example/desk/signin/a_b-C"
    text = linked_text(f"Your link (once): {link} *not* https://evil.example", link)
    assert text == ("Your link \\(once\\): [https://desk.acme.example/desk/signin/a\\_b-C]"
                    "(https://desk.acme.example/desk/signin/a_b-C) \\*not\\* https:\u200b//evil.example")
    # Without a link, or with one markdown cannot carry or that is not in the text: all inert.
    for other in (None, "javascript:alert(1)", "https://e.x/a)b", "https://elsewhere.example/"):
        assert linked_text(f"see {link}", other) == reply_text(f"see {link}")


# --- digests --------------------------------------------------------------------------------------------


def digest(chart: str | None) -> dict[str, Any]:
    return {"title": "SLA digest, Tue Nov 24", "text": "fallback", "to": "channel", "chart_png_b64": chart,
            "sections": [{"heading": "Marketing", "lines": ["112 workable of 200 (pace 71%)"]},
                         {"heading": "Sales", "lines": ["worked 93%", "breaches: Jane [x](https://e.x)"]}]}


def test_digest_card_with_a_small_chart() -> None:
    content = render_digest(digest("iVBORw0KGgo="))
    assert_valid_card(content)
    (image,) = actions_of(content, "Image")
    assert image["url"] == "data:image/png;base64,iVBORw0KGgo=" and image["altText"]
    assert "](" not in all_text(content)


def test_digest_leaves_out_a_chart_too_big_for_teams() -> None:
    content = render_digest(digest("A" * 40_000))
    assert_valid_card(content)
    assert not actions_of(content, "Image") and "too large" in all_text(content)
    assert card_size(content) < MAX_CARD_BYTES


# --- transport error mapping --------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "headers", "permanent", "retry_after"), [
    (429, {"Retry-After": "3"}, False, 3.0),
    (429, {}, False, None),
    (412, {}, False, None),
    (502, {"Retry-After": "1"}, False, 1.0),
    (504, {}, False, None),
    (401, {}, True, None),
    (403, {}, True, None),
    (404, {"Retry-After": "9"}, True, None),
])
def test_connector_errors_map_to_transport_errors(status: int, headers: dict[str, str], permanent: bool,
                                                  retry_after: float | None) -> None:
    error = error_for_status("create thread", status, headers)
    assert (error.permanent, error.retry_after) == (permanent, retry_after)
    assert str(status) in str(error)


def test_retry_after_as_http_date() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    assert retry_after_seconds("Tue, 24 Nov 2026 15:00:07 GMT", now=now) == 7.0
    assert retry_after_seconds("soon", now=now) is None


# --- the app package ------------------------------------------------------------------------------------


def manifest_validator() -> jsonschema.Draft7Validator:
    # The schema says draft-04 but pins manifestVersion with `const` (draft-06+): validate as draft-07.
    return jsonschema.Draft7Validator(json.loads(MANIFEST_SCHEMA.read_text()))


def test_manifest_is_valid_v117_with_generated_command_lists() -> None:
    manifest = teams_manifest(APP_ID, "https://slabot.acme.example")
    errors = list(manifest_validator().iter_errors(manifest))
    assert not errors, [e.message for e in errors]
    assert manifest["manifestVersion"] == "1.17"
    assert manifest["$schema"] == ("https://developer.microsoft.com/en-us/json-schemas/teams/v1.17/"
                                   "MicrosoftTeams.schema.json")
    assert manifest["id"] == APP_ID and manifest["validDomains"] == ["slabot.acme.example"]
    (bot,) = manifest["bots"]
    assert bot["botId"] == APP_ID and sorted(bot["scopes"]) == ["groupChat", "personal", "team"]
    lists = {tuple(cl["scopes"]): cl["commands"] for cl in bot["commandLists"]}
    team = lists[("team",)]
    assert [c["title"] for c in team] == [f"sla {c.name}" for c in COMMANDS][:10]
    assert team[0]["description"] == COMMANDS[0].help
    assert "sla link" not in [c["title"] for c in lists[("personal",)]]
    assert all(len(c["commands"]) <= 10 for c in bot["commandLists"])
    assert "{{" not in json.dumps(manifest)


def test_wrong_manifest_version_would_be_caught() -> None:
    manifest = teams_manifest(APP_ID, "https://slabot.acme.example")
    manifest["manifestVersion"] = "1.16"
    assert list(manifest_validator().iter_errors(manifest))


def test_manifest_needs_a_guid_and_an_absolute_url() -> None:
    with pytest.raises(ValueError):
        teams_manifest("slabot", "https://slabot.acme.example")
    with pytest.raises(ValueError):
        teams_manifest(APP_ID, "slabot.acme.example")


def png_header(data: bytes) -> tuple[int, int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height, _depth, color_type = struct.unpack(">IIBB", data[16:26])
    return width, height, color_type


def test_package_zips_manifest_and_icons(tmp_path: Path) -> None:
    path = build_package(APP_ID, "https://slabot.acme.example/", tmp_path / "out" / "slabot-teams.zip")
    with zipfile.ZipFile(path) as package:
        assert sorted(package.namelist()) == ["color.png", "manifest.json", "outline.png"]
        manifest = json.loads(package.read("manifest.json"))
        assert manifest["icons"] == {"color": "color.png", "outline": "outline.png"}
        assert png_header(package.read("color.png"))[:2] == (192, 192)
        width, height, color_type = png_header(package.read("outline.png"))
        assert (width, height, color_type) == (32, 32, 6)   # RGBA: transparent background
    assert not list(manifest_validator().iter_errors(manifest))


def test_outline_icon_is_white_on_transparent() -> None:
    import zlib

    data = (Path(__file__).resolve().parents[2] / "manifests" / "teams" / "outline.png").read_bytes()
    idat = b"".join(data[i + 8:i + 8 + struct.unpack(">I", data[i:i + 4])[0]]
                    for i in [m.start() - 4 for m in re.finditer(b"IDAT", data)])
    raw = zlib.decompress(idat)
    rows = [raw[r * (1 + 32 * 4) + 1:(r + 1) * (1 + 32 * 4)] for r in range(32)]
    pixels = [row[i:i + 4] for row in rows for i in range(0, len(row), 4)]
    assert all(p[3] == 0 or p[:3] == b"\xff\xff\xff" for p in pixels)
    assert any(p[3] == 0 for p in pixels) and any(p[3] == 255 for p in pixels)
