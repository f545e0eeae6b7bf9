"""Issue 10 item 3: one and two workers hold Slack's 1 post/s per channel against a fake that
enforces it (a second post within a second in the same channel is answered 429).

45 cards queued per channel in 3 channels (more than one claim's worth, so the old code's two
claimers, the delivery loop and the tick, both got rows of the same channel). The workers run
until 24 cards are out; then they are stopped and the 429s counted.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.fakes.slack_api import FakeSlack
from tests.faults.conftest import make_stack
from tests.faults.harness import card_posts, iter_gaps, lead_body, wait_for

LANES = 3
PER_CHANNEL = 45
OBSERVE = 24


def run_pacing(tmp_path: Path, fake: FakeSlack, kind: str, workers: int) -> dict[str, float]:
    stack = make_stack(kind, tmp_path, fake, LANES)
    try:
        stack.queue_leads([lead_body(n, team=n % LANES, hot=False) for n in range(LANES * PER_CHANNEL)])
        procs = [stack.worker() for _ in range(workers)]
        wait_for(lambda: sum(len(v) for v in card_posts(fake).values()) >= OBSERVE
                 or any(p.popen.poll() is not None for p in procs), 90, f"{OBSERVE} cards")
        stats = fake.stats()
        gaps = list(iter_gaps(fake))
        figures = {"workers": workers, "posted": stats["accepted_posts"], "rejected_429": stats["rate_limited"],
                   "min_gap_s": round(min(gaps), 3)}
        print(f"\npacing, {workers} worker(s) on {kind}: {figures}")
        assert stats["duplicate_posts"] == 0
        assert stats["rate_limited"] == 0, figures
        for proc in procs:
            assert proc.kill(signal.SIGTERM) == 0, proc.output()
        return figures
    finally:
        stack.stop_all()


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2], ids=["one-worker", "two-workers"])
def test_workers_hold_one_post_per_second_per_channel(tmp_path: Path, fake: FakeSlack, workers: int) -> None:
    run_pacing(tmp_path, fake, "sqlite", workers)


@pytest.mark.slow
@pytest.mark.postgres
def test_two_workers_on_postgresql_hold_one_post_per_second_per_channel(tmp_path: Path, fake: FakeSlack) -> None:
    run_pacing(tmp_path, fake, "postgres", 2)
