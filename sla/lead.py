"""A lead handoff as Marketing sends it: the validated body of `POST /api/v1/leads`."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
#: Characters no field of a lead may hold: C0 and C1 controls (NUL included: PostgreSQL refuses it
#: and a terminal or log obeys the others), DEL, lone surrogates (not storable as UTF-8) and the
#: bidirectional embeddings, overrides and isolates (U+202E turns "gpj.exe" into "exe.jpg" on a card).
#: No field of a lead is multi-line, so tab and newline are refused too.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069]")
#: Instants before or after this range are typos or attacks, and overflow date arithmetic.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def plain_text(value: str) -> str:
    """Refuse control and bidi-override characters, naming the first one found."""
    found = _UNSAFE.search(value)
    if found:
        raise ValueError(f"must not contain control or text-direction characters "
                         f"(found U+{ord(found.group()):04X} at position {found.start()})")
    return value


def sane_instant(value: datetime | None) -> datetime | None:
    """A timezone-aware instant between 1970 and 2100, in UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("must include a time zone, e.g. 2026-11-20T14:05:30Z")
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST <= utc < LATEST:
        raise ValueError("must be between 1970-01-01 and 2100-01-01")
    return utc


def loose_instant(value: datetime | None) -> datetime | None:
    """As `sane_instant`, but a time without a zone is kept as sent (activity times are only shown)."""
    if value is not None and value.tzinfo is None:
        if not EARLIEST.year <= value.year < LATEST.year:
            raise ValueError("must be between 1970-01-01 and 2100-01-01")
        return value
    return sane_instant(value)


Text = Annotated[str, Field(max_length=500), AfterValidator(plain_text)]
Short = Annotated[str, Field(max_length=200), AfterValidator(plain_text)]
Instant = Annotated[datetime, AfterValidator(sane_instant)]
#: A BANT fact: free text, yes/no or a number (a budget), bounded; never a nested structure.
Fact = Annotated[Any, AfterValidator(lambda v: _fact(v))]


def _fact(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        if not -1e15 <= value <= 1e15:   # also refuses NaN and infinities
            raise ValueError("must be a number between -10^15 and 10^15")
        return value
    if isinstance(value, str):
        if len(value) > 500:
            raise ValueError("must be at most 500 characters")
        return plain_text(value)
    raise ValueError("must be text, true/false or a number")


class Activity(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Short
    at: Annotated[datetime, AfterValidator(loose_instant)] | None = None


class BantFacts(BaseModel):
    """Need, budget, timeframe, authority. A fact is known when present and not false."""

    model_config = ConfigDict(extra="ignore")
    need: Fact = None
    budget: Fact = None
    timeframe: Fact = None
    authority: Fact = None

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
    phone: Annotated[str, Field(max_length=50), AfterValidator(plain_text)] | None = None
    source: Short | None = None
    offer: Short | None = None
    campaign: Short | None = None
    stage: Short | None = None
    activities: list[Activity] = Field(default_factory=list, max_length=1000)
    page_visits: int = Field(default=0, ge=0, le=1_000_000)
    bant: BantFacts = Field(default_factory=BantFacts)
    crm_url: Text | None = None
    received_at: Instant | None = None

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
