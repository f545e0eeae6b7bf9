"""The desk over real HTTP (no browser): its pages, what each role sees, the one-time sign-in link,
the session cookie and the CSRF and origin checks. tests/desk/test_browser.py does the same
journeys in chromium."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from bot.services import Services
from bot.settings import start_problems
from commands import desk
from commands.actions import set_away
from storage.desk import LeadFilter, lead_page
from storage.tables import Lead
from tests.conftest import LiveServer, make_settings
from tests.desk.helpers import AUTH, changes, csrf_of, figures, hand_off, previous_value, sign_in, status_value

Live = tuple[LiveServer, Services]


def _two_leads(server: LiveServer) -> None:
    hand_off(server.url)
    hand_off(server.url, email="kim@initech.example", name="Kim Lee", company="Initech",
             external_id="hs-contact-2")


def test_overview_numbers_equal_the_status_api(desk_live: Live) -> None:
    server, services = desk_live
    _two_leads(server)
    with httpx.Client(base_url=server.url) as client:
        sign_in(client, services, server.url, "sales_vp")
        for query in ("", "?period=last", "?as_of=2026-11-20"):
            page = client.get("/desk" + query)
            assert page.status_code == 200
            as_of = re.search(r'data-as-of="([^"]+)" data-scope="([^"]+)"', page.text)
            assert as_of is not None
            api = httpx.get(f"{server.url}/api/v1/status", params={"as_of": as_of.group(1), "scope": as_of.group(2)},
                            headers=AUTH).json()
            shown = figures(page.text)
            assert len(shown) >= 15
            for key, value in shown.items():
                assert value == status_value(api, key), key
        overview = client.get("/desk").text
        assert figures(overview)["marketing.workable"] == 2
        # Both charts are SVG drawn on the server with a text alternative saying what they show.
        assert overview.count('<svg xmlns="http://www.w3.org/2000/svg"') == 2 and overview.count('role="img"') == 2
        assert "2 workable leads so far this month" in overview
        assert re.search(r'<desc id="speed-desc">[^<]*(No lead has been touched|leads first touched)', overview)


def test_overview_shows_each_figures_change_from_the_previous_period(desk_live: Live) -> None:
    server, services = desk_live
    _two_leads(server)
    with httpx.Client(base_url=server.url) as client:
        sign_in(client, services, server.url, "sales_vp")
        for query, against in (("", "Changes are against October 2026 as of Mon Oct 26, 15:18 EDT, when the "
                                    "same 80% of its business time had passed"),
                               ("?period=last", "Changes are against the whole of September 2026"),
                               ("?as_of=2026-11-20", "Changes are against October 2026 as of Fri Oct 23")):
            page = client.get("/desk" + query)
            assert page.status_code == 200 and against in page.text, query
            previous = re.search(r'data-previous-as-of="([^"]+)"', page.text)
            scope = re.search(r'data-scope="([^"]+)"', page.text)
            assert previous is not None and scope is not None
            api = httpx.get(f"{server.url}/api/v1/status", headers=AUTH,
                            params={"as_of": previous.group(1), "scope": scope.group(1)}).json()
            shown = changes(page.text)
            # Every figure of both sides, and each rep's row, has its change next to it.
            assert set(figures(page.text)) <= set(shown)
            assert {"sales.per_rep.eve.worked_pct", "marketing.per_rep.eve", "sales.per_rep.ana.open_breaches"} \
                <= set(shown)
            for key, (value, _) in shown.items():
                assert value == previous_value(api, key), (query, key)
        # This month against October (no leads then); both leads came this month.
        now = changes(client.get("/desk").text)
        assert now["marketing.workable"][1] == "▲ 2 from 0, better"
        assert now["sales.open_breaches"][1] == "= no change from 0"
        assert now["marketing.nurture"][1] == "= no change from 0"
        assert now["sales.worked_pct"][1] == "n/a then too"   # no lead's deadline has passed yet
        # The page refreshing itself (the fragment) shows them too.
        live = client.get("/desk", headers={"X-Desk-Fragment": "1"}).text
        assert "<html" not in live and changes(live)["marketing.workable"][1] == "▲ 2 from 0, better"


def test_a_rep_sees_their_team_numbers_and_only_their_own_leads(desk_live: Live) -> None:
    server, services = desk_live
    lead = hand_off(server.url)   # routed to Eve (midmarket)
    with httpx.Client(base_url=server.url) as client:
        sign_in(client, services, server.url, "rep:ana")   # SMB
        page = client.get("/desk")
        assert 'data-scope="team:smb"' in page.text
        other = client.get(f"/desk/leads/{lead['id']}")
        missing = client.get("/desk/leads/999999")
        assert other.status_code == missing.status_code == 403
        assert other.text == missing.text and "Jane Doe" not in other.text
        assert "Jane Doe" not in client.get("/desk/leads").text
        assert "Jane Doe" not in client.get("/desk/leads.csv").text
    with httpx.Client(base_url=server.url) as client:
        sign_in(client, services, server.url, "rep:eve")
        assert client.get(f"/desk/leads/{lead['id']}").status_code == 200
        assert "Jane Doe" in client.get("/desk/leads").text
    with httpx.Client(base_url=server.url) as client:
        sign_in(client, services, server.url, "manager:smb")
        assert client.get(f"/desk/leads/{lead['id']}").status_code == 403
        assert 'data-scope="team:smb"' in client.get("/desk").text


def test_not_signed_in_gets_a_page_saying_how(desk_live: Live) -> None:
    server, _ = desk_live
    for path in ("/desk", "/desk/leads", "/desk/leads/1", "/desk/agreement", "/desk/people", "/desk/leads.csv"):
        page = httpx.get(server.url + path)
        assert page.status_code == 401
        assert "/sla desk" in page.text


def test_a_link_is_spent_by_the_post_only_once_and_expires(desk_live: Live) -> None:
    server, services = desk_live
    url = desk.signin_link(services.ctx, key="rep:eve", next_path="/desk/leads", base_url=server.url)
    for _ in range(3):   # link previews: a GET never spends it
        page = httpx.get(url)
        assert page.status_code == 200 and "Eve Adams" in page.text
    with httpx.Client(base_url=server.url) as client:
        first = client.post(url, headers={"Origin": server.url})
        assert first.status_code == 303 and first.headers["location"] == "/desk/leads"
        assert client.get("/desk/leads").status_code == 200
    again = httpx.post(url, headers={"Origin": server.url})
    assert again.status_code == 410 and "set-cookie" not in again.headers
    assert httpx.get(url).status_code == 410

    late = desk.signin_link(services.ctx, key="rep:eve", base_url=server.url)
    clock = services.ctx.clock
    clock.advance(timedelta(minutes=10, seconds=1))   # type: ignore[attr-defined]
    assert httpx.get(late).status_code == 410
    refused = httpx.post(late, headers={"Origin": server.url})
    assert refused.status_code == 410 and "set-cookie" not in refused.headers


def test_cookie_flags_and_next_stays_on_the_desk(desk_live: Live) -> None:
    server, services = desk_live
    url = desk.signin_link(services.ctx, key="sales_vp", next_path="//evil.example/x", base_url=server.url)
    done = httpx.post(url, headers={"Origin": server.url})
    assert done.headers["location"] == "/desk"
    cookie = done.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/desk" in cookie
    assert "secure" not in cookie   # http://127.0.0.1: no public https URL
    assert desk.safe_next("https://evil.example") == "/desk" and desk.safe_next("/desk/leads?q=a") == "/desk/leads?q=a"


def test_cross_site_posts_are_refused(desk_live: Live) -> None:
    server, services = desk_live
    lead = hand_off(server.url)
    # The sign-in form posted from another site: the link stays unspent.
    url = desk.signin_link(services.ctx, key="rep:eve", base_url=server.url)
    assert httpx.post(url, headers={"Origin": "https://evil.example"}).status_code == 403
    assert httpx.post(url).status_code == 403   # neither Origin nor Referer
    assert httpx.get(url).status_code == 200
    with httpx.Client(base_url=server.url) as client:
        sign_in(client, services, server.url, "rep:eve")
        token = csrf_of(client.get(f"/desk/leads/{lead['id']}").text)
        act = f"/desk/leads/{lead['id']}/act"
        evil = client.post(act, data={"csrf": token, "a": "claim", "v": "1"}, headers={"Origin": "https://evil.example"})
        forged = client.post(act, data={"csrf": "guess", "a": "claim", "v": "1"}, headers={"Origin": server.url})
        assert evil.status_code == forged.status_code == 403
        assert "New: waiting to be claimed" in client.get(f"/desk/leads/{lead['id']}").text
        ok = client.post(act, data={"csrf": token, "a": "claim", "v": "1"}, headers={"Origin": server.url})
        assert ok.status_code == 303
        assert "Claimed" in client.get(f"/desk/leads/{lead['id']}").text


def test_a_lead_named_like_a_script_renders_as_text(desk_live: Live) -> None:
    server, services = desk_live
    lead = hand_off(server.url, name="<script>alert(1)</script>", company="<b>Bold</b> & Co")
    with httpx.Client(base_url=server.url) as client:
        sign_in(client, services, server.url, "sales_vp")
        for path in (f"/desk/leads/{lead['id']}", "/desk/leads", "/desk/leads?q=%3Cscript"):
            html = client.get(path).text
            assert "<script>alert(1)</script>" not in html and "<b>Bold</b>" not in html
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, (path, re.findall(r".{20}alert.{20}", html))


def test_search_filters_pages_and_csv(desk_live: Live) -> None:
    server, services = desk_live
    hand_off(server.url)
    hand_off(server.url, email="kim@initech.example", name="Kim Lee", company="Initech", external_id="hs-2")
    with httpx.Client(base_url=server.url) as client:
        sign_in(client, services, server.url, "sales_vp")
        found = client.get("/desk/leads", params={"q": "initech"}).text
        assert "Kim Lee" in found and "Jane Doe" not in found
        assert "Jane Doe" in client.get("/desk/leads", params={"q": "globex"}).text
        # The filters: state, team, rep, tier (both leads are Mid-Market's; Jane Doe went to Eve).
        with services.ctx.db.read() as session:
            jane = session.execute(select(Lead).where(col(Lead.name) == "Jane Doe")).scalars().one()
        assert (jane.team, jane.owner) == ("midmarket", "eve")

        def listed(**params: str) -> set[str]:
            page = client.get("/desk/leads", params=params).text
            return {name for name in ("Jane Doe", "Kim Lee") if name in page}

        assert listed(rep="eve") == {"Jane Doe"} and listed(team="midmarket") == {"Jane Doe", "Kim Lee"}
        assert listed(team="smb") == set() and listed(state="working") == set()
        assert listed(state=jane.state) == {"Jane Doe", "Kim Lee"} and "Jane Doe" in listed(tier=str(jane.tier))
        other_tiers = [t.key for t in services.ctx.agreement.sales.tiers if t.key != jane.tier]
        assert "Jane Doe" not in listed(tier=other_tiers[0])
        assert client.get("/desk/leads.csv", params={"rep": "eve"}).text.count("\n") == 2   # header + Jane Doe
        csv_text = client.get("/desk/leads.csv", params={"q": "kim@"}).text
        assert csv_text.splitlines()[0].startswith("id,name,company,email")
        assert len(csv_text.strip().splitlines()) == 2 and "Kim Lee" in csv_text
        risky = client.get("/desk/leads", params={"flag": "at_risk"}).text
        assert risky.index("Jane Doe") < risky.index("Kim Lee")   # the earlier deadline first
        assert "min left" in risky or "h left" in risky
        # The CSV of the at-risk view: the same leads in the same order (least time left first).
        risky_csv = client.get("/desk/leads.csv", params={"flag": "at_risk"}).text.splitlines()
        assert [line.split(",")[1] for line in risky_csv[1:]] == ["Jane Doe", "Kim Lee"]
        agreement = client.get("/desk/agreement").text
        version = services.ctx.agreement.version
        assert f'<strong id="version">{version}</strong>' in agreement
        assert "<code>slabot check</code>:" in agreement and "ok: " in agreement and f"version {version}" in agreement
        people = client.get("/desk/people").text
        assert "Eve Adams" in people and "available" in people
        # Capacity and away status: a rep away until a date says so, next to their weekly capacity.
        set_away(services.ctx, rep="fay", away=True, until=services.ctx.now() + timedelta(days=2))
        people = client.get("/desk/people").text
        fay = re.search(r"<tr><td>Fay Chen</td><td>(\d+)</td><td>\d+</td><td>([^<]+)</td></tr>", people)
        assert fay is not None and fay.group(2).startswith("away until ")
        assert int(fay.group(1)) == services.ctx.agreement.rep("fay").capacity_per_week   # type: ignore[union-attr]
    with services.ctx.db.read() as session:
        now = services.ctx.now()
        first, cursor = lead_page(session, LeadFilter(), now=now, after=None, limit=1)
        second, end = lead_page(session, LeadFilter(), now=now, after=cursor, limit=1)
    assert [lead.name for lead in first + second] == ["Kim Lee", "Jane Doe"] and end is None


def test_sessions_lapse_after_12_idle_hours(desk_live: Live) -> None:
    server, services = desk_live
    app: Any = server.server.config.app
    config = app.state.desk
    start = 1_800_000_000.0
    config.clock = lambda: start
    with httpx.Client(base_url=server.url) as client:
        sign_in(client, services, server.url, "sales_vp")
        config.clock = lambda: start + 11.9 * 3600
        assert client.get("/desk").status_code == 200   # renews the cookie
        config.clock = lambda: start + 11.9 * 3600 + 12.1 * 3600
        assert client.get("/desk").status_code == 401


def test_the_desk_refuses_to_start_without_a_secret_key() -> None:
    problems = start_problems(make_settings(slabot_desk=True))
    assert any("SLABOT_SECRET_KEY" in p for p in problems)
    assert not any("SLABOT_SECRET_KEY" in p for p in start_problems(make_settings(slabot_desk=True,
                                                                                slabot_secret_key="x" * 32)))


@pytest.mark.parametrize("path", ["/desk/static/desk.css", "/desk/static/desk.js"])
def test_static_files_are_served_by_the_app(desk_live: Live, path: str) -> None:
    server, _ = desk_live
    assert httpx.get(server.url + path).status_code == 200
    assert httpx.get(server.url + "/desk/static/..%2Fsession.py").status_code == 404


def test_cookies_are_secure_behind_an_https_public_url() -> None:
    from fastapi import Response

    from bot.desk.session import DeskConfig, start

    for public_url, secure in (("https://slabot.example.com", True), ("http://127.0.0.1:8000", False), (None, False)):
        response = Response()
        start(DeskConfig(secret=b"k" * 32, public_url=public_url), response, "sales_vp")
        cookie = response.headers["set-cookie"].lower()
        assert ("; secure" in cookie) is secure and "httponly" in cookie and "samesite=lax" in cookie
