"""The legal limits as dated data: each value for the dates DOMAIN.md gives, with its source."""

from __future__ import annotations

from datetime import date

import pytest

from services.dunning.domain import law


@pytest.mark.parametrize(
    ("due", "fee"),
    [
        (date(2017, 1, 1), 7_000),
        (date(2020, 9, 30), 7_000),  # claims due up to 2020-09-30: 1/10 = kr 70
        (date(2020, 10, 1), 3_500),  # claims due from 2020-10-01: 1/20 = kr 35
        (date(2021, 6, 1), 3_500),  # Sergel / Virke Inkasso: kr 35 in 2021 ...
        (date(2023, 3, 1), 3_500),  # ... and in 2023
        (date(2024, 12, 31), 3_500),  # not kr 70 until 2025 (docs/domain.md had that wrong)
        (date(2026, 12, 1), 3_500),
    ],
)
def test_norwegian_reminder_fee_by_the_claims_due_date(due: date, fee: int) -> None:
    assert law.fee_cap("NO", "reminder", due) == fee
    # The inkassovarsel fee is the reminder fee "on the same terms".
    assert law.fee_cap("NO", "collection_notice", due) == fee


def test_the_reminder_fee_table_carries_both_periods() -> None:
    periods = law.NO_REMINDER_FEE.periods
    assert [(p.value, p.valid_from, p.valid_to) for p in periods] == [
        (7_000, date(2017, 1, 1), date(2020, 9, 30)),
        (3_500, date(2020, 10, 1), None),
    ]
    assert law.NO_REMINDER_FEE.dated_by == "due_date"
    assert law.NO_REMINDER_FEE.value_on(date(2016, 12, 31)) is None
    assert law.fee_cap("NO", "reminder", date(2016, 12, 31)) == 0  # unknown: nothing is charged


def test_inkassosats_is_twenty_times_the_fee() -> None:
    assert law.NO_INKASSOSATS.value_on(date(2024, 1, 1)) == 70_000 == 20 * 3_500


def test_swedish_fees() -> None:
    assert law.fee_cap("SE", "reminder", date(2026, 1, 1)) == 6_000
    assert law.fee_cap("SE", "collection_notice", date(2026, 1, 1)) == 18_000


@pytest.mark.parametrize(
    ("right_arises", "amount", "verified"),
    [
        (date(2020, 7, 1), 43_000, False),
        (date(2020, 12, 31), 43_000, False),
        (date(2021, 1, 1), 40_000, False),
        (date(2021, 6, 30), 40_000, False),
        (date(2025, 1, 1), 47_000, False),
        (date(2025, 6, 30), 47_000, False),
        (date(2026, 12, 1), 47_000, False),  # the placeholder carrying H1 2025 forward
    ],
)
def test_norwegian_compensation_by_half_year(right_arises: date, amount: int, verified: bool) -> None:
    period = law.compensation_period("NO", right_arises)
    assert period is not None
    assert (period.value, period.verified) == (amount, verified)


@pytest.mark.parametrize(
    "right_arises", [date(2020, 6, 30), date(2021, 7, 1), date(2023, 5, 5), date(2024, 12, 31)]
)
def test_norwegian_compensation_unknown_where_domain_is_silent(right_arises: date) -> None:
    assert law.compensation_period("NO", right_arises) is None


def test_swedish_compensation() -> None:
    period = law.compensation_period("SE", date(2026, 1, 1))
    assert period is not None
    assert period.value == 45_000


def test_fourteen_days_and_the_counts() -> None:
    assert law.NO_REMINDER_FEE_DAYS.value_on(date(2026, 1, 1)) == 14
    assert law.NO_NOTICE_DEADLINE.value_on(date(2026, 1, 1)) == 14
    assert law.NO_SECOND_FEE.value_on(date(2026, 1, 1)) == 14
    assert law.NO_FEES_PER_CLAIM.value_on(date(2026, 1, 1)) == 2
    assert law.NO_NOTICE_FEES_PER_CLAIM.value_on(date(2026, 1, 1)) == 1
    assert law.SE_INTEREST_MARGIN.value_on(date(2026, 1, 1)) == 8


def test_lowest_from_a_day_covers_every_later_period() -> None:
    assert law.NO_REMINDER_FEE.lowest_from(date(2019, 1, 1)) == 3_500
    assert law.NO_REMINDER_FEE.lowest_from(date(2026, 1, 1)) == 3_500


def test_every_rule_names_its_source_and_jurisdiction() -> None:
    assert len(law.RULES) == len(law.ALL_RULES)
    for rule in law.ALL_RULES:
        assert rule.source, rule.id
        assert rule.says, rule.id
        prefix = rule.id.split(".")[0]
        assert prefix == (rule.jurisdiction or "FORDRING"), rule.id
        for period in rule.periods:
            assert (
                period.valid_to is None or period.valid_from is None or period.valid_from <= period.valid_to
            )


def test_unverified_values_are_listed_for_the_operator() -> None:
    unverified = {(rule.id, period.valid_from) for rule, period in law.unverified_periods()}
    assert ("NO.compensation.amount", date(2025, 1, 1)) in unverified
    assert ("NO.compensation.amount", date(2025, 7, 1)) in unverified
    assert ("SE.reminder_fee.max_per_claim", None) in unverified
    assert all(rule.id != "NO.reminder_fee.max" for rule, _ in law.unverified_periods())
