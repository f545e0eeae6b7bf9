"""The README's "Try Teams locally" section works as written: the settings it gives turn Teams on
without authentication, and the exact activity its curl command posts gets the bot's answer, over
real HTTP against the live app (in the response with expectReplies; through the Bot Connector, as the
Agents Playground would receive it, without)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from bot.http.app import create_app
from bot.settings import Settings
from sla.agreement import Agreement
from sla.clock import FixedClock
from storage.db import Database
from tests.conftest import ROOT, LiveServer, make_settings
from tests.fakes.bot_connector import FakeBotConnector

HELP_WORDS = ("sla status", "sla leads", "sla link TEAM", "sla help")


@dataclass(frozen=True)
class Section:
    serve: str
    playground: str
    curl: str

    @property
    def activity_text(self) -> str:
        found = re.search(r"<<'EOF'\n(.*?)\nEOF\b", self.curl, re.S)
        assert found, "the curl command should post a here-document"
        return found.group(1)

    @property
    def url_path(self) -> str:
        found = re.search(r"curl .*?http://localhost:(\d+)(/\S*)", self.curl)
        assert found, "the curl command should post to http://localhost:PORT/..."
        assert found.group(1) == "8000", "the curl command should use the port `slabot serve --port` uses"
        return found.group(2)


def readme_section() -> Section:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    parts = readme.split("\n## Try Teams locally\n")
    assert len(parts) == 2, "README.md should have one '## Try Teams locally' section"
    text = parts[1].split("\n## ")[0]
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    serve = next(b for b in blocks if "slabot serve" in b)
    playground = next(b for b in blocks if "agentsplayground" in b)
    curl = next(b for b in blocks if "curl" in b)
    return Section(serve, playground, curl)


def plain(text: str) -> str:
    return text.replace("\\", "")   # Teams markdown escapes [ ] ( )


def test_the_readme_settings_run_teams_without_authentication() -> None:
    section = readme_section()
    assert "TEAMS_ALLOW_UNAUTHENTICATED=1" in section.serve and "unset TEAMS_APP_ID" in section.serve
    assert re.search(r"slabot serve --port 8000\b", section.serve)
    settings = Settings(_env_file=None, teams_allow_unauthenticated="1")
    assert settings.teams_enabled and settings.teams_app_id is None
    assert "teams" in settings.platforms()
    # The Playground is pointed at the route the bot serves, on the same port, as the Teams channel.
    assert "npm install -g @microsoft/m365agentsplayground" in section.playground
    assert "agentsplayground -e http://localhost:8000/api/messages -c msteams" in section.playground


@pytest.fixture
def live_teams(db: Database, clock: FixedClock, agreement: Agreement) -> Iterator[tuple[LiveServer, FakeBotConnector]]:
    from bot.services import build_services

    services = build_services(make_settings(database_url=db.url, teams_allow_unauthenticated=True),
                              clock=clock, agreement=agreement, db=db)
    with FakeBotConnector() as connector, LiveServer(create_app(services)) as server:
        yield server, connector


def test_the_readme_curl_activity_gets_the_help_in_the_response(
        live_teams: tuple[LiveServer, FakeBotConnector]) -> None:
    server, connector = live_teams
    section = readme_section()
    body = section.activity_text.encode()
    activity: dict[str, Any] = json.loads(body)
    assert activity["deliveryMode"] == "expectReplies" and activity["text"] == "sla help"

    # Exactly the bytes the README's curl sends, to the path it names.
    response = httpx.post(server.url + section.url_path, content=body,
                          headers={"Content-Type": "application/json"}, timeout=10)

    assert response.status_code == 200, response.text
    replies = response.json()["activities"]
    assert [r["type"] for r in replies] == ["message"]
    reply = replies[0]
    assert reply["replyToId"] == activity["id"]
    assert reply["recipient"]["id"] == activity["from"]["id"]
    assert reply["conversation"]["id"] == activity["conversation"]["id"]
    assert all(word in plain(reply["text"]) for word in HELP_WORDS), reply["text"]
    assert connector.activities() == [], "with expectReplies nothing goes to the serviceUrl"


def test_without_expect_replies_the_answer_goes_to_the_connector(
        live_teams: tuple[LiveServer, FakeBotConnector]) -> None:
    """What the Agents Playground sees: the same activity, its reply sent to the serviceUrl."""
    server, connector = live_teams
    activity = json.loads(readme_section().activity_text)
    del activity["deliveryMode"]
    activity["serviceUrl"] = connector.service_url

    response = httpx.post(server.url + "/api/messages", json=activity, timeout=10)

    assert response.status_code == 202, response.text
    sent = connector.activities(activity["conversation"]["id"])
    assert len(sent) == 1
    assert all(word in plain(sent[0].text or "") for word in HELP_WORDS), sent[0].text
