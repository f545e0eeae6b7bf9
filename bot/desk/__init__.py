"""The desk: the agreement in a browser, the third thin adapter next to Slack and Teams.

Server-rendered pages under `/desk` (Jinja2, autoescaped), SVG charts drawn on the server, a
stylesheet and one small script served by the app itself (no CDN, no build step). Numbers come
from the same `status()` as `GET /api/v1/status`; a click goes through the same command as a chat
click (same authorization, same compare-and-set) and the chat card is updated through the outbox.
"""

from __future__ import annotations

from bot.desk.routes import install

__all__ = ["install"]
