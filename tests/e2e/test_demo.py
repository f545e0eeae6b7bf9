"""`slabot demo` as a newcomer runs it: the example agreement at work in one terminal, from anywhere.

The in-process runs use `realtime=False`: the simulated clock moves by exactly one tick's worth per
step, never by wall time, so the transcript is the same on an idle laptop and on two busy cores.
Ctrl-C is tested with a real SIGINT, in this process and to a `slabot demo` subprocess, sent when
a line of output shows the demo has reached a given point (never after a sleep).
"""

from __future__ import annotations

import io
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import col, func, select

from bot.demo.run import DemoSummary, demo_agreement, run_demo
from storage.db import Database
from storage.tables import Lead, LeadEvent, MessageRef, OutboxMessage
from tests.conftest import EXAMPLE_AGREEMENT

#: Wednesday 2026-12-02 08:25 in New York: the live day; Tuesday Dec 1 is replayed first.
START = datetime(2026, 12, 2, 13, 25, tzinfo=UTC)
REP_ACTIONS = ("claimed", "log_call", "log_email", "connected", "qualify", "disqualify", "recycle")


@pytest.fixture(scope="module")
def one_day(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, DemoSummary, Path]:
    """One live business day in 6000x steps (five simulated minutes each), after the replayed day before."""
    db_path = tmp_path_factory.mktemp("demo") / "demo.db"
    out = io.StringIO()
    summary = run_demo(speed=6000, seed=7, out=out, db_path=db_path, start=START, simulated_hours=12,
                       realtime=False)
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
    assert "card updated → Qualified (opportunity)" in transcript and "clicks [Disqualify: " in transcript
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
                       simulated_hours=12, realtime=False)
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


# --- plain words ---------------------------------------------------------------------------------

#: Identifiers and shorthand a newcomer must never have to decode.
RAW_WORDS = ("no_budget", "no_need", "bad_contact_data", "student_or_job_seeker", "demo_request", "product_demo",
             "list_purchase", "demo_requested", "solution_research", "authority: True", "budget: True", "Cohort",
             "MTD", "business min", "p50", "p90", "15m", "2h", "5d")


def test_the_transcript_speaks_plain_words(one_day: tuple[str, DemoSummary, Path]) -> None:
    transcript, _, _ = one_day
    for raw in RAW_WORDS:
        assert raw not in transcript, raw
    assert "Source / offer: Demo request / Product demo" in transcript
    assert "Tier: Hot (first touch within 15 min)" in transcript and "Value: $2,400" in transcript
    assert re.search(r"BANT: Need: [^\n]*(Budget|Authority) known", transcript)
    assert re.search(r"clicks \[Disqualify: (No budget|No need|Chose a competitor|Bad contact data)\]", transcript)
    assert re.search(r"Worked: \d+% of \d+ leads due", transcript)
    assert re.search(r"Speed to lead: median first touch \d+ min \(90% within [^)]+\), in business time",
                     transcript)
    assert re.search(r"Month end: on pace for \d+ of 200 workable leads", transcript)
    assert re.search(r"status: Marketing \d+ of 200 workable leads this month \(\d+ to nurture\) · Sales worked "
                     r"\d+% of \d+ leads due, \d+% touched within the SLA", transcript)


# --- the story: one lead left unworked -----------------------------------------------------------

STORY = ("★ THE STORY TO WATCH: ", "★ THE STORY, 1 of 4: the nudge to the rep",
         "★ THE STORY, 2 of 4: the manager's escalation", "★ THE STORY, 3 of 4: the VP's notice",
         "★ THE STORY, 4 of 4: the reassignment", "★ THE STORY ENDS: ")


@pytest.fixture(scope="module")
def first_two_minutes() -> str:
    """What a newcomer sees in the first two real minutes at the default speed: 120x, one step per
    real second, so 4 simulated hours of the live day (the replay is left out: it only adds the
    morning digest's numbers)."""
    out = io.StringIO()
    run_demo(speed=120, seed=7, out=out, start=START, simulated_hours=4, replay=False, realtime=False)
    return out.getvalue()


def test_the_story_plays_out_in_order_within_two_minutes(first_two_minutes: str) -> None:
    transcript = first_two_minutes
    where = [transcript.find(beat) for beat in STORY]
    assert -1 not in where and where == sorted(where), list(zip(STORY, where, strict=True))
    intro = re.search(r"\[Wed (\d\d:\d\d)\] ★ THE STORY TO WATCH: (.+?) claims (.+?)'s lead, then leaves it "
                      r"untouched\.", transcript)
    assert intro is not None
    rep, lead = intro[2], intro[3]
    assert "at 200% of the first-touch window: tell the manager and VP Marketing, and reassign the lead" in transcript
    # Each beat follows the messages it explains: the rep's nudge, the manager's, the VP's, the new owner's.
    first, second, third = (transcript[where[i - 1]:where[i]] for i in range(1, 4))
    assert f"dm → {rep}\n  No first touch yet on {lead}" in first
    assert f"{rep} clicks [Claim] on {lead}'s card" in first       # claimed, then left alone
    assert "dm → Priya Shah" in second or "dm → Diego Alvarez" in second
    assert "dm → Maya Lin" in third and f"{lead} (" in third
    assert re.search(rf"dm → (?!{rep})[^\n]+\n  {re.escape(lead)} \([^)]*\) is now yours", third)
    # While the lead is breached the numbers say so: never "no open breaches" until it is touched.
    breached = transcript[where[2]:where[5]]
    statuses = re.findall(r"\] status: [^\n]*", breached)
    assert statuses and all(f"open breach: {lead} ({rep})" in s or "open breaches:" in s for s in statuses)
    assert not any("no open breaches" in s for s in statuses)
    # All of it within the first simulated hour and a quarter: 40 real seconds at the default speed.
    stamps = re.findall(r"\[Wed (\d\d):(\d\d)\] ★ THE STORY, 4 of 4", transcript)
    assert stamps and int(stamps[0][0]) * 60 + int(stamps[0][1]) <= 9 * 60 + 45


def test_the_story_is_the_same_every_run(first_two_minutes: str) -> None:
    """No wall time inside: a second run tells exactly the same story, line for line."""
    out = io.StringIO()
    run_demo(speed=120, seed=7, out=out, start=START, simulated_hours=4, replay=False, realtime=False)
    def strip(text: str) -> str:   # only the real-seconds count of the summary may differ
        return re.sub(r"after \d+\.\d real minutes", "after N real minutes", text)
    assert strip(out.getvalue()) == strip(first_two_minutes)


# --- Ctrl-C from a terminal ----------------------------------------------------------------------


def _demo_process(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], queue.Queue[str | None]]:
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "bot.cli", "demo", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=environment, cwd=tmp_path)
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return process, lines


@pytest.mark.parametrize("marker", ["slabot demo: ", "Replaying yesterday", ": new lead card", "★ THE STORY"],
                         ids=["starting", "replaying", "live", "story"])
def test_ctrl_c_in_a_terminal_always_prints_the_summary(tmp_path: Path, marker: str) -> None:
    process, lines = _demo_process(tmp_path, "--speed", "6000")
    seen: list[str] = []
    try:
        while True:
            line = lines.get(timeout=120)   # a guard against a hang, not a timing assertion
            assert line is not None, "the demo ended before it showed " + marker + "\n" + "".join(seen)
            seen.append(line)
            if marker in line:
                process.send_signal(signal.SIGINT)
                break
        while (line := lines.get(timeout=120)) is not None:
            seen.append(line)
        assert process.wait(timeout=120) == 0
    finally:
        if process.poll() is None:
            process.kill()
    output = "".join(seen)
    stderr = process.stderr.read() if process.stderr else ""
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert "Demo stopped (Ctrl-C)" in output
    assert re.search(r"leads received: \d+ \(\d+ workable", output) and "final status: Marketing" in output
    assert output.rstrip().endswith("=" * 78)
