"""A card click (`invoke` `adaptiveCard/action`) whose value the Agents SDK cannot read.

For such a click the SDK builds its 400 answer around a Python `Exception` object, which cannot be
serialized, so the request ends as a 500. The same checks the SDK makes are made here first, and a
malformed click gets the invoke answer Teams expects for a bad request: HTTP 200 with
`statusCode` 400 in the body (an invoke's HTTP status only says the bot answered).
"""

from __future__ import annotations

import json
from typing import Any

from microsoft_agents.activity import AdaptiveCardInvokeValue
from pydantic import ValidationError

ERROR_RESPONSE = "application/vnd.microsoft.error"


def malformed_card_action(body: bytes) -> dict[str, Any] | None:
    """The invoke answer for a malformed card click; None for anything else (the SDK handles it)."""
    try:
        activity = json.loads(body)
    except (ValueError, RecursionError):
        return None   # not JSON: the SDK answers 400 itself
    if not isinstance(activity, dict) or activity.get("type") != "invoke" \
            or activity.get("name") != "adaptiveCard/action":
        return None
    value = activity.get("value")
    try:
        parsed = AdaptiveCardInvokeValue.model_validate(value) if isinstance(value, dict) else None
    except ValidationError:
        parsed = None
    if parsed is not None and parsed.action is not None and parsed.action.type == "Action.Execute":
        return None
    return {"statusCode": 400, "type": ERROR_RESPONSE,
            "value": {"code": "BadRequest", "message": "The card action is malformed."}}
