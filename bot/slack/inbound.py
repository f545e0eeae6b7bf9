"""The shape of a signed Slack request, checked before Bolt routes it.

Slack's requests are signed, but a signature says who sent a body, not that it is well formed. A
body Bolt cannot route is Bolt's 404; one it can route but whose fields are missing or of the
wrong kind would reach a listener and fail there as a 500. This refuses those with a 400 naming
what is wrong. Only the fields slabot's listeners read are checked; everything else passes.

The check reads the body Bolt already parsed (`problem`): parsing Slack's form bodies (JSON
inside URL encoding) is most of a click's request cost, so it is done once, by Bolt. Only a body
Bolt could not parse at all is read again here (`unreadable`), to say what is wrong with it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from bot.http.api import MAX_JSON_DEPTH, JSONRefused, load_json

#: Interactive payload types whose listeners read `user.id`.
_USER_PAYLOADS = {"block_actions", "block_suggestion", "view_submission", "view_closed", "shortcut",
                  "message_action"}


def problem(parsed: dict[str, Any], raw: str, content_type: str | None) -> str | None:
    """What is wrong with a body as Bolt parsed it (`parsed`, from `raw` sent as `content_type`,
    which Bolt gives without parameters), in plain words; None when it is well formed.

    Bolt reads JSON (an event) when the content type says so or the body starts with a brace,
    else the form's `payload` field (an interaction) when the body mentions one, else the form
    itself (a slash command): the same rules pick the shape checked here."""
    if not parsed:   # Bolt reads nothing from an empty `payload` and from a form without one alike
        return malformed(raw.encode(), content_type or "")
    if _deeper_than(parsed, MAX_JSON_DEPTH):
        return f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
    if content_type == "application/json" or raw.startswith("{"):
        return _event(parsed)
    if "payload" in raw:
        return _interactive(parsed)
    if "command" in parsed:
        return _missing(parsed, "command", "user_id")
    return None


def unreadable(body: bytes, content_type: str) -> str:
    """Why Bolt could not parse a body at all, in plain words."""
    return malformed(body, content_type) or "the body is neither a Slack event nor a Slack form"


def malformed(body: bytes, content_type: str) -> str | None:
    """What is wrong with a Slack request body, parsed from scratch; None when it is well formed."""
    try:
        text = body.decode("utf-8")
        if content_type.split(";")[0].strip().lower() == "application/json":
            return _event(load_json(text))
        form = dict(parse_qsl(text, keep_blank_values=True, errors="strict"))
        if "payload" in form:
            return _interactive(load_json(form["payload"]))
    except UnicodeDecodeError:
        return "the body is not UTF-8"
    except JSONRefused as exc:
        return str(exc)
    if "command" in form:
        return _missing(form, "command", "user_id")
    return None


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether `value` nests objects/lists deeper than `limit`: only containers are visited, so a
    card's many strings cost nothing (iterative: no recursion to exhaust)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _event(body: Any) -> str | None:
    if not isinstance(body, dict) or not _text(body.get("type")):
        return "the body must be a JSON object with a type"
    if body["type"] == "url_verification":
        return _missing(body, "challenge")
    if body["type"] == "event_callback":
        event = body.get("event")
        if not isinstance(event, dict) or not _text(event.get("type")):
            return "an event_callback must carry an event with a type"
    return None


def _interactive(payload: Any) -> str | None:
    if not isinstance(payload, dict) or not _text(payload.get("type")):
        return "the payload must be a JSON object with a type"
    kind = payload["type"]
    if kind in _USER_PAYLOADS:
        user = payload.get("user")
        if not isinstance(user, dict) or not _text(user.get("id")):
            return f"a {kind} payload must name its user"
    if kind == "block_actions":
        actions = payload.get("actions")
        if not isinstance(actions, list) or not actions or not all(
                isinstance(a, dict) and _text(a.get("action_id")) for a in actions):
            return "a block_actions payload must carry a list of actions, each with an action_id"
    if kind in ("view_submission", "view_closed"):
        view = payload.get("view")
        if not isinstance(view, dict) or not isinstance(view.get("callback_id"), str):
            return f"a {kind} payload must carry a view with a callback_id"
    return None


def _missing(fields: dict[str, Any], *names: str) -> str | None:
    absent = [name for name in names if not _text(fields.get(name))]
    return f"missing {', '.join(absent)}" if absent else None


def _text(value: Any) -> bool:
    return isinstance(value, str) and value != ""
