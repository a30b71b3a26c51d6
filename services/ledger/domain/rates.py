"""VAT rates a creditor may invoice with, by jurisdiction and date.

These change by law: they are dated data, not literals scattered in code. Operators add a new
entry with its valid-from date when a rate changes.
Sources: Skatteetaten "Merverdiavgift - satser" (NO); Skatteverket "Momssatser" (SE).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Final

VAT_RATES: Final[dict[str, list[tuple[date, frozenset[Decimal]]]]] = {
    # 25 general, 15 food, 12 transport/hotels/cinema, 11.11 raw fish sold to fishermen's sales
    # organisations, 0 exempt.
    "NO": [(date(2018, 1, 1), frozenset(Decimal(r) for r in ("25", "15", "12", "11.11", "0")))],
    # 25 general, 12 food/hotels, 6 books/transport/culture, 0 exempt.
    "SE": [(date(2012, 1, 1), frozenset(Decimal(r) for r in ("25", "12", "6", "0")))],
}


def vat_rates(jurisdiction: str, on: date) -> frozenset[Decimal]:
    valid = [rates for since, rates in VAT_RATES.get(jurisdiction, []) if since <= on]
    return valid[-1] if valid else frozenset()
