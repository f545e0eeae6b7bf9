"""The files in examples/ do what examples/README.md says, as a user would run them: the agreement
checks, the lead and the outcome are accepted over real HTTP, the CSV imports without a rejected row,
and the demo's embedded agreement is the same file."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import httpx

from bot.cli import csv_row_to_lead
from bot.demo.run import demo_agreement
from sla.lead import LeadIn
from tests.conftest import EXAMPLE_AGREEMENT, EXAMPLE_LEAD, EXAMPLE_OUTCOME, EXAMPLES, INTAKE_TOKEN, LiveServer
from tests.e2e.test_cli import slabot

AUTH = {"Authorization": f"Bearer {INTAKE_TOKEN}"}


def test_examples_readme_lists_every_example() -> None:
    readme = (EXAMPLES / "README.md").read_text()
    files = sorted(p.name for p in EXAMPLES.iterdir() if p.name != "README.md")
    assert files == ["agreement.yaml", "lead.json", "leads.csv", "outcome.json"]
    assert all(f"]({name})" in readme for name in files)


def test_the_example_agreement_checks(tmp_path: Path) -> None:
    result = slabot(tmp_path, "check", str(EXAMPLE_AGREEMENT))
    assert result.returncode == 0, result.stderr
    assert "ok: 'Acme FY27 Sales & Marketing SLA', 2 teams, 5 reps" in result.stdout


def test_the_demo_embeds_the_example_agreement() -> None:
    with demo_agreement() as path:
        assert path.read_bytes() == EXAMPLE_AGREEMENT.read_bytes()


def test_the_example_lead_and_its_outcome_are_accepted(live: LiveServer) -> None:
    lead = json.loads(EXAMPLE_LEAD.read_text())
    outcome = json.loads(EXAMPLE_OUTCOME.read_text())
    assert outcome["external_id"] == lead["external_id"], "the outcome must be for the example lead"
    with httpx.Client(base_url=live.url, timeout=10) as http:
        created = http.post("/api/v1/leads", content=EXAMPLE_LEAD.read_bytes(),
                            headers={**AUTH, "Content-Type": "application/json"})
        assert created.status_code == 201, created.text
        assert created.json()["workable"] is True and created.json()["rep"]
        recorded = http.post("/api/v1/outcomes", content=EXAMPLE_OUTCOME.read_bytes(),
                             headers={**AUTH, "Content-Type": "application/json"})
        assert recorded.status_code == 200, recorded.text
        assert recorded.json()["id"] == created.json()["id"]
        assert recorded.json()["status"] == "qualified"   # opportunity_created
        events = http.get(f"/api/v1/leads/{created.json()['id']}", headers=AUTH).json()["events"]
        assert any(e["data"].get("amount") == outcome["amount"] for e in events), events


def test_the_example_csv_imports_every_row(tmp_path: Path) -> None:
    with (EXAMPLES / "leads.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3
    for row in rows:   # every column is one the import reads, and every row is a valid lead
        LeadIn.model_validate(csv_row_to_lead(row))
    result = slabot(tmp_path, "import", str(EXAMPLES / "leads.csv"))
    assert result.returncode == 0, result.stderr
    assert "accepted 3 (2 workable, 1 nurture), duplicate 0, rejected 0" in result.stdout
    assert "warning" not in result.stderr.lower(), result.stderr
