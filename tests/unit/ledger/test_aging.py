"""Aging of open items: the buckets, their boundaries, totals and counts."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.ledger.domain.aging import BUCKETS, Bucket, aging, bucket_label

AS_OF = date(2026, 6, 30)
LABELS = ["not_due", "1-30", "31-60", "61-90", "90+"]


def days_late(days: int) -> date:
    return AS_OF - timedelta(days=days)


def oracle(days: int) -> str:
    """The buckets spelled out independently of BUCKETS."""
    if days <= 0:
        return "not_due"
    if days <= 30:
        return "1-30"
    if days <= 60:
        return "31-60"
    if days <= 90:
        return "61-90"
    return "90+"


@given(st.integers(min_value=-1000, max_value=10_000))
def test_bucket_label_agrees_with_the_oracle(days: int) -> None:
    assert bucket_label(days_late(days), AS_OF) == oracle(days)


def test_buckets_in_order() -> None:
    assert [label for label, _, _ in BUCKETS] == LABELS


@pytest.mark.parametrize(
    ("days", "label"),
    [
        (-365, "not_due"),
        (-1, "not_due"),
        (0, "not_due"),
        (1, "1-30"),
        (30, "1-30"),
        (31, "31-60"),
        (60, "31-60"),
        (61, "61-90"),
        (90, "61-90"),
        (91, "90+"),
        (3650, "90+"),
    ],
)
def test_bucket_boundaries(days: int, label: str) -> None:
    assert bucket_label(days_late(days), AS_OF) == label


def test_boundaries_across_a_month_and_a_leap_day() -> None:
    assert bucket_label(date(2024, 2, 28), date(2024, 3, 29)) == "1-30"  # 30 days, 29 February between
    assert bucket_label(date(2024, 2, 28), date(2024, 3, 30)) == "31-60"


def test_empty_items_give_every_bucket_empty_in_order() -> None:
    assert aging([], AS_OF) == [Bucket(label, 0, 0) for label in LABELS]


def test_totals_and_counts() -> None:
    items = [
        (days_late(-10), 500_00),
        (days_late(0), 250_00),
        (days_late(1), 100_00),
        (days_late(30), 200_00),
        (days_late(31), 300_00),
        (days_late(91), 1035_00),
        (days_late(400), 70_00),
    ]
    assert aging(items, AS_OF) == [
        Bucket("not_due", 750_00, 2),
        Bucket("1-30", 300_00, 2),
        Bucket("31-60", 300_00, 1),
        Bucket("61-90", 0, 0),
        Bucket("90+", 1105_00, 2),
    ]


def test_items_can_be_any_iterable() -> None:
    buckets = aging(((days_late(d), 1) for d in (61, 90)), AS_OF)
    assert buckets[3] == Bucket("61-90", 2, 2)


@given(
    st.lists(
        st.tuples(st.integers(min_value=-400, max_value=4000), st.integers(min_value=0, max_value=10**9))
    ),
)
def test_every_item_lands_in_exactly_one_bucket(items: list[tuple[int, int]]) -> None:
    buckets = aging([(days_late(days), amount) for days, amount in items], AS_OF)
    assert [b.label for b in buckets] == LABELS
    assert sum(b.amount_minor for b in buckets) == sum(amount for _, amount in items)
    assert sum(b.count for b in buckets) == len(items)
    for bucket in buckets:
        inside = [amount for days, amount in items if oracle(days) == bucket.label]
        assert (bucket.amount_minor, bucket.count) == (sum(inside), len(inside))
