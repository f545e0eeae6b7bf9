"""Business-time arithmetic: properties, hand-computed DST goldens, holidays, validation."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sla.calendar import BusinessCalendar, parse_hhmm

WEEKDAYS = range(5)

NEW_YORK = BusinessCalendar(
    timezone="America/New_York", days=WEEKDAYS, start=time(9), end=time(18), holidays="US"
)
LONDON = BusinessCalendar(
    timezone="Europe/London", days=WEEKDAYS, start=time(9), end=time(18), holidays="GB"
)
# No DST, Monday-Saturday, and a day length (9h30) that is not a whole number of hours.
TOKYO = BusinessCalendar(
    timezone="Asia/Tokyo", days=range(6), start=time(10), end=time(19, 30), holidays="JP"
)
# Nearly round the clock, so every DST transition falls inside business hours.
NEW_YORK_ALL_DAY = BusinessCalendar(
    timezone="America/New_York", days=range(7), start=time(0), end=time(23, 59)
)
LONDON_ALL_DAY = BusinessCalendar(
    timezone="Europe/London", days=range(7), start=time(0), end=time(23, 59)
)

CALENDARS = [NEW_YORK, LONDON, TOKYO, NEW_YORK_ALL_DAY]
CALENDAR_IDS = ["new_york", "london", "tokyo", "new_york_all_day"]


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def ny(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A New York wall time (first occurrence if ambiguous) as a UTC instant."""
    return NEW_YORK.at_local(date(year, month, day), time(hour, minute))


def ldn(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return LONDON.at_local(date(year, month, day), time(hour, minute))


H = timedelta(hours=1)
M = timedelta(minutes=1)


# -- properties -------------------------------------------------------------------------------

instants = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
)
minutes = st.integers(min_value=0, max_value=30 * 9 * 60)
calendars = pytest.mark.parametrize("cal", CALENDARS, ids=CALENDAR_IDS)
moderate = settings(max_examples=200, deadline=None)


def reference_is_open(cal: BusinessCalendar, instant: datetime) -> bool:
    """Business hours judged from the local wall clock alone, independently of the intervals."""
    local = instant.astimezone(cal.tz)
    day = local.date()
    return cal.is_business_day(day) and cal.start <= local.time() < cal.end


@calendars
@moderate
@given(a=instants, mins=minutes)
def test_elapsed_inverts_add(cal: BusinessCalendar, a: datetime, mins: int) -> None:
    d = timedelta(minutes=mins)
    assert cal.elapsed(a, cal.add(a, d)) == d


@calendars
@moderate
@given(a=instants, m1=minutes, m2=minutes)
def test_add_is_monotonic(cal: BusinessCalendar, a: datetime, m1: int, m2: int) -> None:
    lo, hi = sorted((m1, m2))
    assert cal.add(a, timedelta(minutes=lo)) <= cal.add(a, timedelta(minutes=hi))


@calendars
@moderate
@given(a=instants, m1=minutes, m2=minutes)
def test_add_composes(cal: BusinessCalendar, a: datetime, m1: int, m2: int) -> None:
    d1, d2 = timedelta(minutes=m1), timedelta(minutes=m2)
    assert cal.add(a, d1 + d2) == cal.add(cal.add(a, d1), d2)


@calendars
@moderate
@given(points=st.lists(instants, min_size=3, max_size=3))
def test_elapsed_is_additive(cal: BusinessCalendar, points: list[datetime]) -> None:
    a, b, c = sorted(points)
    assert cal.elapsed(a, b) + cal.elapsed(b, c) == cal.elapsed(a, c)
    assert cal.elapsed(c, a) == timedelta(0)


@calendars
@moderate
@given(a=instants, mins=st.integers(min_value=1, max_value=30 * 9 * 60))
def test_add_lands_in_hours_or_on_a_close(cal: BusinessCalendar, a: datetime, mins: int) -> None:
    end = cal.add(a, timedelta(minutes=mins))
    assert end > a
    assert end.tzinfo is UTC
    tick = timedelta(microseconds=1)
    at_close = cal.is_open(end - tick) and not cal.is_open(end)
    assert cal.is_open(end) or at_close


@calendars
@moderate
@given(a=instants)
def test_next_open(cal: BusinessCalendar, a: datetime) -> None:
    opening = cal.next_open(a)
    assert opening >= a
    assert cal.is_open(opening)
    assert cal.elapsed(a, opening) == timedelta(0)
    assert (opening == a) == cal.is_open(a)


@calendars
@moderate
@given(a=instants)
def test_is_open_matches_the_local_wall_clock(cal: BusinessCalendar, a: datetime) -> None:
    assert cal.is_open(a) == reference_is_open(cal, a)


@calendars
@settings(max_examples=25, deadline=None)
@given(
    a=instants.map(lambda x: x.replace(second=0, microsecond=0)),
    span=st.integers(min_value=0, max_value=4 * 24 * 60),
)
def test_elapsed_matches_a_minute_by_minute_count(
    cal: BusinessCalendar, a: datetime, span: int
) -> None:
    # Every calendar here opens and closes on whole minutes, so counting open minutes is exact.
    counted = sum(reference_is_open(cal, a + i * M) for i in range(span))
    assert cal.elapsed(a, a + span * M) == counted * M


# -- DST goldens (hand-computed) ---------------------------------------------------------------
# New York: EST (UTC-5) until 2026-03-08 07:00Z, EDT (UTC-4) until 2026-11-01 06:00Z.
# London: GMT until 2026-03-29 01:00Z, BST (UTC+1) until 2026-10-25 01:00Z.


def test_new_york_spring_forward_weekend() -> None:
    # Fri 17:30 EST = 22:30Z; 30 min on Friday, 90 min from Mon 09:00 EDT (13:00Z).
    start = utc(2026, 3, 6, 22, 30)
    assert ny(2026, 3, 6, 17, 30) == start
    assert NEW_YORK.add(start, 2 * H) == utc(2026, 3, 9, 14, 30)


def test_new_york_fall_back_weekend() -> None:
    # Fri 17:00 EDT = 21:00Z; 1h on Friday, 1h from Mon 09:00 EST (14:00Z).
    start = utc(2026, 10, 30, 21, 0)
    assert ny(2026, 10, 30, 17) == start
    assert NEW_YORK.add(start, 2 * H) == utc(2026, 11, 2, 15, 0)


def test_london_spring_forward_weekend() -> None:
    # Fri 17:00 GMT = 17:00Z; 1h on Friday, 1h from Mon 09:00 BST (08:00Z).
    start = utc(2026, 3, 27, 17, 0)
    assert ldn(2026, 3, 27, 17) == start
    assert LONDON.add(start, 2 * H) == utc(2026, 3, 30, 9, 0)


def test_london_fall_back_weekend() -> None:
    # Fri 17:30 BST = 16:30Z; 30 min on Friday, 30 min from Mon 09:00 GMT (09:00Z).
    start = utc(2026, 10, 23, 16, 30)
    assert ldn(2026, 10, 23, 17, 30) == start
    assert LONDON.add(start, H) == utc(2026, 10, 26, 9, 30)


def test_elapsed_across_the_spring_forward_weekend() -> None:
    # Fri 12:00 EST (17:00Z) .. Mon 12:00 EDT (16:00Z): 6h on Friday + 3h on Monday.
    assert NEW_YORK.elapsed(utc(2026, 3, 6, 17), utc(2026, 3, 9, 16)) == 9 * H


def test_open_intervals_either_side_of_a_transition() -> None:
    assert NEW_YORK.open_interval(date(2026, 3, 6)) == (utc(2026, 3, 6, 14), utc(2026, 3, 6, 23))
    assert NEW_YORK.open_interval(date(2026, 3, 9)) == (utc(2026, 3, 9, 13), utc(2026, 3, 9, 22))
    assert NEW_YORK.open_interval(date(2026, 3, 7)) is None
    assert LONDON.open_interval(date(2026, 3, 30)) == (utc(2026, 3, 30, 8), utc(2026, 3, 30, 17))
    assert LONDON.open_interval(date(2026, 10, 26)) == (
        utc(2026, 10, 26, 9),
        utc(2026, 10, 26, 18),
    )


@pytest.mark.parametrize(
    ("cal", "day", "expected"),
    [
        # A normal day is 23h59m open; the spring-forward day one hour less, fall-back one more.
        (NEW_YORK_ALL_DAY, date(2026, 3, 7), timedelta(hours=23, minutes=59)),
        (NEW_YORK_ALL_DAY, date(2026, 3, 8), timedelta(hours=22, minutes=59)),
        (NEW_YORK_ALL_DAY, date(2026, 11, 1), timedelta(hours=24, minutes=59)),
        (LONDON_ALL_DAY, date(2026, 3, 28), timedelta(hours=23, minutes=59)),
        (LONDON_ALL_DAY, date(2026, 3, 29), timedelta(hours=22, minutes=59)),
        (LONDON_ALL_DAY, date(2026, 10, 25), timedelta(hours=24, minutes=59)),
    ],
)
def test_dst_days_are_shorter_and_longer(
    cal: BusinessCalendar, day: date, expected: timedelta
) -> None:
    assert cal.elapsed(*cal.day_bounds(day)) == expected
    assert cal.day_length == timedelta(hours=23, minutes=59)


def test_all_day_intervals_on_dst_days() -> None:
    # 00:00 EST = 05:00Z .. 23:59 EDT = 03:59Z next day.
    assert NEW_YORK_ALL_DAY.open_interval(date(2026, 3, 8)) == (
        utc(2026, 3, 8, 5),
        utc(2026, 3, 9, 3, 59),
    )
    # 00:00 EDT = 04:00Z .. 23:59 EST = 04:59Z next day.
    assert NEW_YORK_ALL_DAY.open_interval(date(2026, 11, 1)) == (
        utc(2026, 11, 1, 4),
        utc(2026, 11, 2, 4, 59),
    )
    # 00:00 BST = 23:00Z the day before .. 23:59 GMT = 23:59Z.
    assert LONDON_ALL_DAY.open_interval(date(2026, 10, 25)) == (
        utc(2026, 10, 24, 23),
        utc(2026, 10, 25, 23, 59),
    )


def test_hours_straddling_the_transition() -> None:
    cal = BusinessCalendar(timezone="America/New_York", days=range(7), start=time(1), end=time(4))
    # 01:00 EST = 06:00Z .. 04:00 EDT = 08:00Z: only two real hours.
    assert cal.open_interval(date(2026, 3, 8)) == (utc(2026, 3, 8, 6), utc(2026, 3, 8, 8))
    assert cal.add(utc(2026, 3, 8, 6), 2 * H) == utc(2026, 3, 8, 8)
    assert cal.add(utc(2026, 3, 8, 6), 3 * H) == utc(2026, 3, 9, 6)  # 01:00 EDT = 05:00Z + 1h
    # 01:00 EDT (first occurrence) = 05:00Z .. 04:00 EST = 09:00Z: four real hours.
    assert cal.open_interval(date(2026, 11, 1)) == (utc(2026, 11, 1, 5), utc(2026, 11, 1, 9))
    assert cal.day_length == 3 * H


def test_opening_inside_the_spring_forward_gap_opens_when_the_gap_ends() -> None:
    cal = BusinessCalendar(
        timezone="America/New_York", days=range(7), start=time(2, 30), end=time(10)
    )
    # 02:30 does not exist on 2026-03-08: open at 03:00 EDT = 07:00Z; close 10:00 EDT = 14:00Z.
    assert cal.open_interval(date(2026, 3, 8)) == (utc(2026, 3, 8, 7), utc(2026, 3, 8, 14))
    assert cal.open_interval(date(2026, 3, 7)) == (utc(2026, 3, 7, 7, 30), utc(2026, 3, 7, 15))


def test_hours_entirely_inside_the_gap_mean_closed() -> None:
    cal = BusinessCalendar(
        timezone="America/New_York", days=range(7), start=time(2, 10), end=time(2, 50)
    )
    assert cal.open_interval(date(2026, 3, 8)) is None
    assert cal.next_open(utc(2026, 3, 8, 0)) == utc(2026, 3, 9, 6, 10)  # 02:10 EDT


@pytest.mark.parametrize(
    ("cal", "day", "wall", "expected"),
    [
        (NEW_YORK, date(2026, 3, 8), time(2, 30), utc(2026, 3, 8, 7)),  # gap -> its end
        (LONDON, date(2026, 3, 29), time(1, 30), utc(2026, 3, 29, 1)),  # gap -> its end
        (NEW_YORK, date(2026, 11, 1), time(1, 30), utc(2026, 11, 1, 5, 30)),  # EDT, first
        (LONDON, date(2026, 10, 25), time(1, 30), utc(2026, 10, 25, 0, 30)),  # BST, first
        (NEW_YORK, date(2026, 11, 1), time(2, 0), utc(2026, 11, 1, 7)),  # after the fold: EST
        (TOKYO, date(2026, 3, 8), time(2, 30), utc(2026, 3, 7, 17, 30)),
    ],
)
def test_at_local(cal: BusinessCalendar, day: date, wall: time, expected: datetime) -> None:
    assert cal.at_local(day, wall) == expected
    assert cal.at_local(day, wall.replace(fold=1)) == expected  # fold is ignored


def test_midnight_transition_zone() -> None:
    # Havana springs forward at 00:00 CST (05:00Z), so 2026-03-08 starts at 01:00 CDT, and falls
    # back at 01:00 CDT (05:00Z) to 00:00 CST, so 2026-11-01 starts at the first 00:00 (04:00Z).
    cal = BusinessCalendar(timezone="America/Havana", days=range(7), start=time(0), end=time(12))
    assert cal.day_bounds(date(2026, 3, 8)) == (utc(2026, 3, 8, 5), utc(2026, 3, 9, 4))
    assert cal.open_interval(date(2026, 3, 8)) == (utc(2026, 3, 8, 5), utc(2026, 3, 8, 16))
    assert cal.day_bounds(date(2026, 11, 1)) == (utc(2026, 11, 1, 4), utc(2026, 11, 2, 5))
    assert cal.open_interval(date(2026, 11, 1)) == (utc(2026, 11, 1, 4), utc(2026, 11, 1, 17))


# -- bounds --------------------------------------------------------------------------------------


def test_month_bounds_november_new_york() -> None:
    # Local midnight 2026-11-01 is still EDT (04:00Z; the fall-back is at 06:00Z);
    # local midnight 2026-12-01 is EST (05:00Z).
    for inside in (utc(2026, 11, 1, 4), utc(2026, 11, 15, 12), utc(2026, 12, 1, 4, 59)):
        assert NEW_YORK.month_bounds(inside) == (utc(2026, 11, 1, 4), utc(2026, 12, 1, 5))
    assert NEW_YORK.month_bounds(utc(2026, 11, 1, 3, 59)) == (
        utc(2026, 10, 1, 4),
        utc(2026, 11, 1, 4),
    )


def test_month_bounds_across_spring_forward_and_year_end() -> None:
    assert NEW_YORK.month_bounds(utc(2026, 3, 20)) == (utc(2026, 3, 1, 5), utc(2026, 4, 1, 4))
    assert NEW_YORK.month_bounds(utc(2026, 12, 31, 12)) == (utc(2026, 12, 1, 5), utc(2027, 1, 1, 5))
    assert LONDON.month_bounds(utc(2026, 10, 31, 23, 30)) == (
        utc(2026, 9, 30, 23),
        utc(2026, 11, 1, 0),
    )


def test_week_bounds_over_spring_forward() -> None:
    # Sun 2026-03-08 08:00 EDT: Mon 03-02 00:00 EST (05:00Z) .. Mon 03-09 00:00 EDT (04:00Z).
    bounds = NEW_YORK.week_bounds(utc(2026, 3, 8, 12))
    assert bounds == (utc(2026, 3, 2, 5), utc(2026, 3, 9, 4))
    assert bounds[1] - bounds[0] == timedelta(hours=167)
    # Monday 00:00 local exactly belongs to the week it starts.
    assert NEW_YORK.week_bounds(utc(2026, 3, 9, 4))[0] == utc(2026, 3, 9, 4)


def test_day_bounds_on_dst_days() -> None:
    assert NEW_YORK.day_bounds(date(2026, 3, 8)) == (utc(2026, 3, 8, 5), utc(2026, 3, 9, 4))
    assert NEW_YORK.day_bounds(date(2026, 11, 1)) == (utc(2026, 11, 1, 4), utc(2026, 11, 2, 5))


def test_local_and_local_date() -> None:
    instant = utc(2026, 11, 1, 3, 59)  # 23:59 EDT on Oct 31
    assert NEW_YORK.local_date(instant) == date(2026, 10, 31)
    local = NEW_YORK.local(instant)
    assert local.tzinfo == ZoneInfo("America/New_York")
    assert (local.hour, local.minute) == (23, 59)
    assert NEW_YORK.local_date(utc(2026, 11, 1, 4)) == date(2026, 11, 1)


# -- holidays ------------------------------------------------------------------------------------


def test_thanksgiving_is_closed() -> None:
    assert not NEW_YORK.is_business_day(date(2026, 11, 26))
    assert NEW_YORK.open_interval(date(2026, 11, 26)) is None
    assert NEW_YORK.holiday_name(date(2026, 11, 26)) == "Thanksgiving Day"
    assert NEW_YORK.holiday_name(date(2026, 11, 25)) is None
    # Wed 17:00 EST = 22:00Z; 1h on Wednesday, Thursday closed, 1h from Fri 09:00 EST (14:00Z).
    assert ny(2026, 11, 25, 17) == utc(2026, 11, 25, 22)
    assert NEW_YORK.add(utc(2026, 11, 25, 22), 2 * H) == utc(2026, 11, 27, 15)
    assert ny(2026, 11, 27, 10) == utc(2026, 11, 27, 15)


def test_christmas_is_closed() -> None:
    assert not NEW_YORK.is_business_day(date(2026, 12, 25))
    assert not LONDON.is_business_day(date(2026, 12, 25))
    # Thu 12-24 17:00 EST (22:00Z) + 2h: Fri is Christmas, Mon 12-28 09:00 EST (14:00Z) + 1h.
    assert NEW_YORK.add(utc(2026, 12, 24, 22), 2 * H) == utc(2026, 12, 28, 15)
    # London also closes Mon 12-28 (Boxing Day observed): Tue 12-29 09:00 GMT + 1h.
    assert LONDON.add(utc(2026, 12, 24, 17), 2 * H) == utc(2026, 12, 29, 10)


def test_holidays_of_other_years_are_computed_on_demand() -> None:
    assert NEW_YORK.holiday_name(date(2027, 7, 5)) == "Independence Day (observed)"
    assert not NEW_YORK.is_business_day(date(2030, 12, 25))


def test_explicit_holiday_dates() -> None:
    cal = BusinessCalendar(
        timezone="America/New_York",
        days=WEEKDAYS,
        start=time(9),
        end=time(18),
        holidays=[date(2026, 1, 13)],
    )
    assert not cal.is_business_day(date(2026, 1, 13))
    assert cal.holiday_name(date(2026, 1, 13)) == "Holiday"
    assert cal.is_business_day(date(2026, 11, 26))  # no country: Thanksgiving is a workday
    # Mon 01-12 17:00 EST (22:00Z) + 2h: Tuesday closed, Wed 09:00 EST (14:00Z) + 1h.
    assert cal.add(utc(2026, 1, 12, 22), 2 * H) == utc(2026, 1, 14, 15)


def test_explicit_holidays_with_names() -> None:
    cal = BusinessCalendar(
        timezone="Europe/London",
        days=WEEKDAYS,
        start=time(9),
        end=time(18),
        holidays={date(2026, 6, 1): "Company day"},
    )
    assert cal.holiday_name(date(2026, 6, 1)) == "Company day"


def test_subdivision_holidays() -> None:
    scotland = BusinessCalendar(
        timezone="Europe/London",
        days=WEEKDAYS,
        start=time(9),
        end=time(18),
        holidays="gb",
        subdivision="SCT",
    )
    assert scotland.country == "GB"
    assert not scotland.is_business_day(date(2026, 11, 30))  # St Andrew's Day
    assert LONDON.is_business_day(date(2026, 11, 30))


@pytest.mark.parametrize(
    ("holidays", "subdivision", "message"),
    [
        ("XX", None, "unknown holiday country code 'XX'"),
        ("US", "ZZ", "unknown holiday subdivision 'ZZ'"),
        ([date(2026, 1, 1)], "CA", "needs a country code"),
    ],
)
def test_bad_holiday_specs(
    holidays: str | list[date], subdivision: str | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        BusinessCalendar(
            timezone="UTC",
            days=WEEKDAYS,
            start=time(9),
            end=time(18),
            holidays=holidays,
            subdivision=subdivision,
        )


def test_holiday_datetimes_are_refused() -> None:
    with pytest.raises(TypeError):
        BusinessCalendar(
            timezone="UTC",
            days=WEEKDAYS,
            start=time(9),
            end=time(18),
            holidays=[datetime(2026, 1, 1, tzinfo=UTC)],
        )


# -- everyday cases -----------------------------------------------------------------------------


def test_late_friday_rolls_to_monday() -> None:
    # Fri 2026-01-09 17:55 EST (22:55Z) + 30 min: 5 min Friday, 25 min Monday -> 09:25 EST.
    assert NEW_YORK.add(ny(2026, 1, 9, 17, 55), 30 * M) == utc(2026, 1, 12, 14, 25)
    assert NEW_YORK.add(utc(2026, 1, 9, 22, 55), 30 * M) == ny(2026, 1, 12, 9, 25)


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        (utc(2026, 1, 10, 17), utc(2026, 1, 12, 15)),  # Saturday noon -> Mon 10:00 EST
        (utc(2026, 1, 13, 12), utc(2026, 1, 13, 15)),  # Tue 07:00 -> Tue 10:00 EST
        (utc(2026, 1, 14, 0), utc(2026, 1, 14, 15)),  # Tue 19:00 EST -> Wed 10:00 EST
        (utc(2026, 1, 13, 14), utc(2026, 1, 13, 15)),  # exactly at opening
        (utc(2026, 1, 13, 23), utc(2026, 1, 14, 15)),  # exactly at close: closed
    ],
)
def test_start_outside_hours_waits_for_the_opening(start: datetime, expected: datetime) -> None:
    assert NEW_YORK.add(start, H) == expected


def test_ending_exactly_at_close_returns_the_close() -> None:
    close = utc(2026, 1, 13, 23)  # Tue 18:00 EST
    assert NEW_YORK.add(utc(2026, 1, 13, 22), H) == close
    assert NEW_YORK.add(utc(2026, 1, 13, 14), NEW_YORK.day_length) == close
    assert NEW_YORK.add(utc(2026, 1, 13, 13), NEW_YORK.day_length) == close  # from 08:00
    assert not NEW_YORK.is_open(close)
    assert NEW_YORK.is_open(close - timedelta(microseconds=1))


def test_zero_duration_returns_start_unchanged() -> None:
    saturday = utc(2026, 1, 10, 17)
    assert NEW_YORK.add(saturday, timedelta(0)) == saturday
    assert NEW_YORK.next_open(saturday) == utc(2026, 1, 12, 14)


def test_long_durations() -> None:
    # 10 business days from Mon 2026-01-05 09:00 EST: Mon 01-19 is MLK day, so Tue 01-20 09:00.
    # Ending exactly at a close returns Fri 01-16 18:00, not the next morning.
    start = utc(2026, 1, 5, 14)
    assert NEW_YORK.add(start, 10 * NEW_YORK.day_length) == utc(2026, 1, 16, 23)
    assert NEW_YORK.add(start, 10 * NEW_YORK.day_length + M) == utc(2026, 1, 20, 14, 1)


def test_elapsed_basics() -> None:
    tue_open = utc(2026, 1, 13, 14)
    assert NEW_YORK.elapsed(tue_open, tue_open) == timedelta(0)
    assert NEW_YORK.elapsed(tue_open + H, tue_open) == timedelta(0)
    assert NEW_YORK.elapsed(utc(2026, 1, 13), utc(2026, 1, 15)) == 18 * H
    # A whole month: 20 business days in January 2026 (New Year's Day and MLK day off).
    assert NEW_YORK.elapsed(*NEW_YORK.month_bounds(tue_open)) == 20 * 9 * H


def test_aware_non_utc_input_is_accepted() -> None:
    eastern = timezone(timedelta(hours=-5))
    start = datetime(2026, 1, 9, 17, 55, tzinfo=eastern)
    result = NEW_YORK.add(start, 30 * M)
    assert result == utc(2026, 1, 12, 14, 25)
    assert result.tzinfo is UTC
    assert NEW_YORK.is_open(datetime(2026, 1, 13, 10, tzinfo=ZoneInfo("America/New_York")))


def test_tokyo_saturday_is_a_business_day() -> None:
    # Sat 2026-01-10 19:00 JST (10:00Z) + 1h: 30 min Saturday, Sunday closed, 30 min Monday.
    # Mon 2026-01-12 is Coming of Age Day in Japan, so Tue 01-13 10:30 JST = 01:30Z.
    assert TOKYO.add(utc(2026, 1, 10, 10), H) == utc(2026, 1, 13, 1, 30)
    assert TOKYO.day_length == timedelta(hours=9, minutes=30)


# -- validation ----------------------------------------------------------------------------------

NAIVE = datetime(2026, 1, 13, 12)


@pytest.mark.parametrize(
    "call",
    [
        lambda: NEW_YORK.add(NAIVE, H),
        lambda: NEW_YORK.elapsed(NAIVE, utc(2026, 1, 14)),
        lambda: NEW_YORK.elapsed(utc(2026, 1, 12), NAIVE),
        lambda: NEW_YORK.is_open(NAIVE),
        lambda: NEW_YORK.next_open(NAIVE),
        lambda: NEW_YORK.local(NAIVE),
        lambda: NEW_YORK.local_date(NAIVE),
        lambda: NEW_YORK.month_bounds(NAIVE),
        lambda: NEW_YORK.week_bounds(NAIVE),
    ],
)
def test_naive_datetimes_are_refused(call: object) -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        call()  # type: ignore[operator]


def test_negative_duration_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        NEW_YORK.add(utc(2026, 1, 13, 15), -M)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timezone": "Mars/Olympus_Mons"}, "unknown time zone"),
        ({"timezone": ""}, "unknown time zone"),
        ({"start": time(18), "end": time(9)}, "start before"),
        ({"start": time(9), "end": time(9)}, "start before"),
        ({"days": []}, "at least one business day"),
        ({"days": [7]}, "weekday numbers"),
        ({"start": time(9, tzinfo=UTC)}, "naive"),
    ],
)
def test_bad_calendars(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {
        "timezone": "UTC",
        "days": WEEKDAYS,
        "start": time(9),
        "end": time(18),
    }
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        BusinessCalendar(**arguments)  # type: ignore[arg-type]


def test_a_calendar_that_never_opens_fails_loudly() -> None:
    cal = BusinessCalendar(
        timezone="UTC",
        days=[0],
        start=time(9),
        end=time(18),
        holidays=[date(2026, 1, 5) + timedelta(weeks=w) for w in range(600)],
    )
    with pytest.raises(ValueError, match="no business hours"):
        cal.next_open(utc(2026, 1, 1))
    with pytest.raises(ValueError, match="no business hours"):
        cal.add(utc(2026, 1, 1), H)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("09:00", time(9)), ("18:30", time(18, 30)), ("0:05", time(0, 5)), (" 23:59 ", time(23, 59))],
)
def test_parse_hhmm(text: str, expected: time) -> None:
    assert parse_hhmm(text) == expected


@pytest.mark.parametrize("text", ["25:00", "24:00", "9am", "09:60", "0900", "09:0", "", "9:00:00"])
def test_parse_hhmm_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid time"):
        parse_hhmm(text)
