"""Properties of accrue() over arbitrary claims, payments and periods: splitting a period changes the total
by at most the rounding, more days never give less interest, payments never give more."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from services.dunning.domain.interest import PartPayment, Rate, RateTable, accrue

# A rate for every half-year 2023-2028, each different, so periods cross rate changes and leap years.
RATES = RateTable(
    "NO",
    tuple(
        Rate(date(year, month, 1), Decimal(8 + (year - 2023) + (month == 7) / 2 + 0.25), "test")
        for year in range(2023, 2029)
        for month in (1, 7)
    ),
)
days = st.integers(0, 1500)
dates = st.dates(date(2023, 1, 1), date(2026, 12, 31))
principals = st.integers(0, 10**10)


@st.composite
def payments(draw: st.DrawFn, due: date) -> tuple[PartPayment, ...]:
    found = draw(st.lists(st.tuples(st.integers(-30, 900), st.integers(1, 10**9)), max_size=6))
    return tuple(PartPayment(due + timedelta(days=offset), amount) for offset, amount in found)


@settings(max_examples=300, deadline=None)
@given(st.data(), principals, dates, days, days, st.sampled_from(["act/365", "act/act"]))
def test_splitting_a_period_changes_at_most_the_rounding(
    data: st.DataObject, principal: int, due: date, first: int, second: int, day_count: str
) -> None:
    paid = data.draw(payments(due))
    split = due + timedelta(days=1 + first)
    end = split + timedelta(days=second)
    whole = accrue(principal, due, end, RATES, paid, day_count=day_count)  # type: ignore[arg-type]
    head = accrue(principal, due, split, RATES, paid, day_count=day_count)  # type: ignore[arg-type]
    tail = accrue(principal, due, end, RATES, paid, since=split + timedelta(days=1), day_count=day_count)  # type: ignore[arg-type]
    assert abs(whole.minor - (head.minor + tail.minor)) <= 1
    assert sum(s.days for s in whole.segments) == (end - due).days


@settings(max_examples=300, deadline=None)
@given(st.data(), principals, dates, days, st.integers(1, 400))
def test_more_days_never_less_interest(
    data: st.DataObject, principal: int, due: date, n: int, more: int
) -> None:
    paid = data.draw(payments(due))
    through = due + timedelta(days=n)
    assert (
        accrue(principal, due, through, RATES, paid).minor
        <= accrue(principal, due, through + timedelta(days=more), RATES, paid).minor
    )


@settings(max_examples=300, deadline=None)
@given(st.data(), principals, dates, days)
def test_payments_never_add_interest(data: st.DataObject, principal: int, due: date, n: int) -> None:
    paid = data.draw(payments(due))
    through = due + timedelta(days=n)
    assert accrue(principal, due, through, RATES, paid).minor <= accrue(principal, due, through, RATES).minor


@settings(max_examples=200, deadline=None)
@given(principals, dates, days)
def test_actual_actual_never_more_than_actual_365(principal: int, due: date, n: int) -> None:
    through = due + timedelta(days=n)
    assert (
        accrue(principal, due, through, RATES, day_count="act/act").minor
        <= accrue(principal, due, through, RATES).minor
    )


@settings(max_examples=200, deadline=None)
@given(principals, dates, days)
def test_the_exact_sum_of_its_days(principal: int, due: date, n: int) -> None:
    """The total is the sum over every single day, rounded once (checked day by day with Decimal)."""
    through = due + timedelta(days=n % 200)
    exact = Decimal(0)
    day = due + timedelta(days=1)
    while day <= through:
        in_force = RATES.in_force(day)
        assert in_force is not None
        exact += Decimal(principal) * in_force.rate.annual_percent / 100 / 365
        day += timedelta(days=1)
    assert abs(accrue(principal, due, through, RATES).minor - exact) <= Decimal("0.5000001")
