"""Issue 10 item 8 (delivery part): /metrics lets an operator see delivery fall behind: deliveries
counted by platform and outcome, outbox rows pending/sending/dead and overdue SLA steps as gauges
read from the database at scrape time. `slabot serve` (API and outbox worker in one process)
against the fake Slack."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.fakes.slack_api import FakeSlack
from tests.faults.conftest import make_stack
from tests.faults.harness import INTAKE_TOKEN, card_posts, lead_body, wait_for


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus' text format (None when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.fullmatch(rf"{re.escape(name)}(?:\{{(.*)\}})? (\S+)", line)
        if match and ",".join(sorted((match.group(1) or "").split(","))).strip(",") == wanted:
            return float(match.group(2))
    return None


@pytest.mark.slow
def test_metrics_count_deliveries_and_show_the_backlog(tmp_path: Path, fake: FakeSlack) -> None:
    stack = make_stack("sqlite", tmp_path, fake, 2)
    try:
        # A lead whose first nudge is 30 s overdue, queued before the service starts; a tick fires it.
        stack.queue_leads([lead_body(700, team=0)], at=datetime.now(UTC) - timedelta(minutes=8))
        with stack.db.read() as session:
            from storage.health import backlog

            before = backlog(session, now=datetime.now(UTC))
        assert before.overdue_steps == 1 and before.oldest_overdue_s >= 30
        assert before.outbox == {"pending": 1, "sending": 0, "dead": 0}

        port = free_port()
        proc = stack.start("serve", "serve", "--port", str(port))
        url = f"http://127.0.0.1:{port}"
        client = httpx.Client(base_url=url, timeout=10)
        wait_for(lambda: _get(client, "/healthz") or proc.popen.poll() is not None, 60, "/healthz")
        for n in range(3):
            response = client.post("/api/v1/leads", json=lead_body(n, team=n % 2, hot=False),
                                   headers={"Authorization": f"Bearer {INTAKE_TOKEN}"})
            assert response.status_code == 201, response.text
        wait_for(lambda: len(card_posts(fake)) == 4 and len(fake.dms) == 1, 60, "4 cards and the nudge")
        wait_for(lambda: metric(client.get("/metrics").text, "slabot_outbox_rows", status="pending") == 0,
                 30, "the outbox to be empty")
        text = client.get("/metrics").text
        assert metric(text, "slabot_outbox_deliveries_total", platform="slack", outcome="sent") == 5.0
        assert metric(text, "slabot_outbox_rows", status="sending") == 0.0
        assert metric(text, "slabot_outbox_rows", status="dead") == 0.0
        assert metric(text, "slabot_nudges_overdue") == 0.0
        assert metric(text, "slabot_nudge_oldest_overdue_seconds") == 0.0
    finally:
        stack.stop_all()


def _get(client: httpx.Client, path: str) -> bool:
    try:
        return client.get(path).status_code == 200
    except httpx.HTTPError:
        return False
