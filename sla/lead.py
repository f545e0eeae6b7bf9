"""A lead handoff as Marketing sends it: the validated body of `POST /api/v1/leads`."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
Text = Annotated[str, Field(max_length=500)]
Short = Annotated[str, Field(max_length=200)]


class Activity(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Short
    at: datetime | None = None


class BantFacts(BaseModel):
    """Need, budget, timeframe, authority. A fact is known when present and not false."""

    model_config = ConfigDict(extra="ignore")
    need: Any = None
    budget: Any = None
    timeframe: Any = None
    authority: Any = None

    def known(self) -> list[str]:
        return [name for name in ("need", "budget", "timeframe", "authority")
                if _is_known(getattr(self, name))]


def _is_known(value: Any) -> bool:
    if value is None or value is False:
        return False
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "no", "unknown", "n/a")
    return True


class LeadIn(BaseModel):
    """Fields beyond these are ignored, so CRMs can send their whole record."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    external_id: Short | None = None
    email: Short | None = None
    first_name: Short | None = None
    last_name: Short | None = None
    title: Short | None = None
    company: Short | None = None
    employees: int | None = Field(default=None, ge=0, le=10_000_000)
    country: Short | None = None
    phone: Annotated[str, Field(max_length=50)] | None = None
    source: Short | None = None
    offer: Short | None = None
    campaign: Short | None = None
    stage: Short | None = None
    activities: list[Activity] = Field(default_factory=list, max_length=1000)
    page_visits: int = Field(default=0, ge=0)
    bant: BantFacts = Field(default_factory=BantFacts)
    crm_url: Text | None = None
    received_at: datetime | None = None

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and value != "" and not _EMAIL.match(value):
            raise ValueError("not an e-mail address")
        return value.lower() if value else None

    @field_validator("crm_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        # Only web links: a `javascript:` or `slack://` URL on a card would be an injection.
        if value and not re.match(r"^https?://[^\s<>|]+$", value):
            raise ValueError("must be an http(s) URL")
        return value or None

    @field_validator("received_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must include a time zone, e.g. 2026-11-20T14:05:30Z")
        return value.astimezone(UTC) if value else None

    @model_validator(mode="after")
    def _identified(self) -> LeadIn:
        if not self.email and not self.external_id:
            raise ValueError("either email or external_id is required")
        return self

    @property
    def display_name(self) -> str:
        name = " ".join(p for p in (self.first_name, self.last_name) if p)
        return name or self.email or self.external_id or "unknown lead"

    def activity_types(self) -> set[str]:
        return {a.type for a in self.activities}
