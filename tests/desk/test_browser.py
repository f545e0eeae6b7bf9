"""The desk in a real browser: Debian's chromium driven by Selenium through chromium-driver (CI
installs both with apt-get). Each test keeps a screenshot of every page it visits (overview, leads,
at risk, lead, agreement, people, the sign-in confirm page and the refusals) as a test artifact:
under `$SLABOT_TEST_ARTIFACTS/desk-screenshots/TEST/` when that is set (CI's `.ci/run` sets it to
`ci-artifacts/` of the checkout it runs from, which outlives its throwaway clone), else under the
test's tmp dir (`pytest --basetemp DIR` keeps them).

Journeys: sign in through a one-time link, the overview's numbers against GET /api/v1/status,
claim and log a call by clicking and see the Slack card updated on the fake Slack, a rep refused
another team's lead, a used or expired link and a cross-site post refused, and a lead named
`<script>alert(1)</script>` shown as text.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from bot.http.app import create_app
from bot.services import Services
from bot.slack.transport import SlackTransport
from commands import desk
from sla.agreement import Agreement
from sla.clock import FixedClock
from storage.db import Database
from tests.conftest import T0, LiveServer
from tests.desk.helpers import AUTH, desk_services, hand_off, previous_value, status_value
from tests.e2e import slack_helpers as sh
from tests.fakes.slack_api import FakeSlack, SlackMessage

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
CHANNEL = "C0MID00001"   # the example agreement's Mid-Market channel: Jane Doe's card goes there

# Skipped on a developer's machine without the browser; CI (CI=true, which installs both) runs them
# always, so a missing browser there is a failure, not a skip.
_HAVE_BROWSER = bool(shutil.which(CHROMIUM) and shutil.which(DRIVER))
pytestmark = pytest.mark.skipif(not _HAVE_BROWSER and os.environ.get("CI") != "true",
                                reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
                                       "chromium-driver)")


class Desk:
    """The running app (with its outbox worker and Slack on the fake) and a browser on its desk."""

    def __init__(self, server: LiveServer, services: Services, fake: FakeSlack, browser: WebDriver,
                 shots: Path, app: Any) -> None:
        self.server, self.services, self.fake, self.browser, self.shots = server, services, fake, browser, shots
        self.app = app

    def open(self, path_or_url: str) -> None:
        self.browser.get(path_or_url if path_or_url.startswith("http") else self.server.url + path_or_url)

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.browser.save_screenshot(str(path))
        return path

    def text(self) -> str:
        return str(self.browser.find_element(By.TAG_NAME, "body").text)

    def wait(self, check: Callable[[WebDriver], Any], within: float = 10) -> Any:
        # A self-refreshing page swaps its figures while a check reads them: a stale element means
        # "read again", not a failure.
        return WebDriverWait(self.browser, within, poll_frequency=0.05,
                             ignored_exceptions=(StaleElementReferenceException,)).until(check)

    def link(self, key: str, next_path: str | None = None) -> str:
        return desk.signin_link(self.services.ctx, key=key, next_path=next_path, base_url=self.server.url)

    def sign_in(self, key: str, next_path: str | None = None) -> None:
        self.open(self.link(key, next_path))
        self.browser.find_element(By.ID, "signin").click()
        self.wait(lambda b: "/signin/" not in b.current_url)

    def press(self, label: str) -> None:
        """Click a card button by its label, as a person does, and wait for the page it leads to."""
        old = self.browser.find_element(By.TAG_NAME, "html")
        button = next(b for b in self.browser.find_elements(By.CSS_SELECTOR, "form button") if b.text == label)
        button.click()
        self.wait(lambda b: old.id != b.find_element(By.TAG_NAME, "html").id)


def eventually(check: Callable[[], Any], within: float = 10.0) -> Any:
    """Poll until `check()` is truthy: the worker delivers the card update after the click."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        time.sleep(0.02)


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1280,1600", "--no-first-run", "--disable-extensions"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack(ts_start=int(T0.timestamp())) as server:
        yield server


def screenshots(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """Where a test's screenshots go (see the module's doc)."""
    artifacts = os.environ.get("SLABOT_TEST_ARTIFACTS")
    folder = Path(artifacts) / "desk-screenshots" / request.node.name if artifacts else tmp_path / "screenshots"
    shutil.rmtree(folder, ignore_errors=True)   # only this run's pages
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def app_desk(db: Database, agreement: Agreement, clock: FixedClock, fake: FakeSlack, browser: WebDriver,
             tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Desk]:
    services = desk_services(db, agreement, clock, slack_bot_token=sh.BOT_TOKEN,
                             slack_signing_secret=sh.SIGNING_SECRET, slack_api_url=fake.base_url)
    app = create_app(services, run_worker=True)
    transport = services.transports["slack"]
    assert isinstance(transport, SlackTransport)
    transport.post_interval = 0.05   # these tests are about behaviour, not Slack's pacing
    shots = screenshots(request, tmp_path)
    with LiveServer(app) as server:
        yield Desk(server, services, fake, browser, shots, app)


def card(fake: FakeSlack, message: SlackMessage) -> SlackMessage:
    current = fake.message(message.channel, message.ts)
    assert current is not None
    return current


def test_sign_in_click_claim_and_log_call_and_the_slack_card_follows(app_desk: Desk) -> None:
    d = app_desk
    lead = hand_off(d.server.url)   # routed to Eve Adams; its card goes to the Mid-Market channel
    posted = eventually(lambda: d.fake.posts(CHANNEL))[0]

    link = d.link("rep:eve", next_path=f"/desk/leads/{lead['id']}")
    d.open(link)
    assert "Eve Adams" in d.browser.find_element(By.ID, "person").text
    d.shot("signin")
    d.browser.find_element(By.ID, "signin").click()
    d.wait(lambda b: b.current_url.endswith(f"/desk/leads/{lead['id']}"))
    assert d.browser.find_element(By.ID, "lead-status").text == "New: waiting to be claimed"
    d.shot("lead-before")

    d.press("Claim")
    assert "Claimed" in d.browser.find_element(By.ID, "lead-status").text
    claimed = eventually(lambda: (m := card(d.fake, posted)).edits >= 1 and m)
    assert "Claimed" in json.dumps(claimed.blocks)

    d.press("Log call")
    status = d.browser.find_element(By.ID, "lead-status").text
    assert status != "Claimed" and "Attempts" in d.text() and "1 of 6" in d.text()
    called = eventually(lambda: (m := card(d.fake, posted)).edits >= 2 and m)
    assert "1 of 6" in json.dumps(called.blocks)
    events = d.browser.find_element(By.ID, "events").text
    assert "Claimed" in events and "Eve Adams" in events
    d.shot("lead-after")

    for name, path in (("leads", "/desk/leads"), ("at-risk", "/desk/leads?flag=at_risk"),
                       ("agreement", "/desk/agreement"), ("people", "/desk/people")):
        d.open(path)
        assert d.browser.find_element(By.TAG_NAME, "h1").text
        d.shot(name)
    assert len(list(d.shots.glob("*.png"))) >= 7


def test_the_overview_shows_the_status_api_numbers(app_desk: Desk) -> None:
    d = app_desk
    hand_off(d.server.url)
    hand_off(d.server.url, email="kim@initech.example", name="Kim Lee", company="Initech", external_id="hs-2")
    d.sign_in("sales_vp")
    for query in ("", "?period=last"):
        d.open("/desk" + query)
        asof = d.browser.find_element(By.CSS_SELECTOR, "[data-as-of]")
        api = httpx.get(f"{d.server.url}/api/v1/status", headers=AUTH, params={
            "as_of": asof.get_attribute("data-as-of"), "scope": asof.get_attribute("data-scope")}).json()
        shown = d.browser.find_elements(By.CSS_SELECTOR, "[data-key][data-value]")
        assert len(shown) >= 15
        for element in shown:
            key = str(element.get_attribute("data-key"))
            assert json.loads(str(element.get_attribute("data-value"))) == status_value(api, key), key
        # Each figure's change: its previous value is the API's as of the previous period.
        compared = d.browser.find_element(By.CSS_SELECTOR, "[data-previous-as-of]")
        before = httpx.get(f"{d.server.url}/api/v1/status", headers=AUTH, params={
            "as_of": compared.get_attribute("data-previous-as-of"),
            "scope": asof.get_attribute("data-scope")}).json()
        changes = d.browser.find_elements(By.CSS_SELECTOR, "[data-change][data-previous]")
        assert {e.get_attribute("data-key") for e in shown} <= {c.get_attribute("data-change") for c in changes}
        for element in changes:
            key = str(element.get_attribute("data-change"))
            assert json.loads(str(element.get_attribute("data-previous"))) == previous_value(before, key), key
        d.shot("overview" + query.replace("?period=", "-"))
    d.open("/desk")
    workable = d.browser.find_element(By.CSS_SELECTOR, '[data-key="marketing.workable"]')
    assert workable.text.startswith("2 of ")
    assert "Changes are against October 2026" in d.text()
    assert d.browser.find_element(By.CSS_SELECTOR, '[data-change="marketing.workable"]').text == "▲ 2 from 0, better"
    chart = d.browser.find_element(By.CSS_SELECTOR, "svg.chart title")
    assert "Workable leads" in str(chart.get_attribute("textContent"))
    assert "2 workable leads so far" in str(d.browser.find_element(By.CSS_SELECTOR, "svg.chart desc")
                                           .get_attribute("textContent"))


def test_the_overview_refreshes_itself_while_open(app_desk: Desk) -> None:
    d = app_desk
    d.app.state.desk.refresh_seconds = 0.2   # 30 s in production
    hand_off(d.server.url)
    d.sign_in("sales_vp")
    figure = '[data-key="marketing.workable"]'
    d.wait(lambda b: b.find_element(By.CSS_SELECTOR, figure).text.startswith("1 of "))
    d.browser.execute_script("window.sameDocument = true")   # gone if the page were reloaded
    hand_off(d.server.url, email="kim@initech.example", name="Kim Lee", company="Initech", external_id="hs-2")
    d.wait(lambda b: b.find_element(By.CSS_SELECTOR, figure).text.startswith("2 of "))
    # The change from the previous period follows (October had none).
    d.wait(lambda b: b.find_element(By.CSS_SELECTOR, '[data-change="marketing.workable"]').text
           == "▲ 2 from 0, better")
    assert d.browser.execute_script("return window.sameDocument") is True
    assert d.browser.find_element(By.ID, "who").text.startswith("Sam Ortiz")


def test_a_rep_is_refused_another_teams_lead(app_desk: Desk) -> None:
    d = app_desk
    lead = hand_off(d.server.url)   # Mid-Market
    d.sign_in("rep:ana")             # SMB
    d.open(f"/desk/leads/{lead['id']}")
    assert d.browser.find_element(By.TAG_NAME, "h1").text == "Not available"
    assert "Jane Doe" not in d.browser.page_source and "Globex" not in d.browser.page_source
    d.shot("refused")
    d.open("/desk/leads")
    assert "Jane Doe" not in d.text()


def test_used_or_expired_links_and_cross_site_posts_are_refused(app_desk: Desk, clock: FixedClock) -> None:
    d = app_desk
    lead = hand_off(d.server.url)
    used = d.link("rep:eve")
    d.open(used)
    d.browser.find_element(By.ID, "signin").click()
    d.wait(lambda b: b.current_url.endswith("/desk"))
    d.browser.delete_all_cookies()
    d.open(used)
    assert "does not work any more" in d.text() and not d.browser.find_elements(By.ID, "signin")
    d.shot("used-link")

    late = d.link("rep:eve")
    d.open(late)   # the confirm page is shown while the link is fresh ...
    clock.advance(timedelta(minutes=11))
    d.browser.find_element(By.ID, "signin").click()   # ... but pressing it 11 minutes later starts nothing
    d.wait(lambda b: "does not work any more" in b.find_element(By.TAG_NAME, "body").text)
    d.open("/desk")
    assert "Please sign in" in d.text()

    # Signed in, then a page of another origin posts to the desk: refused, nothing recorded.
    d.sign_in("rep:eve")
    target = f"{d.server.url}/desk/leads/{lead['id']}/act"
    evil = _serve_once(f"""<!doctype html><form id="f" method="post" action="{target}">
        <input name="a" value="claim"><input name="csrf" value="guessed"></form>
        <script>document.getElementById("f").submit()</script>""")
    d.open(evil)
    d.wait(lambda b: "Refused" in b.find_element(By.TAG_NAME, "body").text)
    d.shot("cross-site")
    d.open(f"/desk/leads/{lead['id']}")
    assert d.browser.find_element(By.ID, "lead-status").text == "New: waiting to be claimed"


def test_a_lead_named_like_a_script_renders_as_text(app_desk: Desk) -> None:
    d = app_desk
    name = "<script>alert(1)</script>"
    lead = hand_off(d.server.url, name=name)
    d.sign_in("sales_vp", next_path=f"/desk/leads/{lead['id']}")
    assert d.browser.find_element(By.ID, "lead-name").text == name
    with pytest.raises(NoAlertPresentException):
        d.browser.switch_to.alert.text   # noqa: B018 - reading it is what raises when there is none
    d.open("/desk/leads")
    assert name in d.text()
    with pytest.raises(NoAlertPresentException):
        d.browser.switch_to.alert.text   # noqa: B018
    d.shot("script-name")


def _serve_once(html: str) -> str:
    """A page on another origin (another port of 127.0.0.1), served from a background thread."""
    body = html.encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/"
