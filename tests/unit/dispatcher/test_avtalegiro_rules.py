"""The AvtaleGiro claim rules: due at least 4 calendar days after sending (5 from the 14:00 cut-off,
Oslo time, summer or winter) and at most 12 months ahead; in NOK, a positive amount, a claimable KID."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from services.dispatcher.domain.avtalegiro import (
    claim_possible,
    claim_problem,
    earliest_due_date,
    latest_due_date,
)

CEST = timezone(timedelta(hours=2))
CET = timezone(timedelta(hours=1))


@pytest.mark.parametrize(
    ("sent_at", "earliest"),
    [
        # Summer time (CEST, UTC+2): the cut-off is 12:00 UTC.
        (datetime(2025, 6, 16, 13, 59, 59, tzinfo=CEST), date(2025, 6, 20)),
        (datetime(2025, 6, 16, 14, 0, 0, tzinfo=CEST), date(2025, 6, 21)),
        (datetime(2025, 6, 16, 11, 59, 59, tzinfo=UTC), date(2025, 6, 20)),
        (datetime(2025, 6, 16, 12, 0, 0, tzinfo=UTC), date(2025, 6, 21)),
        # Winter time (CET, UTC+1): the cut-off is 13:00 UTC.
        (datetime(2025, 1, 15, 13, 59, 59, tzinfo=CET), date(2025, 1, 19)),
        (datetime(2025, 1, 15, 14, 0, 0, tzinfo=CET), date(2025, 1, 20)),
        (datetime(2025, 1, 15, 12, 59, 59, tzinfo=UTC), date(2025, 1, 19)),
        (datetime(2025, 1, 15, 13, 0, 0, tzinfo=UTC), date(2025, 1, 20)),
        # The days the clocks change (30 March and 26 October 2025).
        (datetime(2025, 3, 30, 11, 59, tzinfo=UTC), date(2025, 4, 3)),
        (datetime(2025, 3, 30, 12, 0, tzinfo=UTC), date(2025, 4, 4)),
        (datetime(2025, 10, 26, 12, 59, tzinfo=UTC), date(2025, 10, 30)),
        (datetime(2025, 10, 26, 13, 0, tzinfo=UTC), date(2025, 10, 31)),
        # The Oslo date counts, not the UTC date: 23:30 UTC on 30 June is 1 July in Oslo.
        (datetime(2025, 6, 30, 23, 30, tzinfo=UTC), date(2025, 7, 5)),
        (datetime(2025, 12, 31, 23, 30, tzinfo=UTC), date(2026, 1, 5)),
        # Calendar days: weekends count.
        (datetime(2025, 6, 20, 9, 0, tzinfo=CEST), date(2025, 6, 24)),
    ],
)
def test_earliest_due_date(sent_at: datetime, earliest: date) -> None:
    assert earliest_due_date(sent_at) == earliest


def test_the_same_utc_time_is_before_the_cut_off_in_winter_and_after_it_in_summer() -> None:
    winter = datetime(2025, 1, 15, 12, 30, tzinfo=UTC)  # 13:30 in Oslo
    summer = datetime(2025, 7, 15, 12, 30, tzinfo=UTC)  # 14:30 in Oslo
    assert earliest_due_date(winter) - winter.date() == timedelta(days=4)
    assert earliest_due_date(summer) - summer.date() == timedelta(days=5)


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        earliest_due_date(datetime(2025, 6, 16, 12, 0))


def test_a_claim_on_the_earliest_date_is_possible_and_a_day_earlier_too_soon() -> None:
    sent_at = datetime(2025, 6, 16, 14, 0, tzinfo=CEST)
    assert claim_possible(date(2025, 6, 21), sent_at) is None
    reason = claim_possible(date(2025, 6, 20), sent_at)
    assert reason is not None
    assert "too soon" in reason
    assert "2025-06-21" in reason


def test_a_claim_due_today_or_in_the_past_is_too_soon() -> None:
    sent_at = datetime(2025, 6, 16, 9, 0, tzinfo=CEST)
    assert claim_possible(date(2025, 6, 16), sent_at) is not None
    assert claim_possible(date(2025, 5, 1), sent_at) is not None


def test_at_most_twelve_months_ahead() -> None:
    sent_at = datetime(2025, 6, 16, 9, 0, tzinfo=CEST)
    assert latest_due_date(sent_at) == date(2026, 6, 16)
    assert claim_possible(date(2026, 6, 16), sent_at) is None
    reason = claim_possible(date(2026, 6, 17), sent_at)
    assert reason is not None
    assert "12 months" in reason


def test_twelve_months_from_a_leap_day_ends_on_28_february() -> None:
    sent_at = datetime(2028, 2, 29, 9, 0, tzinfo=CET)
    assert latest_due_date(sent_at) == date(2029, 2, 28)
    assert claim_possible(date(2029, 3, 1), sent_at) is not None


def test_twelve_months_counts_from_the_oslo_date() -> None:
    # 23:30 UTC on 16 June is 17 June in Oslo.
    sent_at = datetime(2025, 6, 16, 23, 30, tzinfo=UTC)
    assert latest_due_date(sent_at) == date(2026, 6, 17)


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({}, None),
        ({"kid": "123456785-"}, "invalid_kid"),  # a valid MOD11 reference, but not a claimable KID
        ({"kid": "123456783"}, "invalid_kid"),
        ({"kid": "123"}, "invalid_kid"),
        ({"kid": "123456785"}, None),  # MOD11
        ({"currency": "SEK"}, "currency"),
        ({"amount_minor": 0}, "invalid_amount"),
        ({"amount_minor": -100}, "invalid_amount"),
        ({"amount_minor": 10**17}, "invalid_amount"),
        ({"amount_minor": 10**17 - 1}, None),
        ({"due_date": date(2025, 6, 19)}, "deadline"),
    ],
)
def test_what_nets_takes_in_a_claim(changes: dict[str, object], code: str | None) -> None:
    claim: dict[str, object] = {
        "kid": "123456782",
        "amount_minor": 125_000,
        "currency": "NOK",
        "due_date": date(2025, 6, 30),
        "sent_at": datetime(2025, 6, 16, 9, 0, tzinfo=CEST),
        **changes,
    }
    problem = claim_problem(**claim)  # type: ignore[arg-type]
    assert (problem[0] if problem else None) == code
