"""Shared parts of the desk tests: a live app with a signing key, leads handed off over the API,
sign-in through a one-time link, and the overview's figures read back from the page."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bot.http.app import create_app
from bot.services import Services, build_services
from commands import desk
from sla.agreement import Agreement
from sla.clock import FixedClock
from storage.db import Database
from tests.conftest import EXAMPLE_LEAD, INTAKE_TOKEN, LiveServer, make_settings

SECRET_KEY = "desk-test-secret-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {INTAKE_TOKEN}"}


def desk_services(db: Database, agreement: Agreement, clock: FixedClock, **settings: Any) -> Services:
    values: dict[str, Any] = {"database_url": db.url, "slabot_secret_key": SECRET_KEY, **settings}
    return build_services(make_settings(**values), clock=clock, agreement=agreement, db=db)


@pytest.fixture
def desk_live(db: Database, agreement: Agreement, clock: FixedClock) -> Iterator[tuple[LiveServer, Services]]:
    services = desk_services(db, agreement, clock)
    with LiveServer(create_app(services)) as server:
        yield server, services


def lead_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = copy.deepcopy(json.loads(EXAMPLE_LEAD.read_text()))
    name = changes.pop("name", None)
    if name is not None:   # the intake's name is first_name + last_name
        body["first_name"], body["last_name"] = name, None
    body.update(changes)
    return body


def hand_off(base_url: str, **changes: Any) -> dict[str, Any]:
    response = httpx.post(f"{base_url}/api/v1/leads", json=lead_body(**changes), headers=AUTH)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def sign_in(client: httpx.Client, services: Services, base_url: str, key: str, next_path: str | None = None) -> None:
    """Through a one-time link, as a person does: GET the confirm page, POST its form."""
    url = desk.signin_link(services.ctx, key=key, next_path=next_path, base_url=base_url)
    page = client.get(url)
    assert page.status_code == 200 and "Sign in" in page.text
    done = client.post(url, headers={"Origin": base_url})
    assert done.status_code == 303, done.text


def figures(html: str) -> dict[str, Any]:
    """Every figure of the overview: data-key -> the raw value it shows (JSON)."""
    found = re.findall(r'data-key="([^"]+)" data-value="([^"]*)"', html)
    return {key: json.loads(value.replace("&#34;", '"').replace("&quot;", '"')) for key, value in found}


def changes(html: str) -> dict[str, tuple[Any, str]]:
    """Every change the overview shows: figure key -> (its previous value (JSON), the words shown)."""
    found = re.findall(r'data-change="([^"]+)" data-previous="([^"]*)">([^<]*)<', html)
    return {key: (json.loads(value.replace("&#34;", '"').replace("&quot;", '"')), text)
            for key, value, text in found}


def previous_value(status: dict[str, Any], key: str) -> Any:
    """A figure's value in a status JSON; a breakdown's missing key (a source, a reason, a rep) is 0."""
    value: Any = status
    for part in key.split("."):
        if part not in value:
            return 0
        value = value[part]
    return value


def status_value(status: dict[str, Any], key: str) -> Any:
    value: Any = status
    for part in key.split("."):
        value = value[part]
    return value


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)
