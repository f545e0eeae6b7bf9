"""Job runs: the row a scheduled job writes once per period (a digest per recipient per local day,
the first start of a schedule per platform), so a second worker or a later tick does it not twice."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlmodel import Session, col, select

from storage.db import upsert
from storage.tables import JobRun


def runs(session: Session, *, job: str, period_keys: Sequence[str]) -> dict[str, datetime]:
    """When each of these periods of `job` ran, for those that did."""
    rows = session.execute(select(JobRun.period_key, JobRun.ran_at).where(
        col(JobRun.job) == job, col(JobRun.period_key).in_(list(period_keys)))).all()
    return {str(key): at for key, at in rows}


def claim_run(session: Session, *, job: str, period_key: str, now: datetime) -> bool:
    """Insert the period's row; False if it was there already (another worker, an earlier tick)."""
    return upsert(session, JobRun, {"job": job, "period_key": period_key, "ran_at": now},
                  keys=("job", "period_key"), returning=col(JobRun.id)) is not None
