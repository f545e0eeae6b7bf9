"""`slabot demo` as a newcomer runs it: the example agreement at work in one terminal, from anywhere."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import col, func, select

from bot.demo import DemoSummary, demo_agreement, run_demo
from storage.db import Database
from storage.tables import Lead, LeadEvent, MessageRef, OutboxMessage
from tests.conftest import EXAMPLE_AGREEMENT

#: Wednesday 2026-12-02 08:25 in New York: the live day; Tuesday Dec 1 is replayed first.
START = datetime(2026, 12, 2, 13, 25, tzinfo=UTC)
REP_ACTIONS = ("claimed", "log_call", "log_email", "connected", "qualify", "disqualify", "recycle")


@pytest.fixture(scope="module")
def one_day(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, DemoSummary, Path]:
    """One live business day at 6000x (about six real seconds), after the replayed day before."""
    db_path = tmp_path_factory.mktemp("demo") / "demo.db"
    out = io.StringIO()
    summary = run_demo(speed=6000, seed=7, out=out, db_path=db_path, start=START, simulated_hours=12)
    return out.getvalue(), summary, db_path


def test_the_transcript_shows_the_agreement_at_work(one_day: tuple[str, DemoSummary, Path]) -> None:
    transcript, summary, _ = one_day
    assert transcript.startswith("=" * 78 + "\nslabot demo: Acme FY27 Sales & Marketing SLA")
    assert "SMB Inbound: Ana Ruiz, Ben Okafor, Cho Park" in transcript and "Mid-Market: Eve Adams" in transcript
    assert "Time runs 6000x faster" in transcript and "Ctrl-C to stop." in transcript
    assert "Replaying yesterday (Tue Dec 1)" in transcript
    # The morning digest, both sides of the agreement, with yesterday's numbers; the second VP's copy
    # is the same message; team channels get their own.
    assert "digest → Maya Lin" in transcript
    assert "— Marketing: leads delivered" in transcript and "— Sales: every lead worked" in transcript
    assert "— Yesterday (Tue Dec 1)" in transcript
    assert "digest → Sam Ortiz\n  the same digest as Maya Lin got" in transcript
    assert "digest → #smb" in transcript and "digest → #midmarket" in transcript
    # Leads, cards, clicks, card updates, the nudge ladder, a reassignment, the hourly status.
    assert "#smb: new lead card" in transcript and "#midmarket: new lead card" in transcript
    assert "clicks [Claim]" in transcript and "card updated → Claimed" in transcript
    assert "card updated → Opportunity" in transcript and "clicks [Disqualify: " in transcript
    assert "No first touch yet on" in transcript                     # a nudge DM to the rep
    assert re.search(r"dm → (Priya Shah|Diego Alvarez)\n", transcript)  # ... and one to a manager
    assert "is now yours" in transcript                              # the ignored lead moved on
    assert "status: Marketing" in transcript and "Sales worked" in transcript
    assert "Business hours are over" not in transcript                # stopped before the night
    assert summary.stopped_by == "simulated time is up" and summary.replayed
    assert "Demo stopped (simulated time is up)" in transcript


def test_nurture_leads_are_never_posted(one_day: tuple[str, DemoSummary, Path]) -> None:
    transcript, _, db_path = one_day
    shown_nurture = re.findall(r"\): (purchased list|careers-page visitor|ebook lead|webinar lead)\n  → nurture: ",
                               transcript)
    assert {"purchased list", "careers-page visitor"} <= set(shown_nurture)
    assert "never posted to Sales" in transcript
    # Every card in the transcript follows a workable handoff, one for one.
    assert transcript.count(": new lead card") == transcript.count("→ workable: ")
    db = Database(f"sqlite:///{db_path}")
    try:
        with db.read() as session:
            posted_for_nurture = session.execute(
                select(func.count()).select_from(OutboxMessage).join(Lead, col(Lead.id) == OutboxMessage.lead_id)
                .where(col(Lead.workable).is_(False))).scalar_one()
            nurture = session.execute(select(func.count()).where(col(Lead.state) == "nurture")).scalar_one()
    finally:
        db.dispose()
    assert nurture > 0 and posted_for_nurture == 0


def test_the_summary_agrees_with_the_database(one_day: tuple[str, DemoSummary, Path]) -> None:
    transcript, summary, db_path = one_day
    db = Database(f"sqlite:///{db_path}")
    reps = ["ana", "ben", "cho", "eve", "fay"]

    def count(*where: sa.ColumnElement[bool], table: type = Lead) -> int:
        with db.read() as session:
            return int(session.execute(select(func.count()).select_from(table).where(*where)).scalar_one())

    try:
        assert summary.leads == count() > 20
        assert summary.workable == count(col(Lead.workable).is_(True)) > 10
        assert summary.nurture == count(col(Lead.state) == "nurture") == summary.leads - summary.workable
        assert summary.cards_posted == count(table=MessageRef) == summary.workable
        sent_cards = count(col(OutboxMessage.kind) == "card", col(OutboxMessage.status) == "done",
                           col(OutboxMessage.last_error).is_(None), table=OutboxMessage)
        assert summary.cards_posted + summary.card_updates == sent_cards
        assert summary.rep_clicks == count(col(LeadEvent.actor).in_(reps), col(LeadEvent.type).in_(REP_ACTIONS),
                                           table=LeadEvent) > 0
        assert summary.nudges == count(col(LeadEvent.type) == "nudge", table=LeadEvent) > 0
        with db.read() as session:
            moves = session.execute(select(LeadEvent.data).where(
                col(LeadEvent.type).in_(["nudge", "claim_timeout"]))).scalars().all()
        assert summary.reassignments == sum(1 for data in moves if data.get("reassigned_to")) > 0
        assert summary.direct_messages == count(col(OutboxMessage.kind) == "dm", col(OutboxMessage.status) == "done",
                                                table=OutboxMessage) > 0
        # Two days of digests: two VPs and two team channels a day.
        assert summary.digests == count(col(OutboxMessage.kind) == "digest", col(OutboxMessage.status) == "done",
                                        table=OutboxMessage) == 8
        assert count(col(OutboxMessage.status) != "done", table=OutboxMessage) == 0   # nothing left behind
    finally:
        db.dispose()
    assert f"leads received: {summary.leads} ({summary.workable} workable" in transcript
    assert f"nudges: {summary.nudges}, reassignments: {summary.reassignments}" in transcript


class _InterruptOnce(io.StringIO):
    """A terminal whose user presses Ctrl-C (a real SIGINT to this process) when `marker` appears."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker, self.pressed = marker, False

    def write(self, text: str) -> int:
        written = super().write(text)
        if not self.pressed and self.marker in text:
            self.pressed = True
            signal.raise_signal(signal.SIGINT)
        return written


def test_ctrl_c_ends_with_a_summary(tmp_path: Path) -> None:
    out = _InterruptOnce("card updated")
    summary = run_demo(speed=6000, seed=3, out=out, db_path=tmp_path / "demo.db", start=START, replay=False,
                       simulated_hours=12)
    transcript = out.getvalue()
    assert out.pressed and summary.stopped_by == "Ctrl-C" and not summary.replayed
    assert "Demo stopped (Ctrl-C)" in transcript and "final status: Marketing" in transcript
    assert summary.leads >= 1 and summary.cards_posted >= 1


def test_the_embedded_agreement_is_the_contract_example() -> None:
    with demo_agreement() as path:
        assert path.read_bytes() == EXAMPLE_AGREEMENT.read_bytes()


def test_the_cli_demo_runs_anywhere_with_nothing_configured(tmp_path: Path) -> None:
    """From an empty directory, with no agreement file, and chat credentials in the environment that
    the demo must not use (a real bot token, an unreachable database URL)."""
    environment = {**os.environ, "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/nothing",
                   "SLABOT_AGREEMENT": str(tmp_path / "missing.yaml"), "SLACK_BOT_TOKEN": "xoxb-not-for-the-demo",
                   "SLACK_SIGNING_SECRET": "not-for-the-demo", "TEAMS_APP_ID": "not-for-the-demo"}
    result = subprocess.run([sys.executable, "-m", "bot.cli", "demo", "--minutes", "0.05"], capture_output=True,
                            text=True, env=environment, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "slabot demo: Acme FY27 Sales & Marketing SLA" in result.stdout
    assert "Time runs 120x faster: a 9-hour business day takes 4.5 minutes" in result.stdout
    assert "Demo stopped (--minutes is up)" in result.stdout
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []   # nothing written where it ran: the database was temporary
