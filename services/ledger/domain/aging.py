"""Aging of open items: how long past due the money a customer owes is."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Final

BUCKETS: Final = (
    ("not_due", None, 0),
    ("1-30", 1, 30),
    ("31-60", 31, 60),
    ("61-90", 61, 90),
    ("90+", 91, None),
)


@dataclass(frozen=True)
class Bucket:
    label: str
    amount_minor: int
    count: int


def bucket_label(due_date: date, as_of: date) -> str:
    days = (as_of - due_date).days
    for label, low, high in BUCKETS:
        if (low is None or days >= low) and (high is None or days <= high):
            return label
    raise AssertionError("buckets cover every day")  # pragma: no cover


def aging(items: Iterable[tuple[date, int]], as_of: date) -> list[Bucket]:
    """(due date, open balance) pairs → one bucket per label, in order, empty ones included."""
    sums = {label: [0, 0] for label, _, _ in BUCKETS}
    for due, balance in items:
        acc = sums[bucket_label(due, as_of)]
        acc[0] += balance
        acc[1] += 1
    return [Bucket(label, amount, count) for label, (amount, count) in sums.items()]
