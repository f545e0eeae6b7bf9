"""Where "now" comes from: the Clock protocol, its real, fixed and scaled implementations."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "FixedClock", "ScaledClock", "SystemClock", "as_utc"]


def as_utc(dt: datetime) -> datetime:
    """Return ``dt`` converted to UTC; a naive datetime raises ``ValueError``.

    Naive datetimes are refused rather than guessed at: an SLA deadline computed from a
    wall-clock time in an unknown zone is silently wrong by hours.
    """
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError("naive datetime")
    if dt.tzinfo is UTC:
        return dt
    return dt.astimezone(UTC)


@runtime_checkable
class Clock(Protocol):
    """A source of the current instant."""

    def now(self) -> datetime:
        """The current instant, always timezone-aware UTC."""
        ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that only moves when told to: for tests and replays."""

    def __init__(self, at: datetime) -> None:
        self._at = as_utc(at)

    def now(self) -> datetime:
        return self._at

    def set(self, at: datetime) -> None:
        self._at = as_utc(at)

    def advance(self, delta: timedelta) -> None:
        self._at = self._at + delta

    def __repr__(self) -> str:
        return f"FixedClock({self._at.isoformat()})"


class ScaledClock:
    """A clock that starts at ``start`` and runs ``speed`` times faster than real time.

    Real elapsed time is measured with ``time.monotonic()`` so that wall-clock jumps (NTP,
    manual changes) cannot make the demo's time run backwards. When ``base`` is given, real
    elapsed time is measured on that clock instead, which makes the scaling testable.
    """

    def __init__(self, start: datetime, speed: float, base: Clock | None = None) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed!r}")
        self._start = as_utc(start)
        self._speed = float(speed)
        self._base = base
        self._base_origin = as_utc(base.now()) if base is not None else None
        self._mono_origin = time.monotonic()

    @property
    def speed(self) -> float:
        return self._speed

    def _real_elapsed(self) -> timedelta:
        if self._base is not None and self._base_origin is not None:
            return as_utc(self._base.now()) - self._base_origin
        return timedelta(seconds=time.monotonic() - self._mono_origin)

    def now(self) -> datetime:
        return self._start + self._real_elapsed() * self._speed

    def __repr__(self) -> str:
        return f"ScaledClock(start={self._start.isoformat()}, speed={self._speed})"
