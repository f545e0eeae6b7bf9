"""Rep choice: round robin, weighted, least loaded; away, inactive and full reps are skipped."""

from __future__ import annotations

from sla.agreement import Agreement
from sla.routing import RepLoad, choose_rep


def team(agreement: Agreement):  # type: ignore[no-untyped-def]
    t = agreement.team("smb")
    assert t is not None
    return t


def test_round_robin_continues_after_cursor_and_wraps(agreement: Agreement) -> None:
    smb = team(agreement)
    picks, last = [], None
    for _ in range(4):
        last = choose_rep(team=smb, strategy="round_robin", loads={}, last_rep=last).rep
        picks.append(last)
    assert picks == ["ana", "ben", "cho", "ana"]


def test_away_reps_are_skipped_and_the_reason_says_so(agreement: Agreement) -> None:
    a = choose_rep(team=team(agreement), strategy="round_robin", loads={"ben": RepLoad(away=True)},
                   last_rep="ana")
    assert a.rep == "cho" and "skipped away/inactive: ben" in a.reason


def test_reps_at_capacity_are_skipped_unless_everyone_is(agreement: Agreement) -> None:
    full = {"ana": RepLoad(assigned_this_week=50), "ben": RepLoad(assigned_this_week=10)}
    a = choose_rep(team=team(agreement), strategy="round_robin", loads=full, last_rep="cho")
    assert a.rep == "ben" and "skipped 1 at weekly capacity" in a.reason
    everyone = {"ana": RepLoad(assigned_this_week=50), "ben": RepLoad(assigned_this_week=50),
                "cho": RepLoad(assigned_this_week=30)}
    b = choose_rep(team=team(agreement), strategy="round_robin", loads=everyone, last_rep="cho")
    assert b.rep == "ana" and "every rep is at weekly capacity" in b.reason


def test_nobody_available(agreement: Agreement) -> None:
    loads = {k: RepLoad(away=True) for k in ("ana", "ben", "cho")}
    a = choose_rep(team=team(agreement), strategy="round_robin", loads=loads, last_rep=None)
    assert a.rep is None and "no rep of smb is available" in a.reason


def test_least_loaded_is_relative_to_capacity(agreement: Agreement) -> None:
    # ana 20/50 = 0.4, ben 25/50 = 0.5, cho 10/30 = 0.33 -> cho
    loads = {"ana": RepLoad(open_leads=20), "ben": RepLoad(open_leads=25), "cho": RepLoad(open_leads=10)}
    a = choose_rep(team=team(agreement), strategy="least_loaded", loads=loads, last_rep=None)
    assert a.rep == "cho" and "least loaded: 10 open of 30/week" in a.reason


def test_weighted_gives_the_least_served_rep_relative_to_weight(agreement: Agreement) -> None:
    loads = {"ana": RepLoad(assigned_this_week=3), "ben": RepLoad(assigned_this_week=1),
             "cho": RepLoad(assigned_this_week=2)}
    assert choose_rep(team=team(agreement), strategy="weighted", loads=loads, last_rep=None).rep == "ben"


def test_reassignment_excludes_previous_owners_unless_no_one_else(agreement: Agreement) -> None:
    smb = team(agreement)
    a = choose_rep(team=smb, strategy="round_robin", loads={}, last_rep="ana", exclude=frozenset({"ben"}))
    assert a.rep == "cho"
    b = choose_rep(team=smb, strategy="round_robin", loads={}, last_rep="ana",
                   exclude=frozenset({"ana", "ben", "cho"}))
    assert b.rep == "ben" and "already had this lead" in b.reason
