"""The digest as an e-mail, from the same outbox payload the chat renderers use (commands.digest's
`DigestContent.payload`): every number is the chat digest's, nothing is computed here.

Structure: multipart/alternative of a plain-text part and a multipart/related HTML part whose chart
is an inline image/png referenced by its Content-ID. A "why you get this" footer names the agreement;
there is no unsubscribe link (the agreement decides who gets the digest)."""

from __future__ import annotations

import base64
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from html import escape
from typing import Any

__all__ = ["CHART_ALT", "digest_email"]

CHART_ALT = "Chart: workable leads this month, cumulative, against the goal line"


def _domain(address: str) -> str:
    return address.rpartition("@")[2].strip(">").strip() or "slabot.invalid"


def digest_email(payload: dict[str, Any], *, sender: str, recipient: str, outbox_id: int,
                 now: datetime) -> EmailMessage:
    """The e-mail for one digest row of the outbox. Its Message-ID derives from the row, so a
    re-send after a crash carries the same id (mail clients show one message)."""
    domain = _domain(sender)
    title = str(payload["title"])
    sections: list[dict[str, Any]] = list(payload.get("sections") or [])
    why = str(payload.get("why") or "")
    chart = base64.b64decode(payload["chart_png_b64"]) if payload.get("chart_png_b64") else None

    message = EmailMessage()
    message["Subject"] = title
    message["From"] = sender
    message["To"] = recipient
    message["Date"] = format_datetime(now)
    message["Message-ID"] = f"<slabot-outbox-{outbox_id}@{domain}>"
    # RFC 3834: an automatic message (no out-of-office replies).
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(str(payload["text"]) + (f"\n\n-- \n{why}\n" if why else "\n"))

    cid = f"chart-{outbox_id}@{domain}"
    html = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title></head>",
        '<body style="font-family: sans-serif; color: #1d1d1d; max-width: 720px;">',
        f"<h1 style=\"font-size: 20px;\">{escape(title)}</h1>",
    ]
    if chart is not None:
        html.append(f'<p><img src="cid:{escape(cid)}" alt="{escape(CHART_ALT)}" width="640" '
                    'style="max-width: 100%; height: auto;"></p>')
    for section in sections:
        html.append(f"<h2 style=\"font-size: 16px;\">{escape(str(section['heading']))}</h2>")
        html.append("<ul>" + "".join(f"<li>{escape(str(line))}</li>" for line in section["lines"]) + "</ul>")
    if why:
        html.append(f'<hr><p style="font-size: 12px; color: #555;">{escape(why)}</p>')
    html.append("</body></html>")
    message.add_alternative("\n".join(html) + "\n", subtype="html")
    if chart is not None:
        html_part = next(part for part in message.iter_parts() if part.get_content_type() == "text/html")
        html_part.add_related(chart, maintype="image", subtype="png", cid=f"<{cid}>",
                              filename="chart.png", disposition="inline")
    return message
