"""HubSpot's CRM API, as the webhook needs it: batch reads of contacts and deals, and the
contacts associated with deals, within a time budget and HubSpot's rate limits.

The webhook enriches inline, before anything is stored: HubSpot waits 5 seconds for an answer,
so every call of one delivery shares a budget of BUDGET_SECONDS (rate-limit waits, 429s honoured
after their Retry-After, 5xx retried with backoff). When the budget cannot cover it, or HubSpot's
API is down or refuses the token, `HubSpotUnavailable` is raised: the webhook then answers 503
with nothing stored, and HubSpot delivers the same events again later (it retries a 5xx up to
10 times over about a day). A lead is never stored half-enriched and never lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from prometheus_client import Counter

from bot.services import Services
from commands import crm
from commands.intake import Handoff, handoff_many

log = logging.getLogger("slabot.hubspot")

#: Time all HubSpot calls of one webhook delivery may take (HubSpot times out at 5 s).
BUDGET_SECONDS = 3.0
#: Ids per batch read: HubSpot's documented maximum.
BATCH_SIZE = 100
#: HubSpot's burst limit for private apps on the lowest tiers: 100 requests per rolling 10 seconds
#: (higher tiers allow more; a 429 from a shared limit is honoured all the same).
CALLS_PER_WINDOW = 100
WINDOW_SECONDS = 10.0
#: Suggested to HubSpot in the 503's Retry-After when its API was down.
RETRY_LATER_SECONDS = 60

DEAL_PROPERTIES = ("amount", "dealstage", "pipeline")


class HubSpotUnavailable(Exception):
    """HubSpot's API could not answer within the budget; nothing of the delivery was stored."""

    def __init__(self, reason: str, retry_after: float = RETRY_LATER_SECONDS) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class RateWindow:
    """A rolling window of call times: how long the next call must wait to stay under the limit."""

    def __init__(self, limit: int = CALLS_PER_WINDOW, window: float = WINDOW_SECONDS) -> None:
        self.limit, self.window = limit, window
        self.calls: deque[float] = deque()

    def delay(self, now: float) -> float:
        while self.calls and self.calls[0] <= now - self.window:
            self.calls.popleft()
        return 0.0 if len(self.calls) < self.limit else self.calls[0] + self.window - now

    def record(self, now: float) -> None:
        self.calls.append(now)


def _retry_after(response: httpx.Response, default: float) -> float:
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return default


class HubSpotClient:
    """The few CRM v3/v4 calls slabot makes, with a private app token."""

    def __init__(self, *, token: str, base_url: str, budget: float = BUDGET_SECONDS,
                 window: RateWindow | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.token, self.base_url, self.budget = token, base_url.rstrip("/"), budget
        self.window = window or RateWindow()
        self.sleep, self.monotonic = sleep, monotonic
        self.on_call: Callable[[str], None] = lambda _outcome: None

    def deadline(self) -> float:
        return self.monotonic() + self.budget

    async def _wait(self, seconds: float, deadline: float, why: str) -> None:
        if self.monotonic() + seconds > deadline:
            raise HubSpotUnavailable(f"{why}: waiting {seconds:.1f} s would pass the webhook's time budget",
                                     retry_after=max(1.0, seconds))
        if seconds > 0:
            await self.sleep(seconds)

    async def _post(self, http: httpx.AsyncClient, path: str, body: dict[str, Any],
                    deadline: float) -> dict[str, Any]:
        backoff = 0.25
        while True:
            await self._wait(self.window.delay(self.monotonic()), deadline, "HubSpot's rate limit")
            self.window.record(self.monotonic())
            left = deadline - self.monotonic()
            try:
                response = await http.post(path, json=body, timeout=max(0.1, left))
            except httpx.HTTPError as exc:
                self.on_call("error")
                log.warning("HubSpot API %s: %s", path, type(exc).__name__)
                await self._wait(backoff, deadline, f"HubSpot's API unreachable ({type(exc).__name__})")
                backoff *= 2
                continue
            if response.status_code == 429:
                self.on_call("rate_limited")
                # The 10-second window: without a Retry-After, wait out a good part of it.
                await self._wait(_retry_after(response, 1.0), deadline, "HubSpot answered 429")
                continue
            if response.status_code >= 500:
                self.on_call("error")
                await self._wait(backoff, deadline, f"HubSpot's API answered {response.status_code}")
                backoff *= 2
                continue
            if response.status_code not in (200, 207):
                self.on_call("error")
                # 401/403: a wrong token or a missing scope. Not retried here, but HubSpot will send
                # the events again, so fixing the token loses nothing.
                raise HubSpotUnavailable(f"HubSpot's API refused {path} with {response.status_code} "
                                         "(check HUBSPOT_ACCESS_TOKEN and its scopes)")
            self.on_call("ok")
            payload = response.json()
            return payload if isinstance(payload, dict) else {}

    def _http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url,
                                 headers={"Authorization": f"Bearer {self.token}"})

    async def read_objects(self, object_type: str, ids: Iterable[str], properties: Iterable[str],
                           deadline: float) -> dict[str, dict[str, Any]]:
        """id -> properties of each object HubSpot has; ids it does not know are left out."""
        unique = list(dict.fromkeys(ids))
        props = sorted(set(properties))
        found: dict[str, dict[str, Any]] = {}
        async with self._http() as http:
            for start in range(0, len(unique), BATCH_SIZE):
                chunk = unique[start:start + BATCH_SIZE]
                payload = await self._post(http, f"/crm/v3/objects/{object_type}/batch/read",
                                           {"properties": props, "inputs": [{"id": i} for i in chunk]},
                                           deadline)
                for result in payload.get("results") or []:
                    if isinstance(result, dict) and result.get("id") is not None:
                        found[str(result["id"])] = dict(result.get("properties") or {})
        return found

    async def associated(self, from_type: str, to_type: str, ids: Iterable[str],
                         deadline: float) -> dict[str, list[str]]:
        """id -> the ids of the `to_type` records associated with it (v4 associations, batched)."""
        unique = list(dict.fromkeys(ids))
        found: dict[str, list[str]] = {}
        async with self._http() as http:
            for start in range(0, len(unique), BATCH_SIZE):
                chunk = unique[start:start + BATCH_SIZE]
                payload = await self._post(http, f"/crm/v4/associations/{from_type}/{to_type}/batch/read",
                                           {"inputs": [{"id": i} for i in chunk]}, deadline)
                for result in payload.get("results") or []:
                    source = str((result.get("from") or {}).get("id", ""))
                    targets = [str(t["toObjectId"]) for t in result.get("to") or [] if "toObjectId" in t]
                    found.setdefault(source, []).extend(targets)
        return found


class HubSpotSync:
    """One per app: the client (and its rate window, shared by every delivery) and the counters."""

    def __init__(self, svc: Services, client: HubSpotClient) -> None:
        self.svc = svc
        self.client = client
        registry = svc.telemetry.registry
        self.unknown = Counter("slabot_hubspot_unknown_contacts_total",
                               "HubSpot events acknowledged without effect because the contact is unknown "
                               "(contact: HubSpot has no such contact; deal: no associated contact is a lead here)",
                               ["event"], registry=registry)
        self.api_calls = Counter("slabot_hubspot_api_calls_total", "Calls to HubSpot's CRM API by outcome "
                                 "(ok, rate_limited, error)", ["outcome"], registry=registry)
        self.outcomes = Counter("slabot_hubspot_outcomes_total", "Deal events recorded as lead outcomes",
                                ["type"], registry=registry)
        self.client.on_call = lambda outcome: self.api_calls.labels(outcome).inc()

    def use(self, client: HubSpotClient) -> None:
        """Swap the client (tests inject a clock and a sleep)."""
        client.on_call = self.client.on_call
        self.client = client

    async def deliver(self, events: list[Mapping[str, Any]], handoffs: list[Handoff]) -> dict[str, Any]:
        """Fetch what the events need from HubSpot, then store leads and record outcomes.
        Raises HubSpotUnavailable (nothing stored) when HubSpot cannot answer in time."""
        ctx = self.svc.ctx
        config = ctx.agreement.integrations.hubspot
        deadline = self.client.deadline()
        contact_ids = [cid for h in handoffs if (cid := crm.contact_id_of(h.lead)) is not None]
        deals = crm.deal_events(config, events)
        deal_ids = [d.deal_id for d in deals]
        contacts = (await self.client.read_objects("contacts", contact_ids, config.property_map().values(),
                                                   deadline) if contact_ids else {})
        deal_props = (await self.client.read_objects("deals", deal_ids, DEAL_PROPERTIES, deadline)
                      if deal_ids else {})
        contacts_of = (await self.client.associated("deals", "contacts", deal_ids, deadline)
                       if deal_ids else {})
        portals = {str(e.get("objectId")): e.get("portalId") for e in events
                   if str(e.get("subscriptionType", "")).startswith("contact.")}
        enriched, unknown = [], 0
        for item in handoffs:
            cid = crm.contact_id_of(item.lead)
            if cid is None or cid not in contacts:
                unknown += 1
                continue
            portal = portals.get(cid)
            url = f"https://app.hubspot.com/contacts/{portal}/record/0-1/{cid}" if isinstance(portal, int) else None
            lead_in, dropped = crm.lead_from_contact(config, item.lead, contacts[cid], crm_url=url)
            if dropped:
                log.warning("HubSpot contact %s: left out %s (values that do not fit the lead's fields)",
                            cid, ", ".join(dropped))
            enriched.append(replace(item, lead=lead_in))
        if unknown:
            self.unknown.labels("contact").inc(unknown)
        results = await run_in_threadpool(handoff_many, ctx, enriched) if enriched else []
        report = await run_in_threadpool(crm.record_deal_outcomes, ctx, deals, deal_props, contacts_of) \
            if deals else crm.OutcomeReport()
        if report.unknown_contacts:
            self.unknown.labels("deal").inc(report.unknown_contacts)
        for kind, count in report.by_type.items():
            self.outcomes.labels(kind).inc(count)
        accepted = sum(not r.duplicate for r in results)
        if accepted or report.recorded:
            self.svc.wake_worker()
        return {"accepted": accepted, "events": len(events), "outcomes": report.recorded,
                "unknown_contacts": unknown + report.unknown_contacts}


def sync_for(app: FastAPI, svc: Services) -> HubSpotSync | None:
    """The app's HubSpotSync, made on first use; None without HUBSPOT_ACCESS_TOKEN."""
    token = svc.settings.hubspot_access_token
    if token is None:
        return None
    sync: HubSpotSync | None = getattr(app.state, "hubspot_sync", None)
    if sync is None:
        sync = HubSpotSync(svc, HubSpotClient(token=token.get_secret_value(), base_url=svc.settings.hubspot_api_url))
        app.state.hubspot_sync = sync
    return sync
