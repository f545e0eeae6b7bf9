"""How people get a sign-in link: `/sla desk` in chat (a direct message through the outbox) and
`slabot desk link EMAIL` for an operator (the link is the last line of output)."""

from __future__ import annotations

import re

import httpx
import pytest
from click.testing import CliRunner
from sqlmodel import col, select

from bot.cli import main
from bot.services import Services
from commands.context import identify
from commands.sla import run
from storage.tables import DeskSignin, OutboxMessage
from tests.conftest import EXAMPLE_AGREEMENT, LiveServer
from tests.desk.helpers import SECRET_KEY

Live = tuple[LiveServer, Services]


def test_sla_desk_sends_a_one_time_link_by_direct_message(desk_live: Live) -> None:
    server, services = desk_live
    ctx = services.ctx
    assert ctx.desk_url is None   # no SLABOT_PUBLIC_URL in these settings: the command says so
    eve = identify(ctx.agreement, platform="slack", user_id="U0EVE00001")
    assert eve.rep == "eve"
    assert "SLABOT_PUBLIC_URL" in run(ctx, text="desk", actor=eve, platform="slack", channel="C1").text

    ctx.desk_url = server.url
    reply = run(ctx, text="desk", actor=eve, platform="slack", channel="C1")
    assert "direct message" in reply.text and "http" not in reply.text   # the link is never in the channel
    with ctx.db.read() as session:
        dm = session.execute(select(OutboxMessage).where(col(OutboxMessage.kind) == "dm")).scalars().one()
        stored = session.execute(select(DeskSignin)).scalars().one()
    assert dm.platform == "slack" and dm.target == "U0EVE00001"
    found = re.search(r"(http://\S+/desk/signin/(\S+))", dm.payload["text"])
    assert found is not None
    assert found.group(2) not in stored.token_hash and len(stored.token_hash) == 64   # stored hashed
    page = httpx.get(found.group(1))
    assert page.status_code == 200 and "Eve Adams" in page.text

    stranger = identify(ctx.agreement, platform="slack", user_id="U0NOBODY01")
    assert "not in the SLA agreement" in run(ctx, text="desk", actor=stranger, platform="slack", channel="C1").text

    # `sla desk` in Teams: the same, the direct message goes out on Teams.
    teams_eve = identify(ctx.agreement, platform="teams", user_id="29:eve-aad-id", email="eve@acme.example")
    assert teams_eve.rep == "eve"
    reply = run(ctx, text="desk", actor=teams_eve, platform="teams", channel="19:channel")
    assert "direct message" in reply.text and "http" not in reply.text
    with ctx.db.read() as session:
        teams_dm = session.execute(select(OutboxMessage).where(col(OutboxMessage.kind) == "dm",
                                                               col(OutboxMessage.platform) == "teams")).scalars().one()
    link = re.search(r"(http://\S+/desk/signin/\S+)", teams_dm.payload["text"])
    assert link is not None and "Eve Adams" in httpx.get(link.group(1)).text


def test_slabot_desk_link_prints_a_link_last(desk_live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    server, services = desk_live
    monkeypatch.setenv("DATABASE_URL", services.ctx.db.url)
    monkeypatch.setenv("SLABOT_AGREEMENT", str(EXAMPLE_AGREEMENT))
    monkeypatch.setenv("SLABOT_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("SLABOT_PUBLIC_URL", server.url)
    result = CliRunner().invoke(main, ["desk", "link", "SAM@acme.example", "--next", "/desk/people"])
    assert result.exit_code == 0, result.output
    url = result.output.strip().splitlines()[-1]
    assert url.startswith(server.url + "/desk/signin/")
    with httpx.Client() as client:
        assert "Sam Ortiz" in client.get(url).text
        signed = client.post(url, headers={"Origin": server.url})
        assert signed.headers["location"] == "/desk/people"

    unknown = CliRunner().invoke(main, ["desk", "link", "nobody@example.com"])
    assert unknown.exit_code == 2 and "not the e-mail" in unknown.output
