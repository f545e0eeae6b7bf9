"""Clocks: always aware UTC, naive datetimes refused, fixed and scaled time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from sla.clock import Clock, FixedClock, ScaledClock, SystemClock, as_utc

AT = datetime(2026, 3, 6, 22, 30, tzinfo=UTC)
NAIVE = datetime(2026, 3, 6, 22, 30)


def test_as_utc() -> None:
    assert as_utc(AT) is AT
    converted = as_utc(datetime(2026, 3, 6, 17, 30, tzinfo=ZoneInfo("America/New_York")))
    assert converted == AT
    assert converted.tzinfo is UTC
    assert as_utc(datetime(2026, 3, 6, 22, 30, tzinfo=timezone(timedelta(0)))).tzinfo is UTC
    with pytest.raises(ValueError, match="naive datetime"):
        as_utc(NAIVE)


def test_system_clock_is_aware_utc() -> None:
    now = SystemClock().now()
    assert now.tzinfo is UTC
    assert abs(now - datetime.now(UTC)) < timedelta(seconds=5)


def test_fixed_clock() -> None:
    clock = FixedClock(datetime(2026, 3, 6, 17, 30, tzinfo=ZoneInfo("America/New_York")))
    assert isinstance(clock, Clock)
    assert clock.now() == AT
    assert clock.now().tzinfo is UTC
    clock.advance(timedelta(hours=2))
    assert clock.now() == AT + timedelta(hours=2)
    clock.set(AT)
    assert clock.now() == AT
    with pytest.raises(ValueError, match="naive datetime"):
        FixedClock(NAIVE)
    with pytest.raises(ValueError, match="naive datetime"):
        clock.set(NAIVE)


def test_scaled_clock_on_a_base_clock() -> None:
    base = FixedClock(datetime(2030, 1, 1, tzinfo=UTC))
    clock = ScaledClock(AT, speed=60, base=base)
    assert clock.now() == AT
    base.advance(timedelta(minutes=1))
    assert clock.now() == AT + timedelta(hours=1)
    base.advance(timedelta(seconds=30))
    assert clock.now() == AT + timedelta(hours=1, minutes=30)
    assert clock.now().tzinfo is UTC


def test_scaled_clock_on_the_monotonic_clock() -> None:
    clock = ScaledClock(AT, speed=1000)
    first = clock.now()
    assert AT <= first < AT + timedelta(hours=1)
    assert clock.now() >= first
    assert first.tzinfo is UTC


@pytest.mark.parametrize("speed", [0, -1.0, float("nan")])
def test_scaled_clock_rejects_bad_speeds(speed: float) -> None:
    with pytest.raises(ValueError, match="speed"):
        ScaledClock(AT, speed=speed)


def test_scaled_clock_rejects_naive_start() -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        ScaledClock(NAIVE, speed=10)
