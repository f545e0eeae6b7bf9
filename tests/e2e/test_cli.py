"""The `slabot` command line as an operator runs it: import, db upgrade, tick, errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from storage.db import Database
from tests.conftest import EXAMPLE_AGREEMENT


def slabot(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
                   "SLABOT_AGREEMENT": str(EXAMPLE_AGREEMENT), **env}
    for key in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "TEAMS_APP_ID", "TEAMS_ALLOW_UNAUTHENTICATED"):
        environment.pop(key, None)
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], capture_output=True, text=True,
                          env=environment, timeout=120, cwd=tmp_path)


CSV = """\
external_id,email,first_name,last_name,company,employees,source,stage,activities,page_visits,bant_need,\
bant_budget
c-1,ann@a.example,Ann,Lee,Acme,50,demo_request,solution_research,demo_requested;pricing_page_viewed,3,yes,true
c-2,bob@b.example,Bob,Ray,Big,5000,webinar,solution_research,webinar_attended,1,yes,true
c-3,not-an-email,Cy,Doe,Co,10,ebook,solution_research,ebook_downloaded,0,,
c-1,ann@a.example,Ann,Lee,Acme,50,demo_request,solution_research,demo_requested,3,yes,true
c-4,dee@d.example,Dee,Fox,Tiny,5,list_purchase,solution_research,demo_requested,0,yes,true
"""


def test_import_reports_accepted_duplicate_and_rejected_rows(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_text(CSV)
    result = slabot(tmp_path, "import", str(path))
    # Row c-3 is rejected (bad e-mail), the second c-1 is a duplicate; c-2 scores 10 -> nurture,
    # c-4 is a purchased list -> nurture, c-1 scores 40 -> workable.
    assert "accepted 3 (1 workable, 2 nurture), duplicate 1, rejected 1" in result.stdout, result.stderr
    assert "rejected line 4: email: not an e-mail address" in result.stdout
    assert result.returncode == 1   # rejected rows make the import exit non-zero for scripts
    again = slabot(tmp_path, "import", str(path))
    assert "accepted 0" in again.stdout and "duplicate 4" in again.stdout


def test_db_upgrade_creates_the_schema(tmp_path: Path) -> None:
    result = slabot(tmp_path, "db", "upgrade")
    assert result.returncode == 0, result.stderr
    assert Database(f"sqlite:///{tmp_path / 'cli.db'}").is_current()


def test_bad_now_is_a_usage_error(tmp_path: Path) -> None:
    result = slabot(tmp_path, "tick", "--now", "yesterday")
    assert result.returncode == 2 and "ISO 8601" in result.stderr
    naive = slabot(tmp_path, "tick", "--now", "2026-11-24T10:00:00")
    assert naive.returncode == 2 and "no time zone" in naive.stderr


def test_invalid_agreement_stops_commands_with_a_message(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\n")
    result = slabot(tmp_path, "import", str(bad), SLABOT_AGREEMENT=str(bad))
    # Exit 2 like every other mistake the operator can fix (it was 1 before the CLI's errors were unified).
    assert result.returncode == 2 and "the agreement is not valid" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
