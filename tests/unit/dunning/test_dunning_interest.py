"""Late-payment interest: per day from the day after the due date, actual/365, part-payments from the day
after they were paid, the half-year's rate for each day, one rounding half up at the end."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from services.dunning.domain.interest import (
    NO_RATES,
    SE_RATES,
    InvalidRateTable,
    PartPayment,
    Rate,
    RateTable,
    accrue,
    principal_on,
    se_rate,
)


def table(*rates: tuple[date, str]) -> RateTable:
    return RateTable("NO", tuple(Rate(d, Decimal(p), "test") for d, p in rates))


def test_thirty_days_at_the_norwegian_rate() -> None:
    accrual = accrue(100_000, date(2025, 3, 1), date(2025, 3, 31), NO_RATES)
    # 1000 kr x 12.5 % x 30/365 = 10.27 kr
    assert accrual.minor == 1_027
    assert accrual.complete
    assert accrual.confirmed


def test_paid_one_day_late_is_one_day_on_the_due_date_none() -> None:
    assert accrue(100_000, date(2025, 3, 1), date(2025, 3, 2), NO_RATES).minor == 34
    assert accrue(100_000, date(2025, 3, 1), date(2025, 3, 1), NO_RATES).minor == 0
    assert accrue(100_000, date(2025, 3, 1), date(2025, 2, 1), NO_RATES).minor == 0


def test_a_part_payment_reduces_the_principal_from_the_day_after_it() -> None:
    paid = (PartPayment(date(2025, 3, 11), 40_000),)
    accrual = accrue(100_000, date(2025, 3, 1), date(2025, 3, 31), NO_RATES, paid)
    # 10 days (2-11 March) on 1000 kr, 20 days (12-31 March) on 600 kr
    assert accrual.minor == round((100_000 * 10 + 60_000 * 20) * 0.125 / 365)
    assert [(s.first_day, s.last_day, s.principal_minor) for s in accrual.segments] == [
        (date(2025, 3, 2), date(2025, 3, 11), 100_000),
        (date(2025, 3, 12), date(2025, 3, 31), 60_000),
    ]


def test_payments_before_the_due_date_reduce_the_principal_from_the_start() -> None:
    paid = (PartPayment(date(2025, 2, 20), 50_000), PartPayment(date(2025, 3, 1), 10_000))
    assert accrue(100_000, date(2025, 3, 1), date(2025, 3, 31), NO_RATES, paid).minor == round(
        40_000 * 30 * 0.125 / 365
    )
    assert principal_on(100_000, paid, date(2025, 3, 2)) == 40_000


def test_paid_in_full_then_no_more_interest() -> None:
    paid = (PartPayment(date(2025, 3, 5), 100_000),)
    with_payment = accrue(100_000, date(2025, 3, 1), date(2025, 12, 31), NO_RATES, paid)
    assert with_payment.minor == accrue(100_000, date(2025, 3, 1), date(2025, 3, 5), NO_RATES).minor
    over = (PartPayment(date(2025, 2, 1), 150_000),)
    assert accrue(100_000, date(2025, 3, 1), date(2025, 12, 31), NO_RATES, over).minor == 0


def test_the_rate_changes_on_1_july_and_1_january() -> None:
    rates = table((date(2025, 1, 1), "10"), (date(2025, 7, 1), "12"), (date(2026, 1, 1), "8"))
    accrual = accrue(1_000_000, date(2025, 6, 20), date(2026, 1, 10), rates)
    assert [(s.first_day, s.last_day, s.annual_percent) for s in accrual.segments] == [
        (date(2025, 6, 21), date(2025, 6, 30), Decimal("10")),
        (date(2025, 7, 1), date(2025, 12, 31), Decimal("12")),
        (date(2026, 1, 1), date(2026, 1, 10), Decimal("8")),
    ]
    # 10 days at 10 %, 184 at 12 %, 10 at 8 %, all on 10,000 kr
    assert accrual.minor == 65_425


def test_a_default_that_began_earlier_takes_the_new_half_years_rate() -> None:
    rates = table((date(2025, 1, 1), "10"), (date(2025, 7, 1), "20"))
    before = accrue(365_000, date(2025, 1, 1), date(2025, 6, 30), rates).minor
    after = accrue(365_000, date(2025, 1, 1), date(2025, 7, 1), rates).minor
    assert after - before == 200  # the 1 July day at 20 %: 3650 kr x 20 % / 365


def test_leap_day_actual_365_and_actual_actual() -> None:
    rates = table((date(2024, 1, 1), "10"))
    assert accrue(1_000_000, date(2024, 2, 28), date(2024, 3, 1), rates).minor == 548  # 2 days / 365
    assert accrue(1_000_000, date(2024, 2, 28), date(2024, 3, 1), rates, day_count="act/act").minor == 546
    # The whole of 2024: 366 days.
    assert accrue(1_000_000, date(2023, 12, 31), date(2024, 12, 31), rates).minor == 100_274
    assert (
        accrue(1_000_000, date(2023, 12, 31), date(2024, 12, 31), rates, day_count="act/act").minor == 100_000
    )
    # The whole of 2025: 365 days, the same in both.
    assert accrue(1_000_000, date(2024, 12, 31), date(2025, 12, 31), rates).minor == 100_000
    assert (
        accrue(1_000_000, date(2024, 12, 31), date(2025, 12, 31), rates, day_count="act/act").minor == 100_000
    )


def test_a_leap_year_segment_counts_29_february() -> None:
    rates = table((date(2024, 1, 1), "10"))
    accrual = accrue(1_000_000, date(2024, 1, 31), date(2024, 3, 31), rates)
    assert sum(s.days for s in accrual.segments) == 29 + 31


def test_rounding_is_half_up_once() -> None:
    # 14.60 kr x 12.5 % / 365 = exactly 0.5 øre
    assert accrue(1_460, date(2025, 3, 1), date(2025, 3, 2), NO_RATES).minor == 1
    assert accrue(1_459, date(2025, 3, 1), date(2025, 3, 2), NO_RATES).minor == 0


def test_carried_forward_half_years_are_marked() -> None:
    accrual = accrue(100_000, date(2025, 6, 1), date(2026, 2, 1), NO_RATES)
    assert [s.carried_forward for s in accrual.segments] == [False, True, True]
    assert accrual.complete
    assert not accrual.confirmed
    assert NO_RATES.missing_half_years(date(2025, 1, 1), date(2026, 12, 31)) == (
        date(2025, 7, 1),
        date(2026, 1, 1),
        date(2026, 7, 1),
    )


def test_days_before_the_first_rate_bear_nothing() -> None:
    accrual = accrue(100_000, date(2024, 12, 20), date(2025, 1, 10), NO_RATES)
    assert accrual.minor == round(100_000 * 0.125 * 10 / 365)
    assert not accrual.complete
    assert accrual.segments[0].annual_percent is None


def test_swedish_rate_is_the_referensranta_plus_eight_points() -> None:
    rate = se_rate(date(2025, 7, 1), Decimal("2.25"), source="test")
    assert rate.annual_percent == Decimal("10.25")
    assert rate.reference_percent == Decimal("2.25")
    placeholder = SE_RATES.rates[0]
    assert not placeholder.verified
    assert placeholder.annual_percent == placeholder.reference_percent + 8  # type: ignore[operator]
    assert accrue(1_000_000, date(2025, 3, 1), date(2025, 3, 11), SE_RATES).minor == round(
        1_000_000 * 0.105 * 10 / 365
    )


def test_since_counts_from_a_later_day() -> None:
    whole = accrue(100_000, date(2025, 3, 1), date(2025, 3, 31), NO_RATES)
    tail = accrue(100_000, date(2025, 3, 1), date(2025, 3, 31), NO_RATES, since=date(2025, 3, 22))
    assert tail.minor == round(100_000 * 0.125 * 10 / 365)
    assert tail.minor < whole.minor


@pytest.mark.parametrize(
    "rates",
    [
        (Rate(date(2025, 3, 1), Decimal("10"), "x"),),
        (Rate(date(2025, 7, 1), Decimal("10"), "x"), Rate(date(2025, 1, 1), Decimal("10"), "x")),
        (Rate(date(2025, 1, 1), Decimal("10"), "x"), Rate(date(2025, 1, 1), Decimal("11"), "x")),
        (Rate(date(2025, 1, 1), Decimal("-1"), "x"),),
        (Rate(date(2025, 1, 1), Decimal("1.0000001"), "x"),),
    ],
)
def test_a_table_refuses_what_is_not_one_rate_per_half_year(rates: tuple[Rate, ...]) -> None:
    with pytest.raises(InvalidRateTable):
        RateTable("NO", rates)


def test_an_operator_extends_a_table_and_it_round_trips_json() -> None:
    extended = NO_RATES.extended(
        Rate(date(2025, 7, 1), Decimal("12.25"), "operator", verified=True),
        Rate(date(2025, 1, 1), Decimal("12.5"), "FOR-2024-12-19-3279 (again)"),
    )
    assert [r.valid_from for r in extended.rates] == [date(2025, 1, 1), date(2025, 7, 1)]
    assert extended.rates[0].source == "FOR-2024-12-19-3279 (again)"
    in_force = extended.in_force(date(2025, 8, 1))
    assert in_force is not None
    assert (in_force.rate.annual_percent, in_force.carried_forward) == (Decimal("12.25"), False)
    assert RateTable.from_json(extended.to_json()) == extended
    assert RateTable.from_json(SE_RATES.to_json()) == SE_RATES
