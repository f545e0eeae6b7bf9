"""Issue 10 item 2: nudges do not starve behind a backlog of cards.

Scaled from the issue's 5,000 cards: 1,500 cards queued across 10 channels, i.e. 150 s of posting at
Slack's 1 post/s per channel (the fake enforces it), far longer than the 60 s a nudge may be late.
Two hot leads come due during the backlog: one as the worker starts, one 5 s after its first card
is out (it fires at the next scheduled tick, 30 s after the first). `slabot worker` runs on the real clock; the
agreement is open around the clock in UTC, so the time of day the suite runs changes nothing. The
lateness is measured on the worker's own clock: the DM's `done_at` in the outbox minus the step's
due time as the product computed it (the lead's next check when it was queued). The worker is
stopped once both nudges are out; the backlog need not drain.
"""

from __future__ import annotations

import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import col, select

from storage.tables import OutboxMessage
from tests.fakes.slack_api import FakeSlack
from tests.faults.conftest import make_stack
from tests.faults.harness import card_posts, lead_body, nudge_due, wait_for

LANES = 10
BACKLOG = 1500
SECOND_DUE_IN = timedelta(seconds=5)


@pytest.mark.slow
def test_nudges_fire_within_a_minute_of_due_behind_a_1500_card_backlog(tmp_path: Path, fake: FakeSlack) -> None:
    stack = make_stack("sqlite", tmp_path, fake, LANES)
    try:
        now = datetime.now(UTC)
        half_window = timedelta(minutes=7, seconds=30)       # hot: 15m first touch, first nudge at 50%
        first = stack.queue_leads([lead_body(900001, team=0)], at=now - half_window)[0]
        # When each first nudge is due, as the product computed it (business time of the agreement),
        # read before anything can fire it.
        due = {first: stack.lead(first).next_check_at}
        stack.queue_leads([lead_body(n, team=n % LANES, hot=False) for n in range(BACKLOG)])
        worker = stack.worker()
        # The backlog is going out: a second hot lead's nudge comes due a few seconds from now, so a
        # later tick than the first must fire it.
        wait_for(lambda: len(card_posts(fake)) >= 1 or worker.popen.poll() is not None, 60, "the first card")
        second = stack.queue_leads([lead_body(900002, team=1)],
                                   at=datetime.now(UTC) - half_window + SECOND_DUE_IN)[0]
        due[second] = stack.lead(second).next_check_at
        assert len(stack.outbox(kind="card")) == BACKLOG + 2
        assert all(at is not None and abs((at - nudge_due(stack.lead(i))).total_seconds()) < 120
                   for i, at in due.items()), due

        def nudge_rows() -> list[OutboxMessage]:
            with stack.db.read() as session:
                return list(session.execute(
                    select(OutboxMessage).where(col(OutboxMessage.kind) == "dm",
                                                col(OutboxMessage.status) == "done",
                                                col(OutboxMessage.dedupe_key).like("nudge:%"))).scalars())

        def sent_for(lead_id: int) -> OutboxMessage | None:
            return next((r for r in nudge_rows() if r.dedupe_key.startswith(f"nudge:{lead_id}:")), None)

        # Generous: the old code needed the whole backlog (150 s) before its first sweep.
        wait_for(lambda: (sent_for(first) is not None and sent_for(second) is not None)
                 or worker.popen.poll() is not None, 100, "both nudges to be delivered")
        assert worker.popen.poll() is None, worker.output()
        late = {}
        for lead_id in (first, second):
            row = sent_for(lead_id)
            assert row is not None and row.done_at is not None
            late[lead_id] = (row.done_at - due[lead_id]).total_seconds()  # type: ignore[operator]
        cards_out = sum(len(v) for v in card_posts(fake).values())
        print(f"\nnudge lateness (s): {sorted(late.values())}; cards posted meanwhile: {cards_out} of "
              f"{BACKLOG + 2}; 429s: {fake.stats()['rate_limited']}")
        assert all(seconds <= 60 for seconds in late.values()), late
        assert cards_out > 0 and fake.stats()["duplicate_posts"] == 0      # the backlog kept flowing
        assert worker.kill(signal.SIGTERM) == 0
    finally:
        stack.stop_all()
