"""The experiments hook of the status: each experiment of the agreement (storage/experiments.py
counts them) as a typed `ExperimentStatus`."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from sla.agreement import Agreement
from sla.calendar import BusinessCalendar
from storage.experiments import experiment_results
from storage.metrics.model import ExperimentStatus


def experiments(session: Session, *, agreement: Agreement, calendar: BusinessCalendar, as_of: datetime,
                scope: str = "all") -> list[ExperimentStatus]:
    """The Status JSON's `experiments`: one entry per experiment, in agreement order."""
    return [ExperimentStatus.model_validate(r.to_json())
            for r in experiment_results(session, agreement=agreement, calendar=calendar, as_of=as_of, scope=scope)]
