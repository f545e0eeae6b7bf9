"""HubSpot with HUBSPOT_ACCESS_TOKEN: contact events enriched from the CRM API, deal events as
outcomes. Real HTTP both ways: signed webhooks into the app, the app's calls into a fake HubSpot
API on 127.0.0.1. Time spent waiting (rate limits, backoff) goes through an injected clock."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import select

from bot.http.api import hubspot_signature
from bot.http.app import create_app
from bot.hubspot import BUDGET_SECONDS, HubSpotClient, RateWindow, sync_for
from bot.services import Services, build_services
from sla.agreement import Agreement, AgreementError, parse_agreement
from storage.db import Database
from storage.tables import InboundReceipt, Lead, LeadEvent
from tests.conftest import EXAMPLE_AGREEMENT, LiveServer, make_settings
from tests.fakes.hubspot_api import FakeHubSpot

SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"
PORTAL = 62515

#: The example agreement needs activities, a buying stage and two BANT facts to call a lead
#: workable; HubSpot has no standard property for those, so this portal keeps them in custom ones.
PORTAL_MAPPING = {"stage": "buying_stage", "activities": "slabot_activities", "need": "slabot_need",
                  "budget": "slabot_budget"}


def agreement_with(properties: dict[str, Any], **hubspot: Any) -> Agreement:
    data = yaml.safe_load(EXAMPLE_AGREEMENT.read_text())
    data["integrations"] = {"hubspot": {"properties": properties, **hubspot}}
    return parse_agreement(yaml.safe_dump(data), "agreement.yaml")


def dana(**extra: str) -> dict[str, str]:
    """A contact the example agreement calls workable (SMB persona, demo requested, need and budget)."""
    return {"email": "Dana.Kim@Example.com", "firstname": "Dana", "lastname": "Kim", "jobtitle": "VP Operations",
            "company": "Kim Logistics", "numberofemployees": "250", "country": "United States",
            "phone": "+1 555 0100", "hs_analytics_source": "ORGANIC_SEARCH", "lifecyclestage": "marketingqualifiedlead",
            "hs_analytics_num_page_views": "12", "buying_stage": "evaluation",
            "slabot_activities": "demo_requested;pricing_page_viewed", "slabot_need": "yes",
            "slabot_budget": "40000", **extra}


class FakeTime:
    """The client's monotonic clock and sleep: a sleep advances the clock and is remembered."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class Hub:
    server: LiveServer
    services: Services
    api: FakeHubSpot
    time: FakeTime
    app: Any
    next_event: list[int] = field(default_factory=lambda: [1000])

    def event(self, kind: str, object_id: int, **extra: Any) -> dict[str, Any]:
        self.next_event[0] += 1
        return {"eventId": self.next_event[0], "subscriptionId": 12345, "portalId": PORTAL, "appId": 54321,
                "occurredAt": 1_795_000_000_000 + self.next_event[0], "subscriptionType": kind,
                "attemptNumber": 0, "objectId": object_id, "changeSource": "CRM", **extra}

    def post(self, events: list[dict[str, Any]] | bytes) -> httpx.Response:
        body = events if isinstance(events, bytes) else json.dumps(events).encode()
        ts = str(int(time.time() * 1000))
        url = f"{self.server.url}/webhooks/hubspot"
        return httpx.post(url, content=body, headers={
            "X-HubSpot-Signature-v3": hubspot_signature(SECRET, "POST", url, body, ts),
            "X-HubSpot-Request-Timestamp": ts, "Content-Type": "application/json"},
            timeout=60)   # 150 events on a loaded machine can take longer than httpx's default 5 s

    def leads(self) -> list[Lead]:
        with self.services.ctx.db.read() as session:
            return list(session.execute(select(Lead).order_by(Lead.id)).scalars())  # type: ignore[arg-type]

    def lead(self, contact_id: int) -> Lead:
        found = [lead for lead in self.leads() if lead.external_id == f"hubspot-contact-{contact_id}"]
        assert len(found) == 1, [lead.external_id for lead in self.leads()]
        return found[0]

    def metric(self, name: str, **labels: str) -> float:
        """The sum of a counter's samples with these labels, as /metrics shows it."""
        text = httpx.get(f"{self.server.url}/metrics").text
        return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
                   if sample.name == name and labels.items() <= sample.labels.items())


def serve(db: Database, clock: Any, agreement: Agreement, api: FakeHubSpot) -> Iterator[Hub]:
    settings = make_settings(database_url=db.url, hubspot_client_secret=SECRET, hubspot_access_token=TOKEN,
                             hubspot_api_url=api.root_url)
    services = build_services(settings, clock=clock, agreement=agreement, db=db)
    app = create_app(services)
    fake_time = FakeTime()
    sync = sync_for(app, services)
    assert sync is not None
    sync.use(HubSpotClient(token=TOKEN, base_url=api.root_url, sleep=fake_time.sleep,
                           monotonic=fake_time.monotonic))
    with LiveServer(app) as server:
        yield Hub(server, services, api, fake_time, app)


@pytest.fixture
def api() -> Iterator[FakeHubSpot]:
    with FakeHubSpot(token=TOKEN) as fake:
        yield fake


@pytest.fixture
def hub(any_db: Database, clock: Any, api: FakeHubSpot) -> Iterator[Hub]:
    yield from serve(any_db, clock, agreement_with(PORTAL_MAPPING), api)


def test_a_contact_event_becomes_an_enriched_lead_that_qualifies_and_routes(hub: Hub) -> None:
    hub.api.contacts["501"] = dana()
    response = hub.post([hub.event("contact.creation", 501)])
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 1, "events": 1, "outcomes": 0, "unknown_contacts": 0}

    lead = hub.lead(501)
    assert (lead.email, lead.name, lead.title, lead.company, lead.employees, lead.source) == (
        "dana.kim@example.com", "Dana Kim", "VP Operations", "Kim Logistics", 250, "ORGANIC_SEARCH")
    assert lead.payload["country"] == "United States" and lead.payload["phone"] == "+1 555 0100"
    assert lead.payload["stage"] == "evaluation" and lead.payload["page_visits"] == 12
    assert [a["type"] for a in lead.payload["activities"]] == ["demo_requested", "pricing_page_viewed"]
    assert lead.payload["bant"] == {"need": "yes", "budget": "40000"}
    assert lead.crm_url == f"https://app.hubspot.com/contacts/{PORTAL}/record/0-1/501"
    # Qualified on those facts (demo 30 + pricing 10 points) and routed to the SMB team's rotation.
    assert lead.workable and lead.score == 40 and lead.state == "routed"
    assert lead.team == "smb" and lead.owner in {"ana", "ben", "cho"} and lead.first_touch_due is not None

    (call,) = hub.api.calls
    assert call.path == "/crm/v3/objects/contacts/batch/read"
    assert call.authorization == f"Bearer {TOKEN}"
    assert call.body["inputs"] == [{"id": "501"}]
    assert {"email", "firstname", "numberofemployees", "hs_analytics_source", "buying_stage"} <= set(
        call.body["properties"])


def test_a_delivery_of_50_events_is_one_batch_read_and_larger_ones_go_by_100(hub: Hub) -> None:
    for n in range(1, 131):
        hub.api.contacts[str(n)] = dana(email=f"lead{n}@example.com")
    response = hub.post([hub.event("contact.creation", n) for n in range(1, 51)])
    assert response.status_code == 200 and response.json()["accepted"] == 50
    (call,) = hub.api.calls
    assert len(call.body["inputs"]) == 50
    assert len(hub.leads()) == 50 and all(lead.email for lead in hub.leads())

    hub.api.reset_calls()
    response = hub.post([hub.event("contact.creation", n) for n in range(51, 131)]
                        + [hub.event("contact.creation", n) for n in range(1, 31)])   # 30 seen before
    assert response.status_code == 200 and response.json()["accepted"] == 80
    assert [len(c.body["inputs"]) for c in hub.api.calls] == [100, 10]


def test_a_429_is_honoured_for_its_retry_after(hub: Hub) -> None:
    hub.api.contacts["501"] = dana()
    hub.api.fail_next(429, retry_after=2)
    response = hub.post([hub.event("contact.creation", 501)])
    assert response.status_code == 200, response.text
    assert [c.status for c in hub.api.calls] == [429, 200] and len(hub.api.rejected) == 1
    assert hub.time.sleeps == [2.0]
    assert hub.lead(501).email == "dana.kim@example.com"
    assert hub.metric("slabot_hubspot_api_calls_total", outcome="rate_limited") == 1
    assert hub.metric("slabot_hubspot_api_calls_total", outcome="ok") == 1


def test_calls_stay_under_the_burst_limit_of_the_rolling_window(hub: Hub) -> None:
    # One call per 10-second window (HubSpot's is 100), and a budget that can wait it out.
    sync = sync_for(hub.app, hub.services)
    assert sync is not None
    sync.use(HubSpotClient(token=TOKEN, base_url=hub.api.root_url, budget=30, window=RateWindow(1, 10.0),
                           sleep=hub.time.sleep, monotonic=hub.time.monotonic))
    for n in range(1, 151):
        hub.api.contacts[str(n)] = dana(email=f"lead{n}@example.com")
    response = hub.post([hub.event("contact.creation", n) for n in range(1, 151)])
    assert response.status_code == 200 and response.json()["accepted"] == 150
    assert [len(c.body["inputs"]) for c in hub.api.calls] == [100, 50] and hub.api.rejected == []
    assert hub.time.sleeps == [10.0]   # the second call waited for the window, not for a 429


def test_a_retry_after_beyond_the_budget_is_a_503_and_hubspot_retries_later(hub: Hub) -> None:
    hub.api.contacts["501"] = dana()
    hub.api.fail_next(429, retry_after=9)
    events = [hub.event("contact.creation", 501)]
    response = hub.post(events)
    assert response.status_code == 503 and response.headers["retry-after"] == "9"
    assert hub.time.sleeps == [] and hub.leads() == []
    retry = hub.post(events)   # HubSpot's retry of the same events
    assert retry.status_code == 200 and hub.lead(501).workable


def test_hubspot_down_loses_nothing_the_webhook_answers_503_and_takes_the_retry(hub: Hub) -> None:
    hub.api.contacts["501"] = dana()
    hub.api.down = True
    body = json.dumps([hub.event("contact.creation", 501)]).encode()
    response = hub.post(body)
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) >= 1
    # Retried with growing backoff while the budget lasted, then given up within it.
    assert hub.time.sleeps[:3] == [0.25, 0.5, 1.0] and sum(hub.time.sleeps) <= BUDGET_SECONDS
    assert len(hub.api.calls) == len(hub.time.sleeps) + 1
    with hub.services.ctx.db.read() as session:   # no lead and no receipt: the retry is not a duplicate
        assert session.execute(select(InboundReceipt)).first() is None
    assert hub.leads() == []

    hub.api.down = False
    retry = hub.post(body)
    assert retry.status_code == 200 and retry.json()["accepted"] == 1
    assert hub.lead(501).company == "Kim Logistics"
    again = hub.post(body)   # and a further retry changes nothing
    assert again.status_code == 200 and again.json()["accepted"] == 0 and len(hub.leads()) == 1


def test_a_refused_token_is_a_503_not_a_lead_without_facts(hub: Hub) -> None:
    hub.api.contacts["501"] = dana()
    hub.api.token = "another-token"
    response = hub.post([hub.event("contact.creation", 501)])
    assert response.status_code == 503 and "HUBSPOT_ACCESS_TOKEN" in response.json()["detail"]
    assert hub.leads() == []


def test_an_unknown_contact_is_acknowledged_and_counted(hub: Hub) -> None:
    hub.api.contacts["501"] = dana()
    response = hub.post([hub.event("contact.creation", 501), hub.event("contact.creation", 999)])
    assert response.status_code == 200
    assert response.json() == {"accepted": 1, "events": 2, "outcomes": 0, "unknown_contacts": 1}
    assert [lead.external_id for lead in hub.leads()] == ["hubspot-contact-501"]
    assert hub.metric("slabot_hubspot_unknown_contacts_total", event="contact") == 1


def deal_events(hub: Hub, lead_id: int) -> list[LeadEvent]:
    with hub.services.ctx.db.read() as session:
        return list(session.execute(select(LeadEvent).where(LeadEvent.lead_id == lead_id)
                                    .where(LeadEvent.actor == "crm")).scalars())


def test_deal_events_become_outcomes_of_the_associated_lead(hub: Hub) -> None:
    hub.api.contacts.update({"501": dana(), "502": dana(email="lee@example.com", firstname="Lee")})
    assert hub.post([hub.event("contact.creation", 501), hub.event("contact.creation", 502)]).json()["accepted"] == 2
    hub.api.deals.update({"7001": {"amount": "24000", "dealstage": "appointmentscheduled"},
                          "7002": {"amount": "9000", "dealstage": "appointmentscheduled"}})
    hub.api.deal_contacts.update({"7001": ["501"], "7002": ["502"]})
    hub.api.reset_calls()

    created = hub.post([hub.event("deal.creation", 7001), hub.event("deal.creation", 7002)])
    assert created.status_code == 200 and created.json()["outcomes"] == 2
    assert [c.path for c in hub.api.calls] == ["/crm/v3/objects/deals/batch/read",
                                               "/crm/v4/associations/deals/contacts/batch/read"]
    won_lead = hub.lead(501)
    assert won_lead.state == "qualified" and won_lead.opportunity_at is not None
    assert won_lead.opportunity_amount == 24000

    hub.api.deals["7001"]["amount"] = "25500"   # the amount as it stands when the deal is won
    hub.api.deals["7002"]["dealstage"] = "closedlost"
    closed = hub.post([hub.event("deal.propertyChange", 7001, propertyName="dealstage", propertyValue="closedwon"),
                       hub.event("deal.propertyChange", 7002, propertyName="dealstage", propertyValue="closedlost"),
                       hub.event("deal.propertyChange", 7002, propertyName="amount", propertyValue="1")])
    assert closed.status_code == 200 and closed.json()["outcomes"] == 2
    won, lost = hub.lead(501), hub.lead(502)
    assert won.state == "won" and won.bookings == 25500 and won.won_at is not None
    assert lost.state == "lost" and lost.lost_at is not None and lost.bookings is None
    assert [(e.type, e.data["amount"]) for e in deal_events(hub, won.id or 0)] == [
        ("opportunity_created", 24000), ("won", 25500)]
    assert deal_events(hub, won.id or 0)[-1].data["crm_url"] == \
        f"https://app.hubspot.com/contacts/{PORTAL}/record/0-3/7001"
    assert hub.metric("slabot_hubspot_outcomes_total", type="won") == 1


def test_a_deal_of_an_unknown_contact_is_acknowledged_and_counted(hub: Hub) -> None:
    hub.api.deals["7003"] = {"amount": "100", "dealstage": "closedwon"}
    hub.api.deal_contacts["7003"] = ["888"]   # a contact that never became a lead here
    response = hub.post([hub.event("deal.propertyChange", 7003, propertyName="dealstage", propertyValue="closedwon"),
                         hub.event("deal.creation", 7004)])   # a deal with no contact at all
    assert response.status_code == 200
    assert response.json()["outcomes"] == 0 and response.json()["unknown_contacts"] == 2
    assert hub.metric("slabot_hubspot_unknown_contacts_total", event="deal") == 2


def test_the_agreement_decides_which_property_fills_a_field(db: Database, clock: Any, api: FakeHubSpot) -> None:
    agreement = agreement_with({**PORTAL_MAPPING, "company": "legal_name", "source": "lead_channel",
                                "title": None}, won_stages=["closedwon", "signed"])
    for hub in serve(db, clock, agreement, api):
        api.contacts["501"] = dana(legal_name="Kim Logistics GmbH", lead_channel="webinar")
        assert hub.post([hub.event("contact.creation", 501)]).status_code == 200
        lead = hub.lead(501)
        assert (lead.company, lead.source, lead.title) == ("Kim Logistics GmbH", "webinar", None)
        assert lead.value == 900   # the example's webinar segment: the mapped source is what qualifies
        (call,) = api.calls
        assert "legal_name" in call.body["properties"] and "jobtitle" not in call.body["properties"]
        api.deals["7001"] = {"amount": "5000", "dealstage": "signed"}
        api.deal_contacts["7001"] = ["501"]
        response = hub.post([hub.event("deal.propertyChange", 7001, propertyName="dealstage", propertyValue="signed")])
        assert response.json()["outcomes"] == 1   # "signed" is a won stage in this agreement
        assert hub.lead(501).state == "won" and hub.lead(501).bookings == 5000


def test_a_value_that_does_not_fit_its_field_is_left_out_not_the_lead(hub: Hub) -> None:
    hub.api.contacts["501"] = dana(email="not an address", numberofemployees="lots")
    assert hub.post([hub.event("contact.creation", 501)]).status_code == 200
    lead = hub.lead(501)
    assert lead.email is None and lead.employees is None and lead.company == "Kim Logistics"


def test_slabot_check_names_an_unknown_mapped_field() -> None:
    with pytest.raises(AgreementError) as caught:
        agreement_with({"employes": "numberofemployees"})
    assert "integrations.hubspot.properties: unknown lead field 'employes'" in str(caught.value)
    with pytest.raises(AgreementError) as caught:
        agreement_with({"company": "Company Name"})   # a label, not a property's internal name
    assert "integrations.hubspot.properties.company" in str(caught.value)
