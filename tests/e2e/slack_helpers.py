"""Signed Slack requests for end-to-end tests: the real payload shapes (bolt-python's test fixtures in
tests/fixtures) with our ids, signed with Slack's v0 HMAC scheme."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from tests.conftest import FIXTURES

PAYLOADS = FIXTURES / "slack_payloads" / "bolt_python_tests"
SIGNING_SECRET = "test-signing-secret-0123456789abcdef"
BOT_TOKEN = "xoxb-test"
TEAM_ID = "T0ACME001"
APP_ID = "A0SLABOT01"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(body: bytes, *, content_type: str, secret: str = SIGNING_SECRET,
                   timestamp: int | None = None, retry_num: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    headers = {"Content-Type": content_type, "X-Slack-Request-Timestamp": ts,
               "X-Slack-Signature": signature(secret, ts, body)}
    if retry_num is not None:
        headers["X-Slack-Retry-Num"] = str(retry_num)
        headers["X-Slack-Retry-Reason"] = "http_timeout"
    return headers


def _fixture(name: str) -> dict[str, Any]:
    return json.loads((PAYLOADS / name).read_text())  # type: ignore[no-any-return]


def _team(body: dict[str, Any]) -> None:
    body["team"] = {"id": TEAM_ID, "domain": "acme"}
    body["api_app_id"] = APP_ID
    body.pop("enterprise", None)


def block_action(*, user: str, channel: str, message_ts: str, action_id: str, value: str | None = None,
                 selected: str | None = None, action_ts: str | None = None) -> bytes:
    """A block_actions payload for one click: a button (`value`) or a static select (`selected`)."""
    body = copy.deepcopy(_fixture("block_actions.json"))
    _team(body)
    body["user"] = {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM_ID}
    body["container"] = {"type": "message", "message_ts": message_ts, "channel_id": channel,
                         "is_ephemeral": False}
    body["channel"] = {"id": channel, "name": "leads"}
    body["trigger_id"] = f"{int(time.time())}.{message_ts}.trigger"
    action: dict[str, Any] = {"action_id": action_id, "block_id": "lead",
                              "action_ts": action_ts or f"{time.time():.6f}"}
    if selected is not None:
        action.update(type="static_select", selected_option={
            "text": {"type": "plain_text", "text": "choice", "emoji": True}, "value": selected})
    else:
        action.update(type="button", value=value, text={"type": "plain_text", "text": "Button", "emoji": True})
    body["actions"] = [action]
    return urlencode({"payload": json.dumps(body)}).encode()


def view_submission(*, user: str, private_metadata: str, amount: str | None,
                    callback_id: str = "lead.qualify.amount") -> bytes:
    body = copy.deepcopy(_fixture("view_submission.json"))
    _team(body)
    body["user"] = {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM_ID}
    view = body["view"]
    view.update(callback_id=callback_id, private_metadata=private_metadata, team_id=TEAM_ID, app_id=APP_ID)
    view["blocks"] = [{"type": "input", "block_id": "amount", "label": {"type": "plain_text", "text": "Amount"},
                       "optional": True, "element": {"type": "number_input", "action_id": "amount",
                                                     "is_decimal_allowed": True}}]
    view["state"] = {"values": {"amount": {"amount": {"type": "number_input", "value": amount}}}}
    return urlencode({"payload": json.dumps(body)}).encode()


def slash_command(*, user: str, channel: str, text: str) -> bytes:
    fields = dict(parse_qsl((PAYLOADS / "slash_command.form-urlencoded.txt").read_text().strip(),
                            keep_blank_values=True))
    fields.update(team_id=TEAM_ID, team_domain="acme", channel_id=channel, channel_name="leads",
                  user_id=user, user_name=user.lower(), command="/sla", text=text,
                  trigger_id=f"{time.time():.6f}.trigger", api_app_id=APP_ID)
    fields.pop("enterprise_id", None)
    fields.pop("enterprise_name", None)
    return urlencode(fields).encode()


def app_home_opened(*, user: str, event_id: str, tab: str = "home") -> bytes:
    body = copy.deepcopy(_fixture("event_callback_app_home_opened.json"))
    body.update(team_id=TEAM_ID, api_app_id=APP_ID, event_id=event_id, event_time=int(time.time()))
    body.pop("enterprise_id", None)
    body["event"].update(user=user, channel="D0APPHOME1", tab=tab, event_ts=f"{time.time():.6f}")
    body["authorizations"] = [{"enterprise_id": None, "team_id": TEAM_ID, "user_id": "UBOT00001",
                               "is_bot": True, "is_enterprise_install": False}]
    return json.dumps(body).encode()


FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


def fixture_path(name: str) -> Path:
    return PAYLOADS / name
