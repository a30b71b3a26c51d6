"""Business days, public holidays and daily sending windows in Norway and Sweden.

Public holidays come from the maintained `holidays` library (PyPI), never a list of our own:
- NO: its public holidays (helligdager and 1 and 17 May).
- SE: its public holidays plus its "de facto" days — midsommarafton, julafton and nyårsafton. These are
  no public holidays, but a deadline that ends on one moves to the next weekday as on a holiday (lag
  (1930:173) om beräkning av lagstadgad tid; not in DOMAIN.md) and the banks are closed.
Saturdays and Sundays are never business days. A tenant may close more days (`extra_closed`), e.g.
24 and 31 December in Norway, when the banks are shut — DOMAIN.md does not say, so they are not closed
by default.

A deadline that falls on a day that is not a business day moves to the next business day; a letter is
printed and posted on business days only. SMS and e-mail go any day, inside the daily window (local
time, Europe/Oslo or Europe/Stockholm).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cache
from types import MappingProxyType
from typing import Final
from zoneinfo import ZoneInfo

import holidays

from services.dunning.domain.law import Jurisdiction

TIMEZONES: Final[Mapping[Jurisdiction, ZoneInfo]] = MappingProxyType(
    {"NO": ZoneInfo("Europe/Oslo"), "SE": ZoneInfo("Europe/Stockholm")}
)
_CATEGORIES: Final[Mapping[Jurisdiction, tuple[str, ...]]] = MappingProxyType(
    {"NO": ("public",), "SE": ("public", "de_facto")}
)
_ONE_DAY: Final = timedelta(days=1)
# No business day is this far from another (Easter and Christmas are at most 5 days in a row).
_MAX_SEARCH: Final = 30


class BusinessCalendar:
    """Business days of one jurisdiction: Monday to Friday, not a holiday, not one of `extra_closed`.

    Holidays are read per year on first use and kept (the same answers for the same inputs).
    """

    __slots__ = ("_closed", "_extra", "_names", "jurisdiction")

    def __init__(self, jurisdiction: Jurisdiction, extra_closed: Iterable[date] = ()) -> None:
        self.jurisdiction = jurisdiction
        self._extra = frozenset(extra_closed)
        self._closed: dict[int, frozenset[date]] = {}
        self._names: dict[date, str] = {}

    def _year(self, year: int) -> frozenset[date]:
        closed = self._closed.get(year)
        if closed is None:
            found = holidays.country_holidays(
                self.jurisdiction, years=year, categories=_CATEGORIES[self.jurisdiction]
            )
            self._names.update(found.items())
            closed = frozenset(found) | {d for d in self._extra if d.year == year}
            self._closed[year] = closed
        return closed

    def holiday_name(self, day: date) -> str | None:
        """The holiday's name (the library's English one), "closed" for an extra closed day, or None."""
        if day in self._year(day.year):
            return self._names.get(day, "closed")
        return None

    def closed_days(self, year: int) -> frozenset[date]:
        """The year's closed days other than weekends (holidays and extra closed days)."""
        return self._year(year)

    def is_business_day(self, day: date) -> bool:
        return day.weekday() < 5 and day not in self._year(day.year)

    def on_or_after(self, day: date) -> date:
        """`day` if it is a business day, else the next business day (where a deadline moves to)."""
        for _ in range(_MAX_SEARCH):
            if self.is_business_day(day):
                return day
            day += _ONE_DAY
        raise AssertionError("no business day within 30 days")  # pragma: no cover

    def before(self, day: date) -> date:
        """The last business day before `day`."""
        day -= _ONE_DAY
        for _ in range(_MAX_SEARCH):
            if self.is_business_day(day):
                return day
            day -= _ONE_DAY
        raise AssertionError("no business day within 30 days")  # pragma: no cover


@cache
def calendar_for(jurisdiction: Jurisdiction) -> BusinessCalendar:
    """The shared calendar of a jurisdiction without extra closed days."""
    return BusinessCalendar(jurisdiction)


@dataclass(frozen=True, slots=True)
class SendingWindow:
    """The hours of a day, local time, in which steps are sent: from `opens` up to (not at) `closes`."""

    opens: time = time(8, 0)
    closes: time = time(20, 0)

    @property
    def is_valid(self) -> bool:
        return self.opens < self.closes

    def next_opening(
        self,
        now: datetime,
        tz: ZoneInfo,
        earliest: date,
        calendar: BusinessCalendar | None = None,
    ) -> datetime:
        """The first moment at or after `now`, on `earliest` or later, inside the window — and on a
        business day of `calendar` when one is given (print). Aware, in `tz`."""
        local = now.astimezone(tz)
        day = max(local.date(), earliest)
        for _ in range(_MAX_SEARCH * 2):
            if calendar is None or calendar.is_business_day(day):
                opens = datetime.combine(day, self.opens, tzinfo=tz)
                closes = datetime.combine(day, self.closes, tzinfo=tz)
                if local < closes:
                    return max(local, opens)
            day += _ONE_DAY
        raise AssertionError("no sending window within 60 days")  # pragma: no cover

    def is_open(self, now: datetime, tz: ZoneInfo) -> bool:
        return self.opens <= now.astimezone(tz).time() < self.closes
