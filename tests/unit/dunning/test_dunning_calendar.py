"""Business days (weekends and Norwegian and Swedish public holidays from the `holidays` library),
deadlines moved to the next business day, and the daily sending windows in local time."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from services.dunning.domain.calendar import TIMEZONES, BusinessCalendar, SendingWindow, calendar_for

NO = calendar_for("NO")
SE = calendar_for("SE")
OSLO = TIMEZONES["NO"]


@pytest.mark.parametrize(
    "day",
    [
        date(2025, 1, 1),
        date(2025, 4, 17),  # skjærtorsdag
        date(2025, 4, 18),  # langfredag
        date(2025, 4, 21),  # 2. påskedag
        date(2025, 5, 1),
        date(2027, 5, 17),  # grunnlovsdagen on a Monday
        date(2025, 5, 29),  # Kristi himmelfartsdag
        date(2025, 6, 9),  # 2. pinsedag
        date(2025, 12, 25),
        date(2025, 12, 26),
    ],
)
def test_norwegian_public_holidays_are_no_business_days(day: date) -> None:
    assert not NO.is_business_day(day)
    assert NO.holiday_name(day)


@pytest.mark.parametrize(
    "day",
    [
        date(2025, 1, 6),  # trettondedag jul
        date(2025, 4, 18),  # långfredagen
        date(2025, 4, 21),  # annandag påsk
        date(2025, 5, 29),  # Kristi himmelsfärdsdag
        date(2025, 6, 6),  # nationaldagen
        date(2025, 6, 20),  # midsommarafton (de facto)
        date(2026, 12, 24),  # julafton (de facto)
        date(2026, 12, 31),  # nyårsafton (de facto)
    ],
)
def test_swedish_holidays_and_eves_are_no_business_days(day: date) -> None:
    assert not SE.is_business_day(day)


def test_what_is_a_holiday_in_one_country_is_a_business_day_in_the_other() -> None:
    assert SE.is_business_day(date(2025, 4, 17))  # no skärtorsdag holiday in Sweden
    assert SE.is_business_day(date(2025, 6, 9))  # annandag pingst is no longer a holiday
    assert NO.is_business_day(date(2025, 6, 6))
    assert NO.is_business_day(date(2025, 6, 20))
    assert NO.is_business_day(date(2026, 12, 24))  # DOMAIN.md does not close it: a tenant may


def test_weekends() -> None:
    assert not NO.is_business_day(date(2026, 12, 5))
    assert not SE.is_business_day(date(2026, 12, 6))
    assert NO.is_business_day(date(2028, 2, 29))  # a leap day on a Tuesday


@pytest.mark.parametrize(
    ("calendar", "deadline", "moved_to"),
    [
        (NO, date(2026, 12, 5), date(2026, 12, 7)),  # Saturday → Monday
        (NO, date(2026, 12, 6), date(2026, 12, 7)),  # Sunday → Monday
        (NO, date(2026, 12, 7), date(2026, 12, 7)),  # a business day stays
        (NO, date(2025, 4, 17), date(2025, 4, 22)),  # Easter: Thursday → Tuesday
        (SE, date(2025, 4, 17), date(2025, 4, 17)),
        (SE, date(2025, 4, 18), date(2025, 4, 22)),
        (NO, date(2027, 5, 17), date(2027, 5, 18)),
        (SE, date(2025, 6, 20), date(2025, 6, 23)),  # midsommarafton → Monday
        (SE, date(2026, 12, 24), date(2026, 12, 28)),
        (NO, date(2026, 12, 25), date(2026, 12, 28)),
        (NO, date(2025, 5, 29), date(2025, 5, 30)),
    ],
)
def test_a_deadline_moves_to_the_next_business_day(
    calendar: BusinessCalendar, deadline: date, moved_to: date
) -> None:
    assert calendar.on_or_after(deadline) == moved_to


def test_the_last_business_day_before() -> None:
    assert NO.before(date(2026, 12, 7)) == date(2026, 12, 4)
    assert NO.before(date(2025, 4, 22)) == date(2025, 4, 16)


def test_a_tenant_closes_more_days() -> None:
    calendar = BusinessCalendar("NO", extra_closed=[date(2026, 12, 24), date(2026, 12, 31)])
    assert calendar.on_or_after(date(2026, 12, 24)) == date(2026, 12, 28)
    assert calendar.on_or_after(date(2026, 12, 31)) == date(2027, 1, 4)
    assert calendar.holiday_name(date(2026, 12, 24)) == "closed"
    assert date(2026, 12, 24) in calendar.closed_days(2026)


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=OSLO)


WINDOW = SendingWindow(time(8), time(20))
TUESDAY = date(2026, 12, 1)


def test_no_sms_at_night() -> None:
    assert WINDOW.next_opening(local(TUESDAY, 7, 59), OSLO, TUESDAY) == local(TUESDAY, 8)
    assert WINDOW.next_opening(local(TUESDAY, 12), OSLO, TUESDAY) == local(TUESDAY, 12)
    assert WINDOW.next_opening(local(TUESDAY, 20), OSLO, TUESDAY) == local(date(2026, 12, 2), 8)
    assert WINDOW.next_opening(local(TUESDAY, 23, 30), OSLO, TUESDAY) == local(date(2026, 12, 2), 8)
    assert WINDOW.is_open(local(TUESDAY, 19, 59), OSLO)
    assert not WINDOW.is_open(local(TUESDAY, 20), OSLO)


def test_the_window_is_local_time_whatever_the_clock_says() -> None:
    now = datetime(2026, 12, 1, 6, 30, tzinfo=UTC)  # 07:30 in Oslo
    assert WINDOW.next_opening(now, OSLO, TUESDAY) == local(TUESDAY, 8)
    summer = datetime(2026, 7, 1, 6, 30, tzinfo=UTC)  # 08:30 in Oslo (CEST)
    assert WINDOW.next_opening(summer, OSLO, date(2026, 7, 1)) == summer
    # The days the clocks change.
    assert WINDOW.next_opening(datetime(2026, 3, 29, 0, tzinfo=UTC), OSLO, date(2026, 3, 29)) == datetime(
        2026, 3, 29, 6, tzinfo=UTC
    )
    assert WINDOW.next_opening(datetime(2026, 10, 25, 0, tzinfo=UTC), OSLO, date(2026, 10, 25)) == datetime(
        2026, 10, 25, 7, tzinfo=UTC
    )


def test_a_later_earliest_day_and_business_days_for_print() -> None:
    assert WINDOW.next_opening(local(TUESDAY, 12), OSLO, date(2026, 12, 3)) == local(date(2026, 12, 3), 8)
    saturday = date(2026, 12, 5)
    assert WINDOW.next_opening(local(saturday, 12), OSLO, saturday) == local(saturday, 12)
    assert WINDOW.next_opening(local(saturday, 12), OSLO, saturday, NO) == local(date(2026, 12, 7), 8)
    assert WINDOW.next_opening(local(date(2025, 4, 16), 21), OSLO, date(2025, 4, 16), NO) == local(
        date(2025, 4, 22), 8
    )
    stockholm = TIMEZONES["SE"]
    midsummer_eve = datetime.combine(date(2025, 6, 20), time(9), tzinfo=stockholm)
    assert WINDOW.next_opening(midsummer_eve, stockholm, date(2025, 6, 20), SE) == datetime.combine(
        date(2025, 6, 23), time(8), tzinfo=stockholm
    )
