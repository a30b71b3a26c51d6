"""Money as integer minor units plus an ISO 4217 code: exact arithmetic, EN 16931 rounding, formatting.

Never a float. Rounding is half up (away from zero at .5), done exactly on integers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType

# ISO 4217 List One (published 2026-01-01): currency code -> minor unit exponent. Left out: fund codes
# (BOV CHE CHW CLF COU MXV USN UYI UYW), units of account (XAD XDR XSU XUA), bond-market units, metals,
# XTS and XXX, none of which an invoice is payable in.
CURRENCY_EXPONENTS: Mapping[str, int] = MappingProxyType(
    {
        "AED": 2, "AFN": 2, "ALL": 2, "AMD": 2, "AOA": 2, "ARS": 2, "AUD": 2, "AWG": 2, "AZN": 2,
        "BAM": 2, "BBD": 2, "BDT": 2, "BHD": 3, "BIF": 0, "BMD": 2, "BND": 2, "BOB": 2, "BRL": 2,
        "BSD": 2, "BTN": 2, "BWP": 2, "BYN": 2, "BZD": 2,
        "CAD": 2, "CDF": 2, "CHF": 2, "CLP": 0, "CNY": 2, "COP": 2, "CRC": 2, "CUP": 2, "CVE": 2,
        "CZK": 2,
        "DJF": 0, "DKK": 2, "DOP": 2, "DZD": 2,
        "EGP": 2, "ERN": 2, "ETB": 2, "EUR": 2,
        "FJD": 2, "FKP": 2,
        "GBP": 2, "GEL": 2, "GHS": 2, "GIP": 2, "GMD": 2, "GNF": 0, "GTQ": 2, "GYD": 2,
        "HKD": 2, "HNL": 2, "HTG": 2, "HUF": 2,
        "IDR": 2, "ILS": 2, "INR": 2, "IQD": 3, "IRR": 2, "ISK": 0,
        "JMD": 2, "JOD": 3, "JPY": 0,
        "KES": 2, "KGS": 2, "KHR": 2, "KMF": 0, "KPW": 2, "KRW": 0, "KWD": 3, "KYD": 2, "KZT": 2,
        "LAK": 2, "LBP": 2, "LKR": 2, "LRD": 2, "LSL": 2, "LYD": 3,
        "MAD": 2, "MDL": 2, "MGA": 2, "MKD": 2, "MMK": 2, "MNT": 2, "MOP": 2, "MRU": 2, "MUR": 2,
        "MVR": 2, "MWK": 2, "MXN": 2, "MYR": 2, "MZN": 2,
        "NAD": 2, "NGN": 2, "NIO": 2, "NOK": 2, "NPR": 2, "NZD": 2,
        "OMR": 3,
        "PAB": 2, "PEN": 2, "PGK": 2, "PHP": 2, "PKR": 2, "PLN": 2, "PYG": 0,
        "QAR": 2,
        "RON": 2, "RSD": 2, "RUB": 2, "RWF": 0,
        "SAR": 2, "SBD": 2, "SCR": 2, "SDG": 2, "SEK": 2, "SGD": 2, "SHP": 2, "SLE": 2, "SOS": 2,
        "SRD": 2, "SSP": 2, "STN": 2, "SVC": 2, "SYP": 2, "SZL": 2,
        "THB": 2, "TJS": 2, "TMT": 2, "TND": 3, "TOP": 2, "TRY": 2, "TTD": 2, "TWD": 2, "TZS": 2,
        "UAH": 2, "UGX": 0, "USD": 2, "UYU": 2, "UZS": 2,
        "VED": 2, "VES": 2, "VND": 0, "VUV": 0,
        "WST": 2,
        "XAF": 0, "XCD": 2, "XCG": 2, "XOF": 0, "XPF": 0,
        "YER": 2,
        "ZAR": 2, "ZMW": 2, "ZWG": 2,
        # Withdrawn 2026-01-01 (Bulgaria joined the euro); kept so earlier invoices still read.
        "BGN": 2,
    }
)  # fmt: skip


class UnknownCurrency(ValueError):
    """A currency code that is not an ISO 4217 code Fordring knows."""


def check_currency(code: str) -> str:
    """The code itself if it is a known ISO 4217 code (exact, upper case); else UnknownCurrency."""
    if isinstance(code, str) and code in CURRENCY_EXPONENTS:
        return code
    hint = "; codes are upper case" if isinstance(code, str) and code.upper() in CURRENCY_EXPONENTS else ""
    raise UnknownCurrency(f"unknown currency {code!r} (ISO 4217 code expected, e.g. NOK{hint})")


_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


def parse_decimal(text: str, *, field: str = "value") -> Decimal:
    """A plain decimal such as "2", "1.5", "-3" or "0.125"; no exponent, sign "+", separators or spaces."""
    if not isinstance(text, str) or _DECIMAL.fullmatch(text) is None:
        raise ValueError(f"{field}: expected a plain decimal number such as 2, 1.5 or -0.125, got {text!r}")
    return Decimal(text)


def _divide_half_up(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half away from zero, exactly (denominator > 0)."""
    quotient, remainder = divmod(abs(numerator), denominator)
    if 2 * remainder >= denominator:
        quotient += 1
    return -quotient if numerator < 0 else quotient


def _ratio(value: Decimal, what: str) -> tuple[int, int]:
    if not value.is_finite():
        raise ValueError(f"{what} must be a finite number, got {value}")
    return value.as_integer_ratio()


def round_half_up(value: Decimal) -> int:
    """The nearest integer, .5 away from zero (Decimal ROUND_HALF_UP), with no precision limit."""
    numerator, denominator = _ratio(value, "value")
    return _divide_half_up(numerator, denominator)


def line_net_minor(quantity: Decimal, unit_price_minor: int) -> int:
    """Invoice line net amount (EN 16931 BT-131): quantity x unit price, rounded half up."""
    numerator, denominator = _ratio(quantity, "quantity")
    return _divide_half_up(numerator * unit_price_minor, denominator)


def vat_amount_minor(taxable_minor: int, rate_percent: Decimal) -> int:
    """VAT category tax amount (EN 16931 BT-117): taxable x rate / 100, rounded half up."""
    numerator, denominator = _ratio(rate_percent, "VAT rate")
    if numerator < 0:
        raise ValueError(f"VAT rate must not be negative, got {rate_percent}")
    return _divide_half_up(taxable_minor * numerator, denominator * 100)


@dataclass(frozen=True)
class VatLine:
    """One row of the VAT breakdown (EN 16931 BG-23)."""

    rate: Decimal
    taxable_minor: int
    vat_minor: int


@dataclass(frozen=True)
class Totals:
    """Document totals (EN 16931 BG-22) with the VAT breakdown (BG-23).

    net_minor is BT-106, equal to BT-109 as there are no document-level allowances or charges;
    vat_minor is BT-110, gross_minor BT-112.
    """

    net_minor: int
    vat_minor: int
    gross_minor: int
    vat_breakdown: tuple[VatLine, ...]


def invoice_totals(lines: Sequence[tuple[int, Decimal]]) -> Totals:
    """Totals from (line net amount, VAT rate percent) pairs, with VAT rounded once per rate."""
    taxable_by_rate: dict[Decimal, int] = {}
    rate_as_given: dict[Decimal, Decimal] = {}
    for net_minor, rate in lines:
        # 25 and 25.00 are one rate; the breakdown shows the first spelling seen.
        rate_as_given.setdefault(rate, rate)
        taxable_by_rate[rate] = taxable_by_rate.get(rate, 0) + net_minor
    # EN 16931 BR-CO-17: VAT per category = taxable amount x rate, rounded; never a sum of line VATs.
    breakdown = tuple(
        VatLine(rate=rate_as_given[rate], taxable_minor=taxable, vat_minor=vat_amount_minor(taxable, rate))
        for rate, taxable in sorted(taxable_by_rate.items(), key=lambda item: item[0], reverse=True)
    )
    net = sum(line.taxable_minor for line in breakdown)
    vat = sum(line.vat_minor for line in breakdown)  # BR-CO-14
    return Totals(net_minor=net, vat_minor=vat, gross_minor=net + vat, vat_breakdown=breakdown)


def split_proportionally(total: int, weights: Sequence[int]) -> list[int]:
    """Split total by weights (largest remainder); the parts sum to total, ties go to the lower index.

    A negative total splits as the mirror image of the positive one.
    """
    if any(weight < 0 for weight in weights):
        raise ValueError(f"weights must not be negative, got {list(weights)}")
    weight_sum = sum(weights)
    if weight_sum == 0:
        raise ValueError(f"cannot split by weights that are empty or all zero, got {list(weights)}")
    if total < 0:
        return [-part for part in split_proportionally(-total, weights)]
    shares = [divmod(total * weight, weight_sum) for weight in weights]
    parts = [floor for floor, _ in shares]
    shortfall = total - sum(parts)
    by_remainder = sorted(range(len(weights)), key=lambda index: (-shares[index][1], index))
    for index in by_remainder[:shortfall]:
        parts[index] += 1
    return parts


def allocate_in_order(amount: int, balances: Sequence[int]) -> tuple[list[int], int]:
    """Pay balances in the order given (oldest first); returns (allocation per balance, unallocated rest)."""
    if amount < 0:
        raise ValueError(f"amount to allocate must not be negative, got {amount}")
    if any(balance < 0 for balance in balances):
        raise ValueError(f"open balances must not be negative, got {list(balances)}")
    allocations: list[int] = []
    left = amount
    for balance in balances:
        paid = min(balance, left)
        allocations.append(paid)
        left -= paid
    return allocations, left


# locale -> (group separator, decimal separator, currency shown as a suffix?). The separator is a plain
# space (U+0020), not NBSP, so the text is the same in PDF, HTML, SMS and CSV; a renderer that must not
# wrap inside an amount swaps it for U+00A0.
_LOCALES: Mapping[str, tuple[str, str, bool]] = MappingProxyType(
    {"nb": (" ", ",", True), "sv": (" ", ",", True), "en": (",", ".", False)}
)
# Currencies a locale writes as "kr".
_LOCAL_KRONE = {"nb": "NOK", "sv": "SEK"}


def format_money(minor: int, currency: str, *, locale: str = "nb") -> str:
    """Human-readable amount: nb "1 234,50 kr" / "1 234,50 SEK", sv "1 234,50 kr", en "NOK 1,234.50".

    Separators are plain spaces (U+0020); a minus sign, if any, leads: "-1 234,50 kr", "-NOK 1,234.50".
    """
    exponent = CURRENCY_EXPONENTS[check_currency(currency)]
    if locale not in _LOCALES:
        raise ValueError(f"unsupported locale {locale!r} (expected one of {', '.join(_LOCALES)})")
    group, decimal_mark, suffix = _LOCALES[locale]
    units, fraction = divmod(abs(minor), 10**exponent)
    number = f"{units:,}".replace(",", group)
    if exponent:
        number += f"{decimal_mark}{fraction:0{exponent}d}"
    sign = "-" if minor < 0 else ""
    if not suffix:
        return f"{sign}{currency} {number}"
    symbol = "kr" if _LOCAL_KRONE.get(locale) == currency else currency
    return f"{sign}{number} {symbol}"
