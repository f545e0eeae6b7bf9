"""Which rep of a team gets a lead, and why: round robin, weighted or least loaded."""

from __future__ import annotations

from dataclasses import dataclass

from sla.agreement import Rep, Team


@dataclass(frozen=True)
class RepLoad:
    """What routing needs to know about a rep right now (read from storage by the caller)."""

    away: bool = False
    open_leads: int = 0
    assigned_this_week: int = 0


@dataclass(frozen=True)
class Assignment:
    rep: str | None
    reason: str


def choose_rep(
    *,
    team: Team,
    strategy: str,
    loads: dict[str, RepLoad],
    last_rep: str | None,
    skip_unavailable: bool = True,
    exclude: frozenset[str] = frozenset(),
) -> Assignment:
    """Pick a rep. `last_rep` is the team's persistent round-robin cursor.

    Reps who are away or inactive are never chosen. With `skip_unavailable`, reps at their weekly
    capacity are skipped too, unless everyone is, in which case capacity is ignored (a lead is
    never left unrouted just because the week is busy). `exclude` holds previous owners of a
    reassigned lead: they get it back only when no one else is left.
    """
    reps = team.reps
    present = [r for r in reps if r.active and not loads.get(r.key, RepLoad()).away]
    if not present:
        return Assignment(None, f"no rep of {team.key} is available (all away or inactive)")

    notes: list[str] = []
    pool = [r for r in present if r.key not in exclude]
    if not pool:
        pool = present
        notes.append("every available rep already had this lead")
    if skip_unavailable:
        with_room = [r for r in pool if loads.get(r.key, RepLoad()).assigned_this_week < r.capacity_per_week]
        if with_room:
            skipped = len(pool) - len(with_room)
            if skipped:
                notes.append(f"skipped {skipped} at weekly capacity")
            pool = with_room
        else:
            notes.append("every rep is at weekly capacity")
    away = [r.key for r in reps if r not in present]
    if away:
        notes.append(f"skipped away/inactive: {', '.join(away)}")

    rep, why = _pick(strategy, pool, reps, loads, last_rep)
    reason = "; ".join([why, *notes])
    return Assignment(rep.key, reason)


def _pick(strategy: str, pool: list[Rep], order: list[Rep], loads: dict[str, RepLoad],
          last_rep: str | None) -> tuple[Rep, str]:
    def load(rep: Rep) -> RepLoad:
        return loads.get(rep.key, RepLoad())

    if strategy == "least_loaded":
        rep = min(pool, key=lambda r: (load(r).open_leads / r.capacity_per_week, order.index(r)))
        return rep, (f"least loaded: {load(rep).open_leads} open of {rep.capacity_per_week}/week capacity")
    if strategy == "weighted":
        rep = min(pool, key=lambda r: ((load(r).assigned_this_week + 1) / r.weight, order.index(r)))
        return rep, (f"weighted: {load(rep).assigned_this_week} this week at weight {rep.weight:g}")
    # round_robin: the next rep after the cursor in the agreement's order, wrapping around.
    keys = [r.key for r in order]
    start = keys.index(last_rep) + 1 if last_rep in keys else 0
    in_pool = {r.key for r in pool}
    for offset in range(len(keys)):
        candidate = order[(start + offset) % len(keys)]
        if candidate.key in in_pool:
            return candidate, f"round robin: next after {last_rep or 'start'}"
    raise AssertionError("pool is never empty here")
