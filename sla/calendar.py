"""Business time: an agreement's working days and hours in its time zone, minus holidays."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from types import MappingProxyType
from typing import Final, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_lib

from sla.clock import as_utc

__all__ = ["BusinessCalendar", "HolidaySpec", "parse_hhmm"]

HolidaySpec: TypeAlias = str | Iterable[date] | None
"""An ISO country code (``"US"``), explicit dates (a mapping date -> name also works), or None."""

_ZERO: Final = timedelta(0)
_ONE_DAY: Final = timedelta(days=1)
_MIDNIGHT: Final = time(0)
# A calendar that stays shut this long is misconfigured; without a bound, a lookup for the
# next opening would loop forever instead of failing loudly.
_MAX_CLOSED_DAYS: Final = 3660
_HHMM: Final = re.compile(r"([0-9]{1,2}):([0-9]{2})")
_EXPLICIT_HOLIDAY_NAME: Final = "Holiday"

_Interval: TypeAlias = tuple[datetime, datetime]


def parse_hhmm(s: str) -> time:
    """Parse a 24-hour ``"HH:MM"`` wall time, e.g. ``"09:00"`` -> ``time(9, 0)``."""
    match = _HHMM.fullmatch(s.strip()) if isinstance(s, str) else None
    if match is None:
        raise ValueError(f"invalid time {s!r}: expected 24-hour HH:MM, e.g. '09:00' or '18:30'")
    hours, minutes = int(match.group(1)), int(match.group(2))
    if hours > 23 or minutes > 59:
        raise ValueError(f"invalid time {s!r}: hours must be 00-23 and minutes 00-59")
    return time(hours, minutes)


class BusinessCalendar:
    """The business days and hours of one agreement, in its IANA time zone, minus holidays.

    Every instant going in or out is a timezone-aware UTC datetime (aware datetimes in other
    zones are accepted and converted; naive ones raise ``ValueError``). Each local calendar
    day's open hours are turned into a pair of UTC instants once, and all arithmetic is done
    on those instants, so DST changes need no special cases: a day whose hours straddle a
    transition is simply an hour shorter or longer.
    """

    def __init__(
        self,
        *,
        timezone: str,
        days: Iterable[int],
        start: time,
        end: time,
        holidays: HolidaySpec = None,
        subdivision: str | None = None,
    ) -> None:
        self._tz = _load_zone(timezone)
        self._timezone = timezone
        self._days = frozenset(_check_weekday(d) for d in days)
        if not self._days:
            raise ValueError("a business calendar needs at least one business day")
        if start.tzinfo is not None or end.tzinfo is not None:
            raise ValueError("business hours are local wall times: start and end must be naive")
        if not start < end:
            raise ValueError(f"business hours must start before they end, got {start}-{end}")
        self._start = start.replace(fold=0)
        self._end = end.replace(fold=0)
        self._day_length = datetime.combine(date.min, end) - datetime.combine(date.min, start)

        self._country: str | None = None
        self._subdivision: str | None = None
        self._fixed_holidays: dict[date, str] = {}
        if isinstance(holidays, str):
            self._country, self._subdivision = _check_country(holidays, subdivision)
        else:
            if subdivision is not None:
                raise ValueError("a holiday subdivision needs a country code for holidays")
            if holidays is not None:
                self._fixed_holidays = _explicit_holidays(holidays)

        # The cache only ever gains deterministic entries, so a race between threads at worst
        # computes an entry twice; no lock is needed.
        self._intervals: dict[date, _Interval | None] = {}

    # -- configuration -------------------------------------------------------------------

    @property
    def tz(self) -> ZoneInfo:
        return self._tz

    @property
    def timezone(self) -> str:
        return self._timezone

    @property
    def days(self) -> frozenset[int]:
        return self._days

    @property
    def start(self) -> time:
        return self._start

    @property
    def end(self) -> time:
        return self._end

    @property
    def country(self) -> str | None:
        return self._country

    @property
    def subdivision(self) -> str | None:
        return self._subdivision

    @property
    def day_length(self) -> timedelta:
        """The nominal length of one business day (``end - start``): what ``1d`` means.

        On a DST-change day whose hours contain the transition the real open interval is
        shorter or longer; arithmetic always uses the real one.
        """
        return self._day_length

    def __repr__(self) -> str:
        fixed = f"{len(self._fixed_holidays)} dates" if self._fixed_holidays else None
        holidays = self._country or fixed
        return (
            f"BusinessCalendar(timezone={self._timezone!r}, days={sorted(self._days)}, "
            f"start={self._start.isoformat()}, end={self._end.isoformat()}, "
            f"holidays={holidays!r}, subdivision={self._subdivision!r})"
        )

    # -- days ------------------------------------------------------------------------------

    def holiday_name(self, day: date) -> str | None:
        """The holiday's name if ``day`` (a local date) is a holiday, else None."""
        if self._country is None:
            return self._fixed_holidays.get(day)
        return _country_year(self._country, self._subdivision, day.year).get(day)

    def is_business_day(self, day: date) -> bool:
        return day.weekday() in self._days and self.holiday_name(day) is None

    def open_interval(self, day: date) -> tuple[datetime, datetime] | None:
        """UTC instants ``[open, close)`` of the local date's business hours; None if closed."""
        try:
            return self._intervals[day]
        except KeyError:
            pass
        interval: _Interval | None = None
        if self.is_business_day(day):
            opens, closes = self.at_local(day, self._start), self.at_local(day, self._end)
            # Hours that fall entirely inside a spring-forward gap collapse to nothing.
            if opens < closes:
                interval = (opens, closes)
        self._intervals[day] = interval
        return interval

    # -- instants --------------------------------------------------------------------------

    def is_open(self, instant: datetime) -> bool:
        """Whether business hours are running at ``instant`` (open inclusive, close exclusive)."""
        instant = as_utc(instant)
        interval = self.open_interval(self._date_of(instant))
        return interval is not None and interval[0] <= instant < interval[1]

    def next_open(self, instant: datetime) -> datetime:
        """``instant`` itself if open, else the next instant business hours start."""
        instant = as_utc(instant)
        day = self._date_of(instant)
        for _ in range(_MAX_CLOSED_DAYS):
            interval = self.open_interval(day)
            if interval is not None and instant < interval[1]:
                return max(instant, interval[0])
            day += _ONE_DAY
        raise self._never_open(instant)

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The instant at which ``duration`` of business time has passed since ``start``.

        Outside business hours the clock starts at the next opening. A zero duration returns
        ``start`` unchanged (even when closed), so ``add`` is the identity at 0 and
        ``add(a, d1 + d2) == add(add(a, d1), d2)`` holds for every split. A duration that
        runs out exactly at a close returns that close, not the next opening.
        Cost is one cached lookup per calendar day spanned.
        """
        start = as_utc(start)
        if duration < _ZERO:
            raise ValueError(f"business duration must not be negative, got {duration}")
        if not duration:
            return start
        remaining = duration
        day = self._date_of(start)
        closed_run = 0
        while True:
            interval = self.open_interval(day)
            if interval is None:
                closed_run += 1
                if closed_run > _MAX_CLOSED_DAYS:
                    raise self._never_open(start)
            else:
                opens, closes = interval
                if start < closes:
                    closed_run = 0
                    begin = max(start, opens)
                    available = closes - begin
                    if remaining <= available:
                        return begin + remaining
                    remaining -= available
            day += _ONE_DAY

    def elapsed(self, a: datetime, b: datetime) -> timedelta:
        """Business time in ``[a, b)``; zero if ``b <= a``."""
        a, b = as_utc(a), as_utc(b)
        if b <= a:
            return _ZERO
        total = _ZERO
        day, last = self._date_of(a), self._date_of(b)
        while day <= last:
            interval = self.open_interval(day)
            if interval is not None:
                opens, closes = interval
                lo = max(a, opens)
                hi = min(b, closes)
                if hi > lo:
                    total += hi - lo
            day += _ONE_DAY
        return total

    # -- local time ------------------------------------------------------------------------

    def local(self, instant: datetime) -> datetime:
        """``instant`` as an aware datetime in the calendar's zone."""
        return as_utc(instant).astimezone(self._tz)

    def local_date(self, instant: datetime) -> date:
        return self._date_of(as_utc(instant))

    def at_local(self, day: date, t: time) -> datetime:
        """The UTC instant of local wall time ``t`` on ``day``.

        A wall time skipped by a spring-forward gap maps to the first instant after the gap
        (the transition itself); an ambiguous fall-back time maps to its first occurrence.
        ``t.fold`` is ignored so that the rule is the same whatever the caller passes.
        """
        if t.tzinfo is not None:
            raise ValueError("at_local takes a naive wall time")
        naive = datetime.combine(day, t).replace(fold=0)
        instant = naive.replace(tzinfo=self._tz).astimezone(UTC)
        if instant.astimezone(self._tz).replace(tzinfo=None) == naive:
            return instant
        return self._gap_end(naive)

    def day_bounds(self, day: date) -> tuple[datetime, datetime]:
        """UTC instants of local midnight on ``day`` and on the following day."""
        return self.at_local(day, _MIDNIGHT), self.at_local(day + _ONE_DAY, _MIDNIGHT)

    def week_bounds(self, instant: datetime) -> tuple[datetime, datetime]:
        """The local week (Monday 00:00 to next Monday 00:00) containing ``instant``, in UTC."""
        day = self.local_date(instant)
        monday = day - timedelta(days=day.weekday())
        return self.at_local(monday, _MIDNIGHT), self.at_local(monday + 7 * _ONE_DAY, _MIDNIGHT)

    def month_bounds(self, instant: datetime) -> tuple[datetime, datetime]:
        """The local calendar month containing ``instant``: local midnights on the 1sts, in UTC."""
        first = self.local_date(instant).replace(day=1)
        following = (first + 31 * _ONE_DAY).replace(day=1)
        return self.at_local(first, _MIDNIGHT), self.at_local(following, _MIDNIGHT)

    # -- internals -------------------------------------------------------------------------

    def _date_of(self, instant_utc: datetime) -> date:
        return instant_utc.astimezone(self._tz).date()

    def _gap_end(self, naive: datetime) -> datetime:
        """The transition instant that ends the gap containing the nonexistent ``naive``."""
        # Per PEP 495, fold=1 resolves a gap time with the offset after the transition (an
        # instant before it) and fold=0 with the offset before (an instant after it). zoneinfo
        # has no public transition list, so bisect between the two; tzdata transitions fall on
        # whole seconds.
        before = naive.replace(tzinfo=self._tz, fold=1).astimezone(UTC)
        after = naive.replace(tzinfo=self._tz, fold=0).astimezone(UTC)
        lo, hi = int(before.timestamp()), -int(-after.timestamp() // 1)
        offset_before = self._offset_at(lo)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self._offset_at(mid) == offset_before:
                lo = mid
            else:
                hi = mid
        return datetime.fromtimestamp(hi, UTC)

    def _offset_at(self, timestamp: int) -> timedelta | None:
        return datetime.fromtimestamp(timestamp, self._tz).utcoffset()

    def _never_open(self, instant: datetime) -> ValueError:
        return ValueError(
            f"{self!r} has no business hours within {_MAX_CLOSED_DAYS} days of {instant}"
        )


def _load_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise ValueError(
            f"unknown time zone {name!r}: expected an IANA name such as 'America/New_York'"
        ) from exc


def _check_weekday(day: int) -> int:
    if isinstance(day, bool) or not isinstance(day, int) or not 0 <= day <= 6:
        raise ValueError(f"business days are weekday numbers 0 (Monday) to 6 (Sunday), got {day!r}")
    return day


# Module-level caches, shared by every calendar: the agreement may be reloaded (and its
# calendar rebuilt) often, and the package takes a few hundred microseconds per country-year.
# Per year because the package computes whole years and a calendar rarely touches more than two.
@lru_cache(maxsize=256)
def _country_year(country: str, subdivision: str | None, year: int) -> Mapping[date, str]:
    computed = holidays_lib.country_holidays(country, subdiv=subdivision, years=year)
    return MappingProxyType(dict(computed))


@lru_cache(maxsize=64)
def _check_country(code: str, subdivision: str | None) -> tuple[str, str | None]:
    country = code.strip().upper()
    try:
        holidays_lib.country_holidays(country)
    except NotImplementedError as exc:
        raise ValueError(
            f"unknown holiday country code {code!r}: expected an ISO 3166-1 alpha-2 code "
            "supported by the 'holidays' package, such as 'US' or 'GB'"
        ) from exc
    if subdivision is not None:
        try:
            holidays_lib.country_holidays(country, subdiv=subdivision)
        except NotImplementedError as exc:
            known = holidays_lib.list_supported_countries().get(country, [])
            raise ValueError(
                f"unknown holiday subdivision {subdivision!r} for country {country!r}; "
                f"known subdivisions: {', '.join(known) or 'none'}"
            ) from exc
    return country, subdivision


def _explicit_holidays(spec: Iterable[date]) -> dict[date, str]:
    named: dict[date, str] = {}
    names = spec if isinstance(spec, Mapping) else None
    for day in spec:
        # A datetime is a date subclass, but its "date" depends on a zone we would be guessing.
        if isinstance(day, datetime) or not isinstance(day, date):
            raise TypeError(f"holidays must be dates, got {day!r}")
        name = names.get(day) if names is not None else None
        named[day] = name if isinstance(name, str) and name else _EXPLICIT_HOLIDAY_NAME
    return named
