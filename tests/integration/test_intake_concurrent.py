"""Two web processes taking handoffs for the same teams at the same moment (PostgreSQL: each team's
round-robin cursor row is locked late in the batch, all of a batch's teams at once and in team
order; the same run on one SQLite file for comparison): no batch fails or deadlocks, every lead is
routed once, and round robin stays exact across the processes."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from sqlmodel import col, select

from commands.context import Context
from commands.intake import Handoff, handoff_many
from sla.agreement import parse_agreement
from sla.clock import FixedClock
from storage.db import Database
from storage.tables import Lead
from tests.conftest import EXAMPLE_AGREEMENT, T0
from tests.integration.test_engine import lead_in
from tests.integration.test_engine_postgres import kind, make_db  # noqa: F401 (kind is a fixture)

TEAMS = 4
PER_TEAM = 5          # odd: a lost cursor update would show as one rep getting more
ROUNDS = 12


def agreement_text() -> str:
    """The example agreement with TEAMS teams of two reps, a lead's `campaign` choosing its team."""
    data: dict[str, Any] = yaml.safe_load(EXAMPLE_AGREEMENT.read_text())
    data["teams"] = [{"key": f"t{i}", "name": f"Team {i}", "channel": {"slack": f"C0TEAM{i}"},
                      "manager": {"name": f"Manager {i}", "slack": f"U0M{i}"},
                      "reps": [{"key": f"r{i}{s}", "name": f"Rep {i}{s}", "slack": f"U0R{i}{s.upper()}",
                                "capacity_per_week": 1000} for s in "ab"]} for i in range(TEAMS)]
    data["routing"]["rules"] = [{"when": {"campaign": f"t{i}"}, "team": f"t{i}"} for i in range(TEAMS)]
    data["routing"]["rules"].append({"team": "t0"})
    return yaml.safe_dump(data, sort_keys=False)


def batch(process: int, n: int) -> list[Handoff]:
    """PER_TEAM leads for each team, process 0 listing the teams first to last and process 1 last to
    first, with a repeat of the previous round's first lead in the middle (so the batch is written
    in two groups around it, the second group's teams locked after the first's)."""
    order = range(TEAMS) if process == 0 else reversed(range(TEAMS))
    leads = [lead_in(f"P{process} R{n}T{t}N{k}", campaign=f"t{t}", external_id=f"p{process}-{n}-{t}-{k}")
             for t in order for k in range(PER_TEAM)]
    items = [Handoff(lead) for lead in leads]
    if n:
        first = next(iter(range(TEAMS) if process == 0 else reversed(range(TEAMS))))
        repeat = lead_in(f"P{process} R{n - 1}T{first}N0", campaign=f"t{first}",
                         external_id=f"p{process}-{n - 1}-{first}-0")
        items.insert(len(items) // 2, Handoff(repeat))
    return items


def test_two_processes_routing_to_the_same_teams_keep_round_robin_exact(kind: str, tmp_path: Path) -> None:  # noqa: F811
    agreement = parse_agreement(agreement_text())
    first = make_db(kind, tmp_path / "intake")
    dbs = [Database(first.url) for _ in range(2)]
    errors: list[BaseException] = []
    duplicates = Counter[int]()
    barrier = threading.Barrier(2)

    def work(process: int) -> None:
        ctx = Context(db=dbs[process], agreement=agreement, clock=FixedClock(T0), platforms=("slack",))
        try:
            for n in range(ROUNDS):
                barrier.wait(timeout=60)
                results = handoff_many(ctx, batch(process, n))
                duplicates[process] += sum(r.duplicate for r in results)
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread
            barrier.abort()
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(p,)) for p in range(2)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert errors == []
        with first.read() as session:
            owners = session.execute(select(Lead.team, Lead.owner).order_by(col(Lead.id))).all()
    finally:
        for db in [*dbs, first]:
            db.dispose()
    assert duplicates == {0: ROUNDS - 1, 1: ROUNDS - 1}   # each repeat answered as the lead it repeats
    assert len(owners) == 2 * ROUNDS * TEAMS * PER_TEAM   # every lead stored once
    per_rep = Counter(owner for _, owner in owners)
    for t in range(TEAMS):
        # 2 x 12 batches of 5 leads each for the team: 60 leads, 30 each, whoever's batch came first.
        assert (per_rep[f"r{t}a"], per_rep[f"r{t}b"]) == (ROUNDS * PER_TEAM, ROUNDS * PER_TEAM)
        assert {team for team, owner in owners if owner in (f"r{t}a", f"r{t}b")} == {f"t{t}"}
