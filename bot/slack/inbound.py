"""The shape of a signed Slack request, checked before Bolt routes it.

Slack's requests are signed, but a signature says who sent a body, not that it is well formed. A
body Bolt cannot route is Bolt's 404; one it can route but whose fields are missing or of the
wrong kind would reach a listener and fail there as a 500. This refuses those with a 400 naming
what is wrong. Only the fields slabot's listeners read are checked; everything else passes.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from bot.http.api import JSONRefused, load_json

#: Interactive payload types whose listeners read `user.id`.
_USER_PAYLOADS = {"block_actions", "block_suggestion", "view_submission", "view_closed", "shortcut",
                  "message_action"}


def malformed(body: bytes, content_type: str) -> str | None:
    """What is wrong with a Slack request body, in plain words; None when it is well formed."""
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
