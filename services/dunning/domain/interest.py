"""Late-payment interest — forsinkelsesrente (NO), dröjsmålsränta (SE) — per day on the overdue principal.

The rules, as `accrue` applies them:
- Interest runs from the day after the due date, per day, on the principal still unpaid that day.
- A payment (or a credit note's share of the principal) reduces the principal from the day after the
  day it was paid: a claim paid one day late bears one day's interest, one paid on the due date none.
- Each half-year (1 Jan to 30 Jun, 1 Jul to 31 Dec) has its own rate, which applies to each of its days,
  also for a default that began earlier: NO "set every half-year (1 Jan / 1 Jul)" (forsinkelsesrenteloven);
  SE the referensränta of the half-year + 8 pp (räntelagen 6 §).
- Day count: DOMAIN.md does not say. The default is actual/365: every day is 1/365 of the annual rate,
  so 29 February is one more day of interest (a leap year's 366 days bear 366/365 of the rate).
  `day_count="act/act"` counts a leap year's days as 1/366 instead.
- Rounding: the exact sum over all days, rounded once, half up, to whole minor units (so splitting a
  period changes a total by at most one minor unit).

The rate tables are data an operator extends (`RateTable.extended`, JSON): a half-year without its own
entry uses the last earlier one, marked `carried_forward` (a placeholder to confirm); days before the
first entry have no known rate and bear nothing (`Accrual.complete` is then False).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import Final, Literal

from services.dunning.domain.law import SE_INTEREST_MARGIN, Jurisdiction

DayCount = Literal["act/365", "act/act"]
_ONE_DAY: Final = timedelta(days=1)
_PERCENT_SCALE: Final = 10**6  # rates are exact to 1/1,000,000 of a percentage point
# A common denominator for both day counts: a day is 366/(365*366) of a year (actual/365, and
# actual/actual in a common year) or 365/(365*366) (actual/actual in a leap year).
_YEAR_DENOMINATOR: Final = 365 * 366
_DENOMINATOR: Final = _YEAR_DENOMINATOR * 100 * _PERCENT_SCALE


def half_year_start(day: date) -> date:
    return date(day.year, 1 if day.month < 7 else 7, 1)


def next_half_year(day: date) -> date:
    """The first day of the half-year after the one `day` is in."""
    return date(day.year, 7, 1) if day.month < 7 else date(day.year + 1, 1, 1)


def is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


@dataclass(frozen=True, slots=True)
class Rate:
    """The late-payment rate for the half-year starting `valid_from` (and, until a later entry, the
    half-years after it, as a placeholder)."""

    valid_from: date
    annual_percent: Decimal
    source: str
    verified: bool = True
    # SE: the Riksbank's referensränta the rate is made of (annual_percent = it + 8 pp).
    reference_percent: Decimal | None = None
    note: str = ""


def se_rate(
    valid_from: date, referensranta: Decimal, *, source: str, verified: bool = True, note: str = ""
) -> Rate:
    """A Swedish half-year's rate from the Riksbank's referensränta (räntelagen 6 §: + 8 pp)."""
    margin = Decimal(SE_INTEREST_MARGIN.periods[0].value)
    return Rate(valid_from, referensranta + margin, source, verified, referensranta, note)


@dataclass(frozen=True, slots=True)
class RateInForce:
    rate: Rate
    # The half-year has no entry of its own: the last earlier one is used (a placeholder to confirm).
    carried_forward: bool


class InvalidRateTable(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class RateTable:
    jurisdiction: Jurisdiction
    rates: tuple[Rate, ...]
    _starts: tuple[date, ...] = field(init=False, repr=False, compare=False)
    _scaled: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        problems = []
        for rate in self.rates:
            if rate.valid_from.day != 1 or rate.valid_from.month not in (1, 7):
                problems.append(f"{rate.valid_from}: a rate starts a half-year (1 Jan or 1 Jul)")
            if rate.annual_percent < 0 or (rate.annual_percent * _PERCENT_SCALE) % 1 != 0:
                problems.append(f"{rate.valid_from}: {rate.annual_percent} % is negative or too precise")
        starts = tuple(rate.valid_from for rate in self.rates)
        if list(starts) != sorted(set(starts)):
            problems.append("rates are in date order, one per half-year")
        if problems:
            raise InvalidRateTable("; ".join(problems))
        object.__setattr__(self, "_starts", starts)
        scaled = tuple(int(rate.annual_percent * _PERCENT_SCALE) for rate in self.rates)
        object.__setattr__(self, "_scaled", scaled)

    def _index(self, day: date) -> int:
        """The index of the last rate starting on or before `day` (-1: none)."""
        found = -1
        for i, start in enumerate(self._starts):
            if start > day:
                break
            found = i
        return found

    def in_force(self, day: date) -> RateInForce | None:
        i = self._index(day)
        if i < 0:
            return None
        rate = self.rates[i]
        return RateInForce(rate, carried_forward=rate.valid_from != half_year_start(day))

    def extended(self, *rates: Rate) -> RateTable:
        """This table with `rates` added (an entry for the same half-year is replaced)."""
        by_start = {rate.valid_from: rate for rate in self.rates}
        by_start.update({rate.valid_from: rate for rate in rates})
        return RateTable(self.jurisdiction, tuple(by_start[start] for start in sorted(by_start)))

    def missing_half_years(self, first_day: date, last_day: date) -> tuple[date, ...]:
        """The half-years overlapping first_day..last_day that have no entry of their own."""
        own = set(self._starts)
        found = []
        start = half_year_start(first_day)
        while start <= last_day:
            if start not in own:
                found.append(start)
            start = next_half_year(start)
        return tuple(found)

    def to_json(self) -> str:
        return json.dumps(
            {
                "jurisdiction": self.jurisdiction,
                "rates": [
                    {
                        "valid_from": rate.valid_from.isoformat(),
                        "annual_percent": str(rate.annual_percent),
                        "reference_percent": None
                        if rate.reference_percent is None
                        else str(rate.reference_percent),
                        "source": rate.source,
                        "verified": rate.verified,
                        "note": rate.note,
                    }
                    for rate in self.rates
                ],
            },
            ensure_ascii=False,
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str) -> RateTable:
        data = json.loads(text)
        jurisdiction = data["jurisdiction"]
        if jurisdiction not in ("NO", "SE"):
            raise InvalidRateTable(f"unknown jurisdiction {jurisdiction!r}")
        rates = tuple(
            Rate(
                date.fromisoformat(entry["valid_from"]),
                Decimal(entry["annual_percent"]),
                entry.get("source", ""),
                bool(entry.get("verified", True)),
                None if entry.get("reference_percent") is None else Decimal(entry["reference_percent"]),
                entry.get("note", ""),
            )
            for entry in data["rates"]
        )
        return cls(jurisdiction, rates)


# DOMAIN.md: 12.5 % from 2025-01-01 (FOR-2024-12-19-3279); later half-years are not given: they carry
# it forward as a placeholder until an operator adds each half-year's rate.
NO_RATES: Final = RateTable(
    "NO", (Rate(date(2025, 1, 1), Decimal("12.5"), "FOR-2024-12-19-3279", verified=True),)
)
# DOMAIN.md gives no referensränta ("current values unverified"): this entry is a placeholder an
# operator must confirm against the Riksbank's published referensränta for each half-year.
SE_RATES: Final = RateTable(
    "SE",
    (
        se_rate(
            date(2025, 1, 1),
            Decimal("2.5"),
            source="placeholder (not in DOMAIN.md): the Riksbank's referensränta, to be confirmed",
            verified=False,
        ),
    ),
)
RATES: Final[Mapping[Jurisdiction, RateTable]] = MappingProxyType({"NO": NO_RATES, "SE": SE_RATES})


@dataclass(frozen=True, slots=True)
class PartPayment:
    """Money that reduced the principal: a payment's (or a credit note's) share of it, and its date."""

    paid_on: date
    amount_minor: int


@dataclass(frozen=True, slots=True)
class Segment:
    """Days first_day..last_day (inclusive) with one principal and one rate."""

    first_day: date
    last_day: date
    principal_minor: int
    # None: no rate is known for these days (nothing accrued).
    annual_percent: Decimal | None
    verified: bool
    carried_forward: bool

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1


@dataclass(frozen=True, slots=True)
class Accrual:
    minor: int
    segments: tuple[Segment, ...] = ()

    @property
    def complete(self) -> bool:
        """Every day had a known rate."""
        return all(s.annual_percent is not None for s in self.segments)

    @property
    def confirmed(self) -> bool:
        """Every day's rate is verified and the half-year's own (no placeholder)."""
        return all(
            s.annual_percent is not None and s.verified and not s.carried_forward for s in self.segments
        )


def principal_on(principal_minor: int, payments: Iterable[PartPayment], day: date) -> int:
    """The principal interest runs on during `day`: payments made before that day are taken off."""
    return max(0, principal_minor - sum(p.amount_minor for p in payments if p.paid_on < day))


def accrue(
    principal_minor: int,
    due_date: date,
    through: date,
    table: RateTable,
    payments: Sequence[PartPayment] = (),
    *,
    since: date | None = None,
    day_count: DayCount = "act/365",
) -> Accrual:
    """The interest on a claim due on `due_date`, for the days from the day after the due date (or from
    `since`, if later) through `through`, both inclusive."""
    first = due_date + _ONE_DAY
    if since is not None and since > first:
        first = since
    if through < first:
        return Accrual(0)
    principal = principal_on(principal_minor, payments, first)
    # The days on which the principal changes: the day after each payment within the period.
    changes: dict[date, int] = {}
    for p in payments:
        day = p.paid_on + _ONE_DAY
        if first < day <= through:
            changes[day] = changes.get(day, 0) + p.amount_minor
    breaks = sorted(changes)
    numerator = 0
    segments: list[Segment] = []
    start = first
    b = 0
    while start <= through:
        end = next_half_year(start) - _ONE_DAY
        if b < len(breaks) and breaks[b] - _ONE_DAY < end:
            end = breaks[b] - _ONE_DAY
        end = min(end, through)
        days = (end - start).days + 1
        i = table._index(start)
        if i < 0:
            segments.append(Segment(start, end, principal, None, verified=False, carried_forward=False))
        else:
            rate = table.rates[i]
            weight = 365 if day_count == "act/act" and is_leap(start.year) else 366
            numerator += principal * table._scaled[i] * days * weight
            carried = rate.valid_from != half_year_start(start)
            segments.append(Segment(start, end, principal, rate.annual_percent, rate.verified, carried))
        start = end + _ONE_DAY
        if b < len(breaks) and breaks[b] == start:
            principal = max(0, principal - changes[start])
            b += 1
    return Accrual(_round_half_up(numerator, _DENOMINATOR), tuple(segments))


def _round_half_up(numerator: int, denominator: int) -> int:
    return (2 * numerator + denominator) // (2 * denominator)
